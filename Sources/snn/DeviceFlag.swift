import SNNCUDA
import SNNTensor

/// `--device` of `train`, `forward`, `bench train` and `analyze`: `cpu` (the default),
/// `cuda` (GPU 0), `cuda:N` or `reference`.
enum DeviceFlag {
    static let help = "cpu, cuda (GPU 0), cuda:N or reference."

    /// Checks the spelling (for `validate()`; opens nothing).
    static func check(_ name: String) throws {
        guard Device(name) != nil else { throw FlagError("--device accepts cpu, cuda, cuda:N, reference; got \(name)") }
    }

    /// The device `name` names, ready to compute: a GPU is opened now (driver, NVRTC, kernels
    /// from the cache or compiled), so that a missing one is an error that says what is
    /// missing and where SwiftSNN looked, before any data is read.
    static func open(_ name: String) throws -> Device {
        try check(name)
        let device = Device(name) ?? .cpu
        if case .cuda(let ordinal) = device {
            do {
                _ = try CUDABackend.open(ordinal)
            } catch {
                throw FlagError("--device \(name): \(error)")
            }
        }
        return device
    }
}

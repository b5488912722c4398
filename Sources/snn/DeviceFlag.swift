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
    ///
    /// In a data-parallel run, `cuda` (no ordinal) is the GPU of this process's local rank
    /// (modulo the machine's GPUs, as `torchrun` users set `LOCAL_RANK`); `cuda:N` is GPU N for
    /// every process that names it.
    static func open(_ name: String, localRank: Int = 0) throws -> Device {
        try check(name)
        let device = Device(name) ?? .cpu
        guard case .cuda(var ordinal) = device else { return device }
        do {
            if localRank > 0 && !name.contains(":") {
                let count = try CUDADriver.load().devices().count
                if count > 0 { ordinal = localRank % count }
            }
            _ = try CUDABackend.open(ordinal)
        } catch {
            throw FlagError("--device \(name): \(error)")
        }
        return .cuda(ordinal)
    }

    /// What `--amp` asks for on `device`: `nil` (float32), `bf16` or `fp16`. `1` (the
    /// reference's default) is fp16 on a GPU and float32 elsewhere; `0` and `off` are float32;
    /// `bf16` and `fp16` need a GPU.
    static func amp(_ amp: String, device: String) throws -> String? {
        let onGPU: Bool = { if case .cuda? = Device(device) { return true } else { return false } }()
        switch amp.lowercased() {
        case "0", "off": return nil
        case "1": return onGPU ? "fp16" : nil
        case "bf16", "fp16":
            guard onGPU else { throw FlagError("--amp \(amp) needs a GPU (--device cuda); on the \(device) device everything is float32") }
            return amp.lowercased()
        default: throw FlagError("--amp accepts 0, 1, off, bf16, fp16; got \(amp)")
        }
    }

    /// `--tf32` needs a GPU.
    static func checkTF32(_ tf32: Bool, device: String) throws {
        guard tf32 else { return }
        guard case .cuda? = Device(device) else {
            throw FlagError("--tf32 needs a GPU (--device cuda); on the \(device) device convolutions are float32")
        }
    }

    /// Sets the GPU's mixed precision (`--amp`) and TF32 (`--tf32`); nothing on other devices.
    static func applyPrecision(amp: String?, tf32: Bool, on device: Device) {
        guard !device.isHostMemory, let backend = device.backend as? CUDABackend else { return }
        backend.mixedPrecision = amp.flatMap(CUDABackend.MixedPrecision.init(rawValue:))
        backend.allowsTF32 = tf32
    }
}

/// Where a tensor lives and which backend computes on it.
///
/// `.reference` and `.cpu` both keep their data in host memory (moving between them is a plain
/// copy); they differ in the implementation of every op: ``ReferenceBackend`` is plain,
/// obviously correct Swift, `CPUBackend` (module `SNNCPU`) uses oneDNN, OpenBLAS and blocked
/// Swift kernels. `.cuda(n)` is NVIDIA GPU `n`, whose memory the host cannot read directly
/// (module `SNNCUDA`).
public enum Device: Hashable, Sendable, CustomStringConvertible, Codable {
    case reference
    case cpu
    case cuda(Int)

    public var description: String {
        switch self {
        case .reference: return "reference"
        case .cpu: return "cpu"
        case .cuda(let n): return "cuda:\(n)"
        }
    }

    /// Whether the device keeps its data in host memory, which the host (and every other
    /// host-memory device) can read and write directly.
    public var isHostMemory: Bool {
        switch self {
        case .reference, .cpu: return true
        case .cuda: return false
        }
    }

    /// Parses `reference`, `cpu`, `cuda` (GPU 0) or `cuda:N`.
    public init?(_ name: String) {
        let name = name.lowercased()
        switch name {
        case "reference", "ref": self = .reference
        case "cpu": self = .cpu
        case "cuda", "gpu": self = .cuda(0)
        default:
            guard name.hasPrefix("cuda:"), let n = Int(name.dropFirst(5)), n >= 0 else { return nil }
            self = .cuda(n)
        }
    }

    /// The backend that computes on this device.
    ///
    /// `.cpu` needs `SNNCPU` to have registered itself (`CPUBackend.register()`); without it
    /// this is a programmer error and traps with the fix in the message.
    public var backend: any Backend {
        switch self {
        case .reference: return ReferenceBackend.shared
        case .cpu:
            guard let backend = BackendRegistry.cpu else {
                preconditionFailure("[device] the cpu backend is not registered: call CPUBackend.register() (module SNNCPU)")
            }
            return backend
        case .cuda(let n):
            guard let open = BackendRegistry.cuda else {
                preconditionFailure("[device] the cuda backend is not registered: call CUDABackend.register() (module SNNCUDA)")
            }
            return open(n)
        }
    }
}

extension Device {
    /// The backend whose memory methods create, fill and read this device's tensors: its
    /// compute backend, or, for a host-memory device whose backend module is not registered
    /// (a data loader or a test that computes nothing), the reference backend, whose memory is
    /// the same host memory.
    public var memoryBackend: any Backend {
        if self == .cpu, BackendRegistry.cpu == nil { return ReferenceBackend.shared }
        return backend
    }

    /// The backend that copies from `source` to `destination`: the one that can reach both,
    /// the device's whose memory the host cannot read when one is (see ``Backend/copy(_:into:)``).
    public static func copyingBackend(from source: Device, to destination: Device) -> any Backend {
        source.isHostMemory ? destination.memoryBackend : source.memoryBackend
    }
}

/// Backends that live in other modules register here at start-up.
public enum BackendRegistry {
    nonisolated(unsafe) public static var cpu: (any Backend)?
    /// The backend of GPU `n` (opened on first use; `SNNCUDA` registers it). Opening a GPU that
    /// is missing is reported by whoever parses the device: see `CUDABackend.open(_:)`.
    nonisolated(unsafe) public static var cuda: ((Int) -> any Backend)?
}

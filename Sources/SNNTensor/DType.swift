/// The element type of a tensor.
///
/// `float32` is the working type of every backend. `float64` exists for finite-difference
/// gradient checks on the ``ReferenceBackend``. `float16`/`bfloat16` are reserved for the GPU
/// backend; `int32`/`int64` hold class labels and `uint8` compact spike masks.
public enum DType: String, Sendable, CaseIterable, Codable {
    case float32, float64, float16, bfloat16, int32, int64, uint8

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16: return 2
        case .uint8: return 1
        }
    }

    /// Whether the type holds real numbers.
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: return true
        case .int32, .int64, .uint8: return false
        }
    }

    /// The dtype string used in safetensors headers (`F32`, `I64`, ...).
    public var safetensorsName: String {
        switch self {
        case .float32: return "F32"
        case .float64: return "F64"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .int32: return "I32"
        case .int64: return "I64"
        case .uint8: return "U8"
        }
    }

    /// The dtype for a safetensors header name, or `nil` when SwiftSNN does not hold it.
    public init?(safetensorsName: String) {
        guard let match = DType.allCases.first(where: { $0.safetensorsName == safetensorsName }) else { return nil }
        self = match
    }
}

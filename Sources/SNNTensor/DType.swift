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

    /// Element `i` of host memory at `p` holding this dtype, as `Double`.
    @inline(__always)
    public func load(_ p: UnsafeRawPointer, _ i: Int) -> Double {
        switch self {
        case .float32: return Double(p.assumingMemoryBound(to: Float.self)[i])
        case .float64: return p.assumingMemoryBound(to: Double.self)[i]
        case .float16: return Double(Float(half: p.assumingMemoryBound(to: UInt16.self)[i]))
        case .bfloat16: return Double(Float(bitPattern: UInt32(p.assumingMemoryBound(to: UInt16.self)[i]) << 16))
        case .int32: return Double(p.assumingMemoryBound(to: Int32.self)[i])
        case .int64: return Double(p.assumingMemoryBound(to: Int64.self)[i])
        case .uint8: return Double(p.assumingMemoryBound(to: UInt8.self)[i])
        }
    }

    /// Writes `v` rounded to this dtype as element `i` of host memory at `p` (to an integer type:
    /// truncated toward zero and saturated, ``Swift/FixedWidthInteger/init(truncatingSaturating:)``).
    @inline(__always)
    public func store(_ v: Double, _ p: UnsafeMutableRawPointer, _ i: Int) {
        switch self {
        case .float32: p.assumingMemoryBound(to: Float.self)[i] = Float(v)
        case .float64: p.assumingMemoryBound(to: Double.self)[i] = v
        case .float16: p.assumingMemoryBound(to: UInt16.self)[i] = Float(v).halfBits
        case .bfloat16:
            // Round to nearest even on the upper 16 bits.
            let bits = Float(v).bitPattern
            p.assumingMemoryBound(to: UInt16.self)[i] = UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
        case .int32: p.assumingMemoryBound(to: Int32.self)[i] = Int32(truncatingSaturating: v)
        case .int64: p.assumingMemoryBound(to: Int64.self)[i] = Int64(truncatingSaturating: v)
        case .uint8: p.assumingMemoryBound(to: UInt8.self)[i] = UInt8(truncatingSaturating: v)
        }
    }

    /// `v` rounded to this dtype.
    public func rounded(_ v: Double) -> Double {
        withUnsafeTemporaryAllocation(byteCount: 8, alignment: 8) { buffer in
            store(v, buffer.baseAddress!, 0)
            return load(buffer.baseAddress!, 0)
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

extension FixedWidthInteger {
    /// `v` truncated toward zero and clamped to the type's range; NaN gives 0.
    ///
    /// This is how every backend casts floats to integers, so a value out of range gives the
    /// nearest integer the type holds (as CUDA's saturating conversion does) instead of stopping
    /// the process, as `init(_: Double)` would.
    @inlinable @inline(__always)
    public init(truncatingSaturating v: Double) {
        if v.isNaN {
            self = 0
        } else if v <= Double(Self.min) {
            self = Self.min
        } else if v >= Double(Self.max) {
            // Double(max) can round up to 2^bits (Int64), so `>=` also catches it.
            self = Self.max
        } else {
            self = Self(v)
        }
    }
}

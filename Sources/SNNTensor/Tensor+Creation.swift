import Foundation

/// Factories and host read-back.
extension Tensor {
    /// A new contiguous tensor of zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        Tensor(storage: Storage(byteCount: ShapeUtil.count(shape) * dtype.size), shape: shape, dtype: dtype, device: device)
    }

    /// A new contiguous tensor whose elements the caller writes before reading.
    public static func empty(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        Tensor(storage: Storage(uninitializedByteCount: ShapeUtil.count(shape) * dtype.size), shape: shape, dtype: dtype, device: device)
    }

    /// A new tensor with every element equal to `value`.
    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        let t = empty(shape, dtype: dtype, device: device)
        for i in 0..<t.count { t.storeElement(i, value) }
        return t
    }

    /// A new tensor of ones.
    public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        full(shape, 1, dtype: dtype, device: device)
    }

    /// A 0-d tensor holding `value`.
    public static func scalar(_ value: Double, dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        full([], value, dtype: dtype, device: device)
    }

    /// A float32 tensor from values in row-major order.
    public convenience init(_ values: [Float], shape: [Int], device: Device = .cpu) {
        precondition(values.count == ShapeUtil.count(shape),
                     "[tensor] expected \(ShapeUtil.count(shape)) values for shape \(ShapeUtil.describe(shape)), got \(values.count)")
        let storage = Storage(uninitializedByteCount: values.count * 4)
        values.withUnsafeBytes { storage.data.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        self.init(storage: storage, shape: shape, dtype: .float32, device: device)
    }

    /// A tensor of any dtype from `Double` values in row-major order (rounded to the dtype).
    public convenience init(doubles values: [Double], shape: [Int], dtype: DType = .float64, device: Device = .reference) {
        precondition(values.count == ShapeUtil.count(shape),
                     "[tensor] expected \(ShapeUtil.count(shape)) values for shape \(ShapeUtil.describe(shape)), got \(values.count)")
        self.init(storage: Storage(uninitializedByteCount: values.count * dtype.size), shape: shape, dtype: dtype, device: device)
        for (i, v) in values.enumerated() { storeElement(i, v) }
    }

    /// An int32 tensor of class labels `[N]`.
    public convenience init(labels: [Int], device: Device = .cpu) {
        self.init(doubles: labels.map(Double.init), shape: [labels.count], dtype: .int32, device: device)
    }

    /// How many times front-end code on the calling thread has read tensor values back to the
    /// host (``item()``, ``toDoubles()``, ``toFloats()``): on a GPU each is a synchronisation. A
    /// training step reads nothing until its loss is read (a test holds it to that). Counted per
    /// thread, so concurrent work elsewhere does not disturb a count.
    public static var hostReadCount: Int {
        (Thread.current.threadDictionary[hostReadKey] as? Int) ?? 0
    }
    private static let hostReadKey = "SNNTensor.hostReads"
    private static func countHostRead() {
        Thread.current.threadDictionary[hostReadKey] = hostReadCount + 1
    }

    /// The elements in row-major order, as `Double` whatever the dtype.
    public func toDoubles() -> [Double] {
        Tensor.countHostRead()
        let c = contiguousData()
        return (0..<c.count).map { c.loadElement($0) }
    }

    /// The elements in row-major order, as `Float`.
    public func toFloats() -> [Float] {
        if dtype == .float32 {
            Tensor.countHostRead()
            let c = contiguousData()
            return Array(UnsafeBufferPointer(start: c.pointer(as: Float.self), count: c.count))
        }
        return toDoubles().map { Float($0) }
    }

    /// The only element of a one-element tensor.
    public func item() -> Double {
        precondition(count == 1, "[item] expected a tensor with one element, got shape \(ShapeUtil.describe(shape))")
        Tensor.countHostRead()
        return isContiguous ? loadElement(0) : contiguousData().loadElement(0)
    }

    /// This tensor, or a contiguous copy of it (no autograd record).
    package func contiguousData() -> Tensor { isContiguous ? self : backend.contiguous(self) }

    /// Reads element `i` of the underlying storage, counted from `offset` in contiguous order.
    /// Only valid on contiguous tensors.
    package func loadElement(_ i: Int) -> Double {
        let p = storage.data
        let j = offset + i
        switch dtype {
        case .float32: return Double(p.assumingMemoryBound(to: Float.self)[j])
        case .float64: return p.assumingMemoryBound(to: Double.self)[j]
        case .float16: return Double(Float(half: p.assumingMemoryBound(to: UInt16.self)[j]))
        case .bfloat16: return Double(Float(bitPattern: UInt32(p.assumingMemoryBound(to: UInt16.self)[j]) << 16))
        case .int32: return Double(p.assumingMemoryBound(to: Int32.self)[j])
        case .int64: return Double(p.assumingMemoryBound(to: Int64.self)[j])
        case .uint8: return Double(p.assumingMemoryBound(to: UInt8.self)[j])
        }
    }

    /// Writes element `i` (contiguous order from `offset`), rounding to the dtype.
    package func storeElement(_ i: Int, _ v: Double) {
        let p = storage.data
        let j = offset + i
        switch dtype {
        case .float32: p.assumingMemoryBound(to: Float.self)[j] = Float(v)
        case .float64: p.assumingMemoryBound(to: Double.self)[j] = v
        case .float16: p.assumingMemoryBound(to: UInt16.self)[j] = Float(v).halfBits
        case .bfloat16:
            // Round to nearest even on the upper 16 bits.
            let bits = Float(v).bitPattern
            p.assumingMemoryBound(to: UInt16.self)[j] = UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
        case .int32: p.assumingMemoryBound(to: Int32.self)[j] = Int32(v)
        case .int64: p.assumingMemoryBound(to: Int64.self)[j] = Int64(v)
        case .uint8: p.assumingMemoryBound(to: UInt8.self)[j] = UInt8(v)
        }
    }

    /// Overwrites this tensor's elements with `source`'s (same shape; used by optimisers and
    /// loaders). Not recorded on the tape.
    public func assign(_ source: Tensor) {
        precondition(source.shape == shape, "[assign] expected shape \(ShapeUtil.describe(shape)), got \(ShapeUtil.describe(source.shape))")
        precondition(isContiguous, "[assign] expected a contiguous destination")
        let src = source.dtype == dtype ? source.contiguousData() : backend.cast(source.contiguousData(), to: dtype)
        storage.data.advanced(by: offset * dtype.size)
            .copyMemory(from: src.storage.data.advanced(by: src.offset * dtype.size), byteCount: count * dtype.size)
    }
}

extension Float {
    /// IEEE half-precision bits of this value (round to nearest even).
    var halfBits: UInt16 {
        #if arch(x86_64) || arch(arm64)
        return Float16(self).bitPattern
        #else
        fatalError("float16 is not supported on this architecture")
        #endif
    }

    /// The value of IEEE half-precision bits.
    init(half bits: UInt16) {
        self = Float(Float16(bitPattern: bits))
    }
}

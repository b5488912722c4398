import Foundation

/// Factories and host read-back: values enter and leave a device only through its backend.
extension Tensor {
    /// A new contiguous tensor on `device` whose elements the caller writes before reading, or
    /// a thrown ``DeviceError`` when the device cannot hold it.
    public static func allocate(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws(DeviceError) -> Tensor {
        precondition(shape.allSatisfy { $0 >= 0 }, "[allocate] expected non-negative dimensions, got \(ShapeUtil.describe(shape))")
        return try device.memoryBackend.allocate(shape, dtype: dtype)
    }

    /// A new contiguous tensor whose elements the caller writes before reading.
    ///
    /// Ops allocate their results through this. A device that cannot hold the tensor ends the
    /// process through ``DeviceFailure/report(_:context:)`` (one line naming the device, the
    /// size and the bytes held; exit status 1): ops do not throw, so that arithmetic reads as
    /// arithmetic; ``allocate(_:dtype:device:)`` is the throwing form.
    public static func empty(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        do {
            return try allocate(shape, dtype: dtype, device: device)
        } catch {
            DeviceFailure.report(error, context: "allocating \(ShapeUtil.describe(shape)) \(dtype)")
        }
    }

    /// A new contiguous tensor of zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        full(shape, 0, dtype: dtype, device: device)
    }

    /// A new tensor with every element equal to `value`.
    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        let t = empty(shape, dtype: dtype, device: device)
        device.memoryBackend.fill(t, with: value)
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
        let t = Tensor.empty(shape, dtype: .float32, device: device)
        values.withUnsafeBytes { device.memoryBackend.upload($0, into: t) }
        self.init(storage: t.storage, shape: shape, dtype: .float32, device: device)
    }

    /// A tensor of any dtype from `Double` values in row-major order (rounded to the dtype).
    public convenience init(doubles values: [Double], shape: [Int], dtype: DType = .float64, device: Device = .reference) {
        precondition(values.count == ShapeUtil.count(shape),
                     "[tensor] expected \(ShapeUtil.count(shape)) values for shape \(ShapeUtil.describe(shape)), got \(values.count)")
        let t = Tensor.empty(shape, dtype: dtype, device: device)
        withUnsafeTemporaryAllocation(byteCount: Swift.max(values.count * dtype.size, 1), alignment: 16) { staging in
            for (i, v) in values.enumerated() { dtype.store(v, staging.baseAddress!, i) }
            device.memoryBackend.upload(UnsafeRawBufferPointer(rebasing: staging[..<(values.count * dtype.size)]), into: t)
        }
        self.init(storage: t.storage, shape: shape, dtype: dtype, device: device)
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

    /// The raw bytes of the elements in row-major order, read back from the device.
    private func downloadedBytes() -> [UInt8] {
        Tensor.countHostRead()
        let c = contiguousData()
        return [UInt8](unsafeUninitializedCapacity: c.count * dtype.size) { buffer, initialized in
            c.device.memoryBackend.download(c, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = c.count * dtype.size
        }
    }

    /// The elements in row-major order, as `Double` whatever the dtype.
    public func toDoubles() -> [Double] {
        let bytes = downloadedBytes(), type = dtype, n = count
        return bytes.withUnsafeBytes { raw in (0..<n).map { type.load(raw.baseAddress!, $0) } }
    }

    /// The elements in row-major order, as `Float`.
    public func toFloats() -> [Float] {
        guard dtype == .float32 else { return toDoubles().map { Float($0) } }
        Tensor.countHostRead()
        let c = contiguousData()
        return [Float](unsafeUninitializedCapacity: c.count) { buffer, initialized in
            c.device.memoryBackend.download(c, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = c.count
        }
    }

    /// The values of several tensors on one device, read back with one copy (on a GPU one wait
    /// rather than one per tensor), each as `Double` in row-major order. They travel as float32
    /// (which holds every 16-bit float, spike code and small count exactly), or as float64 when
    /// one of them is float64.
    public static func read(_ tensors: [Tensor]) -> [[Double]] {
        guard let first = tensors.first else { return [] }
        precondition(tensors.allSatisfy { $0.device == first.device },
                     "[read] expected tensors on one device, got \(Set(tensors.map { "\($0.device)" }).sorted())")
        let dtype: DType = tensors.contains { $0.dtype == .float64 } ? .float64 : .float32
        let parts = tensors.filter { $0.count > 0 }.map { $0.contiguousData().reshaped([$0.count]).converted(to: dtype) }
        let values = parts.isEmpty ? [] : (parts.count == 1 ? parts[0] : concat(parts, axis: 0)).toDoubles()
        var start = 0
        return tensors.map { t in
            defer { start += t.count }
            return Array(values[start..<(start + t.count)])
        }
    }

    /// This tensor's values as `dtype` (this tensor itself when it has that dtype already), by the
    /// device's cast; no gradient flows through it.
    func converted(to dtype: DType) -> Tensor {
        self.dtype == dtype ? self : backend.cast(self, to: dtype)
    }

    /// The only element of a one-element tensor.
    public func item() -> Double {
        precondition(count == 1, "[item] expected a tensor with one element, got shape \(ShapeUtil.describe(shape))")
        return toDoubles()[0]
    }

    /// This tensor, or a contiguous copy of it (no autograd record).
    package func contiguousData() -> Tensor { isContiguous ? self : backend.contiguous(self) }

    /// Reads element `i` of the underlying storage, counted from `offset` in contiguous order.
    /// Only for host-memory devices; only valid on contiguous tensors.
    package func loadElement(_ i: Int) -> Double { dtype.load(storage.data, offset + i) }

    /// Writes element `i` (contiguous order from `offset`), rounding to the dtype. Only for
    /// host-memory devices.
    package func storeElement(_ i: Int, _ v: Double) { dtype.store(v, storage.data, offset + i) }

    /// Overwrites this tensor's elements with `source`'s (same shape, converted to this dtype;
    /// either may be strided; used by optimisers and loaders). Not recorded on the tape. The
    /// tensor is then marked as spikes exactly when `source` is, and byte copies that saved
    /// spikes share (``SavedActivation``) are no longer shared from its storage.
    public func assign(_ source: Tensor) {
        precondition(source.shape == shape, "[assign] expected shape \(ShapeUtil.describe(shape)), got \(ShapeUtil.describe(source.shape))")
        Device.copyingBackend(from: source.device, to: device).copy(source, into: self)
        spikeQuantum = source.spikeQuantum
        storage.forgetCompactCodes()
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

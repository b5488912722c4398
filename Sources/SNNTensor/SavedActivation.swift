/// A tensor a gradient rule keeps, in the most compact form that restores it exactly.
///
/// Spike tensors (``Tensor/spikeQuantum``: every element `k·q` with an integer `k ≤ 1/q` and
/// `q` a power of two) are kept as one byte per element and restored bit for bit; anything
/// else is kept as it is. This is what lets a network's saved activations cost a quarter of
/// their float32 size between spiking layers (ARCHITECTURE property 8).
public struct SavedActivation: @unchecked Sendable {
    private let full: Tensor?
    private let codes: Tensor?
    private let quantum: Double
    private let dtype: DType

    public init(_ x: Tensor) {
        dtype = x.dtype
        if let q = x.spikeQuantum, x.dtype.isFloatingPoint {
            codes = SavedActivation.codes(of: x, quantum: q)
            full = nil
            quantum = q
        } else {
            (full, codes, quantum) = (x, nil, 1)
        }
    }

    /// `x / q` as bytes, contiguous in `x`'s shape. Where `x` is contiguous, the codes are shared
    /// with every other rule that saves the same elements while one keeps them (values never
    /// change under a tensor: ops make new ones), so they are cast and held once.
    private static func codes(of x: Tensor, quantum q: Double) -> Tensor {
        func cast() -> Tensor {
            let plain = x.detached()
            let scaled = q == 1 ? plain : withoutGradients { plain * (1 / q) }
            return x.backend.cast(scaled.contiguousData(), to: .uint8)
        }
        guard x.isContiguous, x.count > 0 else { return cast() }
        let storage = x.storage
        Storage.compactCodesLock.lock()
        let shared = storage.compactCodes.first { $0.offset == x.offset && $0.count == x.count && $0.quantum == q }?.codes
        Storage.compactCodesLock.unlock()
        if let shared { return Tensor(storage: shared, shape: x.shape, dtype: .uint8, device: x.device) }
        let made = cast()
        guard made.isContiguous, made.offset == 0 else { return made }
        Storage.compactCodesLock.lock()
        storage.compactCodes.removeAll { $0.codes == nil }
        storage.compactCodes.append(Storage.CompactCodes(offset: x.offset, count: x.count, quantum: q, codes: made.storage))
        Storage.compactCodesLock.unlock()
        return made
    }

    /// The bytes it keeps spikes in and their quantum (element `i` is `codes[i] · quantum`), for
    /// a backend that reads them as they are instead of restoring ``value``; `nil` when it keeps
    /// the tensor itself.
    public var compact: (codes: Tensor, quantum: Double)? { codes.map { ($0, quantum) } }

    /// The storage of its codes, when it keeps codes (for tests of their sharing).
    var codesStorage: Storage? { codes?.storage }

    /// The bytes it holds.
    public var byteCount: Int { (full ?? codes).map { $0.count * $0.dtype.size } ?? 0 }

    /// The saved tensor (restored from its bytes when compact; the restored tensor is marked as
    /// spikes again).
    public var value: Tensor {
        if let full { return full }
        guard let codes else { preconditionFailure("[SavedActivation] holds nothing") }
        let restored = codes.backend.cast(codes, to: dtype)
        let out = quantum == 1 ? restored : withoutGradients { restored * quantum }
        out.spikeQuantum = quantum
        return out
    }
}

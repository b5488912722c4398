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
            let backend = x.backend
            let plain = x.detached()
            let scaled = q == 1 ? plain : withoutGradients { plain * (1 / q) }
            codes = backend.cast(scaled.contiguousData(), to: .uint8)
            full = nil
            quantum = q
        } else {
            (full, codes, quantum) = (x, nil, 1)
        }
    }

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

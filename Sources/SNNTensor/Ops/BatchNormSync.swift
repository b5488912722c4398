import Foundation

/// Batch statistics over every process of a data-parallel run (`snn train --sync-bn`, PyTorch's
/// `SyncBatchNorm`): while ``sum`` is set, training-mode ``batchNorm(_:gamma:beta:runningMean:runningVar:training:momentum:epsilon:)``
/// and ``batchNormNeuronScan(_:steps:gamma:beta:runningMean:runningVar:momentum:epsilon:residual:neuron:)``
/// normalise with the mean and variance of the union of every process's batch, and their
/// backward passes use that union's gradient sums, so W processes with batches of n compute the
/// gradients one process computes with a batch of W·n (up to float rounding).
///
/// Each op adds two small all-reduces per call, in the same order on every process (the
/// network's order): `2C + 1` doubles forward (the element count, Σx and Σx² per channel, each
/// process's summed as `n·μ` and `n·(σ² + μ²)` from its own two-pass statistics), and `2C`
/// backward (Σ dL/dx̂ and Σ dL/dx̂·x̂). The running statistics are updated with the union's, so
/// they are the same on every process.
public enum CrossProcessBatchNorm {
    /// Sums each element of the buffer over every process, in place, on every process at once;
    /// `nil`: each process's statistics are its own (the default, as PyTorch's DDP).
    ///
    /// Per thread, as ``GradMode`` is: it applies to the ops of the thread that set it (the
    /// training step's), never to work another thread does meanwhile (an evaluation, a test).
    public static var sum: ((UnsafeMutableBufferPointer<Double>) -> Void)? {
        get {
            pthread_getspecific(key).map { Unmanaged<Box>.fromOpaque($0).takeUnretainedValue().sum }
        }
        set {
            if let old = pthread_getspecific(key) { Unmanaged<Box>.fromOpaque(old).release() }
            pthread_setspecific(key, newValue.map { UnsafeRawPointer(Unmanaged.passRetained(Box($0)).toOpaque()) })
        }
    }

    private final class Box {
        let sum: (UnsafeMutableBufferPointer<Double>) -> Void
        init(_ sum: @escaping (UnsafeMutableBufferPointer<Double>) -> Void) { self.sum = sum }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Batch statistics and gradient sums over every process, when ``sum`` is set.
    struct Union {
        let sum: (UnsafeMutableBufferPointer<Double>) -> Void
        /// Elements per channel in this process's batch and in the union.
        private(set) var localCount = 0.0, count = 0.0

        static var current: Union? { CrossProcessBatchNorm.sum.map { Union(sum: $0) } }

        /// The union's mean and biased variance from this process's (`[C]` each) over `localCount`
        /// elements per channel.
        mutating func statistics(mean: Tensor, variance: Tensor, localCount n: Int) -> (mean: Tensor, variance: Tensor) {
            let (m, v) = (mean.toDoubles(), variance.toDoubles())
            let c = m.count
            var buffer = [Double(n)] + m.map { Double(n) * $0 } + zip(m, v).map { Double(n) * ($1 + $0 * $0) }
            buffer.withUnsafeMutableBufferPointer { sum($0) }
            (localCount, count) = (Double(n), buffer[0])
            let total = Swift.max(count, 1)
            let unionMean = (0..<c).map { buffer[1 + $0] / total }
            let unionVariance = (0..<c).map { Swift.max(buffer[1 + c + $0] / total - unionMean[$0] * unionMean[$0], 0) }
            return (Tensor(doubles: unionMean, shape: [c], dtype: mean.dtype, device: mean.device),
                    Tensor(doubles: unionVariance, shape: [c], dtype: variance.dtype, device: variance.device))
        }

        /// Batch norm's input gradient `gradInput`, computed by a backend from this process's
        /// gradient sums (`gammaSum` = Σ dL/dx̂·x̂, `betaSum` = Σ dL/dx̂, `[C]`) over
        /// ``localCount``, corrected to the union's sums over ``count``:
        /// `dL/dx = k(g − m₁ − x̂·m₂)` with `k = γ/√(σ²+ε)`, `m₁ = Σg/n`, `m₂ = Σg·x̂/n`, so the
        /// union's is the local one plus `k(Δm₁ + x̂·Δm₂)` per channel, `Δm = m_local − m_union`.
        /// `x` is the op's input and `mean`, `variance` the union's statistics it normalised with.
        func gradientInput(_ gradInput: Tensor, x: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                           gammaSum: Tensor, betaSum: Tensor) -> Tensor {
            let (gs, bs) = (gammaSum.toDoubles(), betaSum.toDoubles())
            let c = gs.count
            var buffer = bs + gs
            buffer.withUnsafeMutableBufferPointer { sum($0) }
            let (g, m, v) = (gamma.toDoubles(), mean.toDoubles(), variance.toDoubles())
            let (n, total) = (Swift.max(localCount, 1), Swift.max(count, 1))
            var scale = [Double](repeating: 0, count: c), shift = scale
            for ch in 0..<c {
                let invstd = 1 / (v[ch] + epsilon).squareRoot()
                let k = g[ch] * invstd
                let d1 = bs[ch] / n - buffer[ch] / total, d2 = gs[ch] / n - buffer[c + ch] / total
                // k(d1 + (x − μ)·invstd·d2) = x·(k·invstd·d2) + k(d1 − μ·invstd·d2)
                scale[ch] = k * invstd * d2
                shift[ch] = k * (d1 - m[ch] * invstd * d2)
            }
            let shape = [1, c] + [Int](repeating: 1, count: x.rank - 2)
            return withoutGradients {
                gradInput + x * Tensor(doubles: scale, shape: shape, dtype: x.dtype, device: x.device)
                    + Tensor(doubles: shift, shape: shape, dtype: x.dtype, device: x.device)
            }
        }
    }
}

import Foundation

/// Batch statistics over every process of a data-parallel run (`snn train --sync-bn`, PyTorch's
/// `SyncBatchNorm`): while ``group`` is set, training-mode ``batchNorm(_:gamma:beta:runningMean:runningVar:training:momentum:epsilon:)``
/// and ``batchNormNeuronScan(_:steps:gamma:beta:runningMean:runningVar:momentum:epsilon:residual:neuron:)``
/// normalise with the mean and variance of the union of every process's batch, and their
/// backward passes use that union's gradient sums, so W processes with batches of n compute the
/// gradients one process computes with a batch of W·n (up to float rounding).
///
/// Each op adds two small all-reduces per call, in the same order on every process (the
/// network's order), of float32 tensors on the op's device (so on GPUs NCCL sums them on the
/// stream, and a step never waits for the host):
/// - forward, `W·(2C + 1)` values: each process writes its element count, mean and variance
///   into its own row of zeros, so the sum gathers every process's statistics. They are combined
///   as `μ = Σ nᵢμᵢ / N` and `σ² = Σ nᵢ(σᵢ² + (μᵢ − μ)²) / N`, which has no cancellation where
///   the mean is large against the spread (summing `Σx²` would);
/// - backward, `2C` values: Σ dL/dx̂ and Σ dL/dx̂·x̂.
///
/// The running statistics are updated with the union's, so they are the same on every process.
public enum CrossProcessBatchNorm {
    /// The processes that normalise together, and how a tensor is summed over them.
    public struct Group: Sendable {
        /// This process's index, `0..<size`, and the number of processes.
        public let rank: Int, size: Int
        /// Sums a contiguous float32 tensor (on the device of the batch norm's input) over every
        /// process, in place, on every process at once.
        public let sum: @Sendable (Tensor) -> Void

        public init(rank: Int, size: Int, sum: @escaping @Sendable (Tensor) -> Void) {
            precondition(size >= 1 && (0..<size).contains(rank), "[CrossProcessBatchNorm] expected a rank in 0..<\(size), got \(rank)")
            (self.rank, self.size, self.sum) = (rank, size, sum)
        }
    }

    /// The processes whose batches batch norm normalises together; `nil`: each process's
    /// statistics are its own (the default, as PyTorch's DDP).
    ///
    /// Per thread, as ``GradMode`` is: it applies to the ops of the thread that set it (the
    /// training step's), never to work another thread does meanwhile (an evaluation, a test).
    public static var group: Group? {
        get {
            pthread_getspecific(key).map { Unmanaged<Box>.fromOpaque($0).takeUnretainedValue().group }
        }
        set {
            if let old = pthread_getspecific(key) { Unmanaged<Box>.fromOpaque(old).release() }
            pthread_setspecific(key, newValue.map { UnsafeRawPointer(Unmanaged.passRetained(Box($0)).toOpaque()) })
        }
    }

    private final class Box {
        let group: Group
        init(_ group: Group) { self.group = group }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Batch statistics and gradient sums over every process, when ``group`` is set. Its
    /// arithmetic is float32 tensor ops on the input's device.
    struct Union {
        let group: Group
        /// Elements per channel in this process's batch; in the union (a `[1]` tensor: only the
        /// sum knows it).
        private(set) var localCount = 0
        private(set) var count: Tensor?

        static var current: Union? { CrossProcessBatchNorm.group.map { Union(group: $0) } }

        /// The union's mean and biased variance from this process's (`[C]` each) over `n`
        /// elements per channel, in their dtype.
        mutating func statistics(mean: Tensor, variance: Tensor, localCount n: Int) -> (mean: Tensor, variance: Tensor) {
            withoutGradients {
                let (c, device) = (mean.count, mean.device)
                let row = concat([Tensor.full([1], Double(n), device: device), mean.converted(to: .float32),
                                  variance.converted(to: .float32)], axis: 0)
                    .reshaped([1, 2 * c + 1])
                // This process's row at its rank, zeros in the others': the sum gathers every
                // process's row.
                let (before, after) = (group.rank, group.size - group.rank - 1)
                let parts = (before > 0 ? [Tensor.zeros([before, 2 * c + 1], device: device)] : []) + [row]
                    + (after > 0 ? [Tensor.zeros([after, 2 * c + 1], device: device)] : [])
                let table = parts.count == 1 ? row.contiguous() : concat(parts, axis: 0)
                group.sum(table)
                let counts = table.sliced(axis: 1, 0..<1), means = table.sliced(axis: 1, 1..<(c + 1))
                let variances = table.sliced(axis: 1, (c + 1)..<(2 * c + 1))
                let total = counts.sum(axes: [0])
                let share = counts / maximum(total, 1)
                let unionMean = (share * means).sum(axes: [0])
                let unionVariance = (share * (variances + (means - unionMean).square())).sum(axes: [0])
                (localCount, count) = (n, total)
                return (unionMean.converted(to: mean.dtype), unionVariance.converted(to: variance.dtype))
            }
        }

        /// The union's biased `variance` made unbiased: times `N / max(N − 1, 1)`.
        func unbiased(_ variance: Tensor) -> Tensor {
            withoutGradients {
                let total = count!
                return variance * (total / maximum(total - 1, 1)).converted(to: variance.dtype)
            }
        }

        /// Batch norm's input gradient `gradInput`, computed by a backend from this process's
        /// gradient sums (`gammaSum` = Σ dL/dx̂·x̂, `betaSum` = Σ dL/dx̂, `[C]`) over
        /// ``localCount``, corrected to the union's sums over its count:
        /// `dL/dx = k(g − m₁ − x̂·m₂)` with `k = γ/√(σ²+ε)`, `m₁ = Σg/n`, `m₂ = Σg·x̂/n`, so the
        /// union's is the local one plus `k(Δm₁ + x̂·Δm₂)` per channel, `Δm = m_local − m_union`.
        /// `x` is the op's input and `mean`, `variance` the union's statistics it normalised with.
        func gradientInput(_ gradInput: Tensor, x: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                           gammaSum: Tensor, betaSum: Tensor) -> Tensor {
            withoutGradients {
                let c = gammaSum.count
                let (gs, bs) = (gammaSum.converted(to: .float32), betaSum.converted(to: .float32))
                let sums = concat([bs, gs], axis: 0)
                group.sum(sums)
                let (n, total) = (Double(Swift.max(localCount, 1)), maximum(count!, 1))
                let d1 = bs / n - sums.sliced(axis: 0, 0..<c) / total
                let d2 = gs / n - sums.sliced(axis: 0, c..<(2 * c)) / total
                let invstd = 1 / (variance.converted(to: .float32) + epsilon).sqrt()
                let k = gamma.converted(to: .float32) * invstd
                // k(d1 + (x − μ)·invstd·d2) = x·(k·invstd·d2) + k(d1 − μ·invstd·d2)
                let scale = k * invstd * d2, shift = k * (d1 - mean.converted(to: .float32) * invstd * d2)
                let shape = [1, c] + [Int](repeating: 1, count: x.rank - 2)
                return gradInput + x * scale.converted(to: x.dtype).reshaped(shape)
                    + shift.converted(to: x.dtype).reshaped(shape)
            }
        }
    }
}

import SNNData
import SNNModels
import SNNTensor

/// How the Fisher information of a timestep is estimated (TRT-SPEC.md §5).
public enum FisherEstimator: String, CaseIterable, Sendable, Codable {
    /// The reference code's estimator: over the first 101 training batches, the squared
    /// gradient of the *batch-mean* loss, summed and divided by 100 (its constant). It squares a
    /// mean of per-sample gradients, so it shrinks with the batch size; the paper's figures use it.
    case reference
    /// The empirical Fisher: the mean over samples of each sample's squared gradient norm.
    case perSample = "per-sample"

    /// What the estimator computes, for reports.
    public var label: String {
        switch self {
        case .reference: return "reference estimator: Σ over batches of ‖∇ mean-batch loss‖² / 100"
        case .perSample: return "empirical Fisher: mean over samples of ‖∇ sample loss‖²"
        }
    }
}

/// The Fisher information of a network per timestep and its information centroid.
public struct FisherInformation: Sendable, Codable {
    /// FI_t for t = 1...T: the trace of the (estimated) Fisher information of the loss of the
    /// output averaged over the first t timesteps.
    public var perTimestep: [Double]
    public var estimator: FisherEstimator
    /// Batches (reference) or samples (per-sample) the estimate is taken over.
    public var batches: Int
    public var samples: Int

    /// IC = Σ_t t·FI_t / Σ_t FI_t: the timestep around which the information sits (`nan` when
    /// every FI_t is zero).
    public var centroid: Double { FisherInformation.centroid(perTimestep) }

    public static func centroid(_ fi: [Double]) -> Double {
        let total = fi.reduce(0, +)
        return fi.enumerated().reduce(0) { $0 + Double($1.offset + 1) * $1.element } / total
    }

    /// The reference's constant divisor of the summed squared gradients.
    public static let referenceDivisor = 100.0

    /// Estimates FI_t for every t on `data` with the network in evaluation mode (batch norm on
    /// its running statistics), restoring the network's mode and its parameters' gradient flags.
    ///
    /// For each batch the network runs forward once; the T losses (negative log-likelihood of
    /// the log-softmax of the mean output over the first t steps) are back-propagated through
    /// that one recorded pass in turn. `reference` takes the first `batches` batches of
    /// `batchIndices`; `perSample` runs the samples of those batches one at a time.
    ///
    /// - Parameters:
    ///   - batchIndices: the batches to use, in order (e.g. the shuffled order of an epoch).
    ///   - epoch: passed to the data set (augmentation draws).
    public static func estimate(model: SpikingNetwork, data: any LabelledDataset, batchIndices: [ArraySlice<Int>], epoch: Int,
                                estimator: FisherEstimator, batches: Int = 101,
                                progress: ((Int, Int) -> Void)? = nil) throws -> FisherInformation {
        let T = model.config.timesteps
        let used = Array(batchIndices.prefix(max(batches, 0)))
        let parameters = model.namedParameters().map(\.value)
        let device = parameters.first?.device ?? .cpu
        let wasTraining = model.training
        let flags = parameters.map(\.requiresGrad)
        model.eval()
        for p in parameters { p.requiresGrad = true }
        defer {
            for (p, f) in zip(parameters, flags) { p.requiresGrad = f }
            model.train(wasTraining)
        }
        var sums = [Double](repeating: 0, count: T)
        var samples = 0
        // Each parameter's ‖∇ loss_t‖² stays on the device until the batch is done, then all of
        // them are read at once (on a GPU one wait a batch, not one per sample, step and
        // parameter) and summed in the order they were made.
        var pending: [(t: Int, weight: Double, squares: [Tensor])] = []
        /// Queues ‖∇ loss_t‖² for t = 1...T of one forward pass over `inputs`, scaled by `weight`.
        func accumulate(_ inputs: Tensor, _ labels: Tensor, weight: Double) {
            let out = model(inputs.to(device))  // [T, N, K]
            let y = labels.to(device)
            var prefix: Tensor?
            for t in 1...T {
                let o = out.sliced(axis: 0, (t - 1)..<t).squeezed(0)
                prefix = prefix.map { $0 + o } ?? o
                let loss = crossEntropy(logits: prefix! / Double(t), labels: y)
                let squares = loss.gradients(retainGraph: t < T).map { pair in withoutGradients { (pair.1 * pair.1).sum() } }
                pending.append((t, weight, squares))
            }
        }
        func addPending() {
            let values = Tensor.read(pending.flatMap(\.squares))
            var next = 0
            for (t, weight, squares) in pending {
                sums[t - 1] += weight * values[next..<(next + squares.count)].map { $0[0] }.reduce(0, +)
                next += squares.count
            }
            pending = []
        }
        var done = 0
        for indices in used {
            let batch = try data.batch(indices, epoch: epoch)
            switch estimator {
            case .reference:
                accumulate(batch.inputs, batch.labels, weight: 1 / referenceDivisor)
            case .perSample:
                // Sequences are time-major, [T, N, C, H, W]; static inputs are [N, C, H, W].
                let sampleAxis = batch.inputs.shape.count == model.config.inputShape.count + 2 ? 1 : 0
                for i in 0..<batch.count {
                    accumulate(batch.inputs.sliced(axis: sampleAxis, i..<(i + 1)), batch.labels.sliced(axis: 0, i..<(i + 1)), weight: 1)
                }
            }
            addPending()
            samples += batch.count
            done += 1
            progress?(done, used.count)
        }
        if estimator == .perSample { sums = sums.map { $0 / Double(max(samples, 1)) } }
        return FisherInformation(perTimestep: sums, estimator: estimator, batches: used.count, samples: samples)
    }
}

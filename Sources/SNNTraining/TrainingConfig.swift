import SNNTensor

/// Everything that defines a training run; recorded in checkpoints and `summary.json`.
public struct TrainingConfig: Codable, Sendable {
    public var dataset: String
    public var topology: String
    public var modelName: String?
    public var timesteps: Int
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Double
    public var optimizer: Optimizer.Kind
    public var scheduler: Bool
    public var weightDecay: Double
    public var l1: Double
    public var l2: Double
    public var loss: TrainingLoss
    public var neuron: NeuronParameters
    public var dropout: Double
    public var batchNorm: Bool
    public var kaimingInit: Bool
    public var seed: UInt64
    public var device: String
    public var maxSteps: Int?
    public var clipGradNorm: Double?
    public var checkpointEpochs: [Int]
    public var saveCheckpoints: Bool
    /// Background threads assembling batches ahead of the step (0: on the training thread).
    public var workers: Int = 2
    /// Drop each epoch's last partial training batch (the reference keeps it).
    public var dropLast: Bool = false
    /// Data options that change what the model sees, recorded in the run's config (e.g.
    /// `dvs_frames: reference`, `classes: all`, `frame_size: 48`).
    public var dataOptions: [String: String]? = nil
    /// Epochs (1-based) after which the Fisher information per timestep is measured and logged
    /// (the reference's `--observe_fi 1 --fi_epochs`); empty: never.
    public var fisherEpochs: [Int]? = nil
    /// Measure the information centroid after every epoch (the reference's `--observe_ic 1`).
    public var observeCentroid: Bool? = nil
    /// Micro-batches of `batchSize` per optimisation step (gradient accumulation); nil: 1.
    public var accumulate: Int? = nil
    /// Batch statistics over every process of a data-parallel run (`--sync-bn`); nil: each
    /// process's own, as PyTorch's DDP.
    public var syncBatchNorm: Bool? = nil
    /// Mixed precision on a GPU (`--amp`): `bf16` or `fp16` operands for matrix products and
    /// convolutions, float32 everything else; `fp16` also scales the loss (``LossScaler``).
    /// nil: float32 throughout.
    public var amp: String? = nil
    /// TF32 tensor cores for float32 convolutions on a GPU (`--tf32`); nil: float32 products.
    public var tf32: Bool? = nil

    public init(dataset: String, topology: String, modelName: String?, timesteps: Int, epochs: Int, batchSize: Int,
                learningRate: Double, optimizer: Optimizer.Kind, scheduler: Bool, weightDecay: Double, l1: Double, l2: Double,
                loss: TrainingLoss, neuron: NeuronParameters, dropout: Double, batchNorm: Bool, kaimingInit: Bool,
                seed: UInt64, device: String, maxSteps: Int?, clipGradNorm: Double?, checkpointEpochs: [Int], saveCheckpoints: Bool) {
        (self.dataset, self.topology, self.modelName, self.timesteps, self.epochs, self.batchSize) =
            (dataset, topology, modelName, timesteps, epochs, batchSize)
        (self.learningRate, self.optimizer, self.scheduler, self.weightDecay, self.l1, self.l2) =
            (learningRate, optimizer, scheduler, weightDecay, l1, l2)
        (self.loss, self.neuron, self.dropout, self.batchNorm, self.kaimingInit, self.seed, self.device) =
            (loss, neuron, dropout, batchNorm, kaimingInit, seed, device)
        (self.maxSteps, self.clipGradNorm, self.checkpointEpochs, self.saveCheckpoints) = (maxSteps, clipGradNorm, checkpointEpochs, saveCheckpoints)
    }
}

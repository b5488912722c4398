import SNNData
import SNNModels
import SNNTensor
import SNNTraining

/// A tiny training run on synthetic events, shared by the trainer tests (debug builds are slow).
enum TinyRun {
    static func config(epochs: Int = 2, learningRate: Double = 1e-2,
                       loss: TrainingLoss = .trt(lambda: 1e-4, decay: 0.5, epsilon: 1e-5, eta: 0.05)) -> TrainingConfig {
        TrainingConfig(dataset: "synthetic", topology: "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8", modelName: nil, timesteps: 3,
                       epochs: epochs, batchSize: 16, learningRate: learningRate, optimizer: .adam, scheduler: true, weightDecay: 0,
                       l1: 0, l2: 0, loss: loss, neuron: NeuronParameters(), dropout: 0, batchNorm: true, kaimingInit: true,
                       seed: 7, device: "cpu", maxSteps: nil, clipGradNorm: nil, checkpointEpochs: [], saveCheckpoints: false)
    }

    static func data(_ n: Int, seed: UInt64) -> InMemoryDataset {
        let d = SyntheticEvents(count: n, seed: seed, integration: .eventCount(frames: 3))
        return InMemoryDataset(samples: d.frames, labels: d.labels, isSequence: true, classes: 8)
    }

    /// A trainer over `trainSamples` training samples (batches of 16) and 16 test samples.
    static func trainer(_ c: TrainingConfig, dir: String, trainSamples: Int = 48) throws -> Trainer {
        let model = try SpikingNetwork(c.topology, classes: 8, config: ModelConfig(timesteps: 3, inputShape: [2, 32, 32]),
                                       generator: RandomGenerator(seed: c.seed))
        return Trainer(config: c, model: model, train: data(trainSamples, seed: 1), test: data(16, seed: 2), runDirectory: dir)
    }
}

import Foundation
import SNNData
import SNNModels
import SNNTensor
import SNNTraining

/// The training part of `snn selftest`: a small spiking CNN (two conv–BN–LIF layers, average
/// pooling, a linear readout) trained with the TRT loss and Adam on the same synthetic event
/// batches, from the same initial weights, on the GPU and on the CPU; the per-step losses must
/// agree.
enum SelfTestTraining {
    static let topology = "CONV-8-3-1-1_CONVAP-16-3-1-1_L-10"
    static let (timesteps, batchSize, classes) = (4, 16, 10)
    static let inputShape = [2, 16, 16]

    /// The loss of each of `steps` steps on `device`.
    static func losses(on device: Device, steps: Int) throws -> [Double] {
        let g = RandomGenerator(seed: 7)
        let model = try SpikingNetwork(topology, classes: classes, config: ModelConfig(timesteps: timesteps, inputShape: inputShape),
                                       generator: g, device: device)
        // Four batches of binary event frames (20 % on), kept on the host as a loader's are.
        let count = 4 * batchSize
        let samples = Tensor.bernoulli([count, timesteps] + inputShape, probability: 0.2, generator: g, device: .cpu)
        let labels = (0..<count).map { _ in g.integer(below: classes) }
        let data = InMemoryDataset(samples: samples, labels: labels, isSequence: true, classes: classes)
        let config = TrainingConfig(
            dataset: "synthetic", topology: topology, modelName: nil, timesteps: timesteps, epochs: 1, batchSize: batchSize,
            learningRate: 1e-3, optimizer: .adam, scheduler: false, weightDecay: 0, l1: 0, l2: 0,
            loss: .trt(lambda: 5e-5, decay: 0.5, epsilon: 1e-5, eta: 0.05), neuron: NeuronParameters(), dropout: 0,
            batchNorm: true, kaimingInit: true, seed: 7, device: device.description, maxSteps: nil, clipGradNorm: nil,
            checkpointEpochs: [], saveCheckpoints: false)
        let trainer = Trainer(config: config, model: model, train: data, test: data, runDirectory: "")
        let batches = data.batchIndices(epoch: 0, batchSize: batchSize, shuffle: false, seed: 0).map { data.batch($0) }
        return try (0..<steps).map { try trainer.step(batches[$0 % batches.count]).0 }
    }

    /// The worst difference of two loss curves, relative to the larger of the CPU's loss and 1.
    static func worst(_ gpu: [Double], _ cpu: [Double]) -> Double {
        zip(gpu, cpu).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0
    }
}

import Foundation
import SNNCUDA
import SNNData
import SNNModels
import SNNTensor
import SNNTestSupport
import SNNTraining
import Testing

extension EmulatedGPU {
    /// ARCHITECTURE.md's property 9 on the GPU: nothing inside a forward or backward pass waits
    /// for the host. The emulated driver counts the calls after which a real GPU's host would
    /// have waited for the stream (synchronisations, copies to the host, copies from pageable
    /// memory); a training step's passes must make none.
    @Suite("A training step on the emulated GPU never waits for the host", .serialized)
    struct HostWaitTests {
        init() throws {
            _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
            _ = try EmulatedCUDADriver.backend.get()
        }

        /// Two processes with the same batch, on this device alone: a `[W, K]` table (the
        /// statistics, one row per process, this one's filled) gets this process's row in every
        /// row; a vector (the gradient sums) is doubled. Device ops only, as NCCL's would be.
        private static let twinProcesses = CrossProcessBatchNorm.Group(rank: 1, size: 2) { tensor in
            if tensor.rank == 2 {
                tensor.assign(tensor.sum(axes: [0]).reshaped([1, tensor.shape[1]]).expanded(to: tensor.shape))
            } else {
                tensor.assign(tensor * 2)
            }
        }

        @Test("forward, TRT loss, backward into the flat gradients and the optimiser's step: no synchronisation, download or pageable upload; with --sync-bn's sums too",
              arguments: [false, true])
        func trainingStep(syncBatchNorm: Bool) throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let handle = try #require(dlopen("\(try EmulatedCUDADriver.folder.get())/libcuda.so.1", RTLD_NOW | RTLD_NOLOAD))
            let hostWaits = unsafeBitCast(try #require(dlsym(handle, "snn_emulated_host_waits")), to: (@convention(c) () -> Int32).self)
            let g = RandomGenerator(seed: 11)
            let topology = "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8"
            let model = try SpikingNetwork(topology, classes: 8, config: ModelConfig(timesteps: 2, inputShape: [2, 8, 8]), generator: g,
                                           device: .cuda(0))
            let samples = Tensor.bernoulli([8, 2, 2, 8, 8], probability: 0.3, generator: g, device: .cpu)
            let data = InMemoryDataset(samples: samples, labels: (0..<8).map { $0 % 8 }, isSequence: true, classes: 8)
            let config = TrainingConfig(dataset: "synthetic", topology: topology, modelName: nil, timesteps: 2, epochs: 1, batchSize: 8,
                                        learningRate: 1e-2, optimizer: .adam, scheduler: false, weightDecay: 0, l1: 0, l2: 1e-4,
                                        loss: .trt(lambda: 1e-4, decay: 0.5, epsilon: 1e-5, eta: 0.05), neuron: NeuronParameters(),
                                        dropout: 0, batchNorm: true, kaimingInit: true, seed: 11, device: "cuda", maxSteps: nil,
                                        clipGradNorm: nil, checkpointEpochs: [], saveCheckpoints: false)
            let trainer = Trainer(config: config, model: model, train: data, test: data, runDirectory: "")
            let batch = try data.batch(data.batchIndices(epoch: 0, batchSize: 8, shuffle: false, seed: 0)[0])
            #expect(batch.labels.dtype == .int32, "labels as datasets give them")
            let parameters = model.namedParameters()
            #expect(parameters.map(\.key) == trainer.parameterNames)
            for (_, p) in parameters { p.requiresGrad = true }
            // The batch moves to the GPU before the step (through pinned memory when it is large).
            let (inputs, labels) = (batch.inputs.to(.cuda(0)), batch.labels.to(.cuda(0)))
            let group = syncBatchNorm ? Self.twinProcesses : nil
            func passes(_ group: CrossProcessBatchNorm.Group?) {
                CrossProcessBatchNorm.group = group
                defer { CrossProcessBatchNorm.group = nil }
                let loss = config.loss.total(model(inputs), labels: labels, parameters: parameters, l1: config.l1, l2: config.l2)
                loss.backward(into: trainer.gradients)
            }
            // The first step chooses cuDNN's algorithms (timing them waits) and compiles kernels.
            passes(group)
            trainer.applyGradients()
            passes(nil)
            let alone = trainer.gradients.flat.toFloats()
            try backend.synchronize()
            let before = hostWaits()
            passes(group)
            trainer.applyGradients()
            #expect(hostWaits() - before == 0, "the host waited \(hostWaits() - before) times in a training step")
            // Twin processes with the same batch compute what one computes alone (the optimiser
            // reads the gradients, and leaves them).
            let gradients = trainer.gradients.flat.toFloats()
            let scale = alone.map(abs).max() ?? 0
            let worst = zip(gradients, alone).map { abs($0 - $1) }.max() ?? 0
            #expect(scale > 0 && worst <= (syncBatchNorm ? 1e-5 : 0) * scale,
                    "the step's gradients against one process's alone: max |Δ| / max |g| = \(worst / scale)")
        }
    }
}

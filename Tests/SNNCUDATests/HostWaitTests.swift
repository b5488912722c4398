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

        /// One of the emulated driver's counters.
        private static func counter(_ name: String) throws -> @convention(c) () -> Int32 {
            let handle = try #require(dlopen("\(try EmulatedCUDADriver.folder.get())/libcuda.so.1", RTLD_NOW | RTLD_NOLOAD))
            return unsafeBitCast(try #require(dlsym(handle, name)), to: (@convention(c) () -> Int32).self)
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

        /// A network, loss and precision a step runs with.
        struct Case: CustomTestStringConvertible, Sendable {
            var topology = "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8"
            var loss = TrainingLoss.trt(lambda: 1e-4, decay: 0.5, epsilon: 1e-5, eta: 0.05)
            var l1 = 0.0, l2 = 0.0, dropout = 0.0
            var clip: Double?
            var amp: CUDABackend.MixedPrecision?
            var syncBatchNorm = false
            let testDescription: String

            /// The run's settings: Adam at 1e-2, batch 8, T = 2, on the GPU.
            func config(seed: UInt64) -> TrainingConfig {
                var config = TrainingConfig(dataset: "synthetic", topology: topology, modelName: nil, timesteps: 2, epochs: 1, batchSize: 8,
                                            learningRate: 1e-2, optimizer: .adam, scheduler: false, weightDecay: 0, l1: l1, l2: l2,
                                            loss: loss, neuron: NeuronParameters(), dropout: dropout, batchNorm: true, kaimingInit: true,
                                            seed: seed, device: "cuda", maxSteps: nil, clipGradNorm: clip, checkpointEpochs: [],
                                            saveCheckpoints: false)
                config.amp = amp?.rawValue
                return config
            }

            static let all = [
                Case(testDescription: "TRT, float32"),
                Case(syncBatchNorm: true, testDescription: "TRT, float32, --sync-bn"),
                Case(amp: .bf16, syncBatchNorm: true, testDescription: "TRT, --amp bf16, --sync-bn"),
                Case(topology: "CONV-4-3-1-1_RES-4-3=3-1=1-1=1_SEWRES~ADD-8-3=3-2=1-1=1_FC-8_L-8",
                     loss: .tet(lambda: 0.05, means: 1, criterion: .mse), dropout: 0.2, amp: .bf16,
                     testDescription: "residual and SEW blocks, dropout, TET over MSE, --amp bf16"),
                Case(loss: .sdt(.crossEntropy), l1: 1e-5, l2: 1e-4, clip: 1e-3, amp: .fp16,
                     testDescription: "SDT over CE with L1 and L2, --clip-grad-norm, --amp fp16"),
            ]
        }

        @Test("forward, loss, backward into the flat gradients and the optimiser's step: no synchronisation, download or pageable upload",
              arguments: Case.all)
        func trainingStep(_ c: Case) throws {
            let backend = try EmulatedCUDADriver.backend.get()
            defer { backend.mixedPrecision = nil }
            backend.mixedPrecision = c.amp
            let hostWaits = try Self.counter("snn_emulated_host_waits")
            let g = RandomGenerator(seed: 11)
            let model = try SpikingNetwork(c.topology, classes: 8, config: ModelConfig(timesteps: 2, inputShape: [2, 8, 8], dropout: c.dropout),
                                           generator: g, device: .cuda(0))
            let samples = Tensor.bernoulli([8, 2, 2, 8, 8], probability: 0.3, generator: g, device: .cpu)
            let data = InMemoryDataset(samples: samples, labels: (0..<8).map { $0 % 8 }, isSequence: true, classes: 8)
            let config = c.config(seed: 11)
            let trainer = Trainer(config: config, model: model, train: data, test: data, runDirectory: "")
            let batch = data.batch(data.batchIndices(epoch: 0, batchSize: 8, shuffle: false, seed: 0)[0])
            #expect(batch.labels.dtype == .int32, "labels as datasets give them")
            let parameters = model.namedParameters()
            #expect(parameters.map(\.key) == trainer.parameterNames)
            for (_, p) in parameters { p.requiresGrad = true }
            // The batch moves to the GPU before the step (through pinned memory when it is large).
            let (inputs, labels) = (batch.inputs.to(.cuda(0)), batch.labels.to(.cuda(0)))
            let group = c.syncBatchNorm ? Self.twinProcesses : nil
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
            let flat = trainer.gradients.flat
            let snapshot = Tensor.empty(flat.shape, dtype: flat.dtype, device: flat.device)
            snapshot.assign(flat)   // before the optimiser's step (which may clip them)
            trainer.applyGradients()
            #expect(hostWaits() - before == 0, "the host waited \(hostWaits() - before) times in a training step")
            // Without dropout's draws, the step's gradients are the pass's before at the same
            // weights: exactly, or (twin processes with the same batch) within rounding.
            guard c.dropout == 0 else { return }
            let gradients = snapshot.toFloats()
            let scale = alone.map(abs).max() ?? 0
            let worst = zip(gradients, alone).map { abs($0 - $1) }.max() ?? 0
            #expect(scale > 0 && worst <= (c.syncBatchNorm ? 1e-5 : 0) * scale,
                    "the step's gradients against one process's alone: max |Δ| / max |g| = \(worst / scale)")
        }

        @Test("an evaluation waits once, at its end, however many batches it has; its accuracy is argmaxRows' against the labels")
        func evaluation() throws {
            let (hostWaits, uploads) = (try Self.counter("snn_emulated_host_waits"), try Self.counter("snn_emulated_pageable_uploads"))
            let g = RandomGenerator(seed: 13)
            let topology = "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8"
            let model = try SpikingNetwork(topology, classes: 8, config: ModelConfig(timesteps: 2, inputShape: [2, 8, 8]), generator: g,
                                           device: .cuda(0))
            let samples = Tensor.bernoulli([20, 2, 2, 8, 8], probability: 0.3, generator: g, device: .cpu)
            let data = InMemoryDataset(samples: samples, labels: (0..<20).map { ($0 * 3) % 8 }, isSequence: true, classes: 8)
            let config = Case(topology: topology, loss: .sdt(.crossEntropy), testDescription: "evaluation").config(seed: 13)
            let trainer = Trainer(config: config, model: model, train: data, test: data, runDirectory: "")
            _ = try trainer.evaluate()   // kernels compiled, cuDNN's algorithms chosen
            let (waitsBefore, uploadsBefore) = (hostWaits(), uploads())
            let result = try trainer.evaluate()
            // 3 batches (8, 8, 4): their inputs and labels copied up, then one read of every
            // result (a copy and its wait), after which oneHot's label check reads its 32 bytes
            // (another, on an idle stream). Before, each batch read its loss, predictions and
            // firing rates: 4 reads a batch here.
            let reads = (hostWaits() - waitsBefore) - (uploads() - uploadsBefore)
            #expect(reads == 4, "\(reads) synchronisations and copies to the host")
            model.eval()
            defer { model.train() }
            var correct = 0
            for indices in data.batchIndices(epoch: 0, batchSize: 8, shuffle: false, seed: 0) {
                let batch = data.batch(indices)
                let predictions = withoutGradients { model(batch.inputs.to(.cuda(0))).mean(axes: [0]).argmaxRows() }
                correct += zip(predictions, batch.labels.toDoubles()).filter { Double($0) == $1 }.count
            }
            #expect(result.accuracy == Double(correct) / 20, "accuracy \(result.accuracy) against \(correct) of 20")
            #expect(result.loss.isFinite && result.loss > 0)
        }
    }
}

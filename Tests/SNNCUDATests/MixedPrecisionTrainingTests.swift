import SNNCUDA
import SNNData
import SNNModels
import SNNTensor
import SNNTestSupport
import SNNTraining
import Testing

extension EmulatedGPU {
    /// Training with `--amp fp16` on the emulated GPU: the loss is scaled for the backward pass and
    /// the gradients unscaled; a step whose gradients overflow leaves the weights alone.
    @Suite("Mixed-precision training on the emulated GPU", .serialized)
    struct MixedPrecisionTrainingTests {
        init() throws {
            _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
            _ = try EmulatedCUDADriver.backend.get()
        }

        /// A trainer of a small spiking CNN on `.cuda(0)` with `amp`, and one batch.
        private func trainer(amp: String?) throws -> (Trainer, Batch) {
            let g = RandomGenerator(seed: 3)
            let model = try SpikingNetwork("CONV-4-3-1-1_CONVAP-8-3-1-1_L-8", classes: 8,
                                           config: ModelConfig(timesteps: 2, inputShape: [2, 8, 8]), generator: g, device: .cuda(0))
            let samples = Tensor.bernoulli([8, 2, 2, 8, 8], probability: 0.3, generator: g, device: .cpu)
            let data = InMemoryDataset(samples: samples, labels: (0..<8).map { $0 % 8 }, isSequence: true, classes: 8)
            var config = TrainingConfig(dataset: "synthetic", topology: "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8", modelName: nil, timesteps: 2,
                                        epochs: 1, batchSize: 8, learningRate: 1e-2, optimizer: .adam, scheduler: false, weightDecay: 0,
                                        l1: 0, l2: 0, loss: .trt(lambda: 1e-4, decay: 0.5, epsilon: 1e-5, eta: 0.05),
                                        neuron: NeuronParameters(), dropout: 0, batchNorm: true, kaimingInit: true, seed: 3, device: "cuda",
                                        maxSteps: nil, clipGradNorm: nil, checkpointEpochs: [], saveCheckpoints: false)
            config.amp = amp
            let trainer = Trainer(config: config, model: model, train: data, test: data, runDirectory: "")
            return (trainer, data.batch(data.batchIndices(epoch: 0, batchSize: 8, shuffle: false, seed: 0)[0]))
        }

        @Test("fp16: a scaler at 2^16; losses within 1e-2 of float32's; an overflowing step is skipped, weights unchanged, scale halved")
        func lossScaling() throws {
            let backend = try EmulatedCUDADriver.backend.get()
            defer { backend.mixedPrecision = nil }
            backend.mixedPrecision = nil
            let (plain, batch) = try trainer(amp: nil)
            #expect(plain.lossScaler == nil)
            let reference = try (0..<3).map { _ in try plain.step(batch).0 }
            backend.mixedPrecision = .fp16
            let (mixed, _) = try trainer(amp: "fp16")
            let scaler = try #require(mixed.lossScaler)
            #expect(scaler.scale == 65536)
            let losses = try (0..<3).map { _ in try mixed.step(batch).0 }
            for (a, b) in zip(losses, reference) { #expect(abs(a - b) <= 1e-2 * max(abs(b), 1), "fp16 \(losses) vs float32 \(reference)") }
            #expect(scaler.skippedSteps == 0)
            // A scale no float can hold: the scaled gradients overflow, so the step must not move the weights.
            scaler.scale = 1e39
            let before = mixed.flatParameters.toFloats()
            _ = try mixed.step(batch)
            #expect(scaler.skippedSteps == 1 && scaler.scale == 5e38)
            #expect(mixed.flatParameters.toFloats() == before, "a skipped step leaves every weight as it was")
        }

        @Test("--amp bf16 and fp16 keep less on the GPU: a forward pass holds at least 30% fewer bytes than float32's, and the step's peak is lower")
        func memory() throws {
            let backend = try EmulatedCUDADriver.backend.get()
            defer { backend.mixedPrecision = nil }
            // Five convolutions with batch norm and LIF, the largest at 64×64: T = 2, batch 4.
            func measure(_ precision: CUDABackend.MixedPrecision?) throws -> (afterForward: Int, peak: Int) {
                backend.mixedPrecision = precision
                let g = RandomGenerator(seed: 5)
                let model = try SpikingNetwork("CONV-16-3-1-1_CONV-16-3-1-1_CONV-16-3-1-1_CONVAP-32-3-1-1_CONV-32-3-1-1_L-8", classes: 8,
                                               config: ModelConfig(timesteps: 2, inputShape: [2, 64, 64]), generator: g, device: .cuda(0))
                model.parameters().forEach { $0.requiresGrad = true }
                let x = Tensor.bernoulli([4, 2, 2, 64, 64], probability: 0.2, generator: g, device: .cpu).to(.cuda(0))
                model(x).sum().backward()   // the first pass chooses cuDNN's algorithms (and their search workspace)
                model.parameters().forEach { $0.grad = nil }
                let base = backend.memory.live
                backend.resetPeak()
                let y = model(x)
                let afterForward = backend.memory.live - base
                y.sum().backward()
                return (afterForward, backend.memory.peak - base)
            }
            let full = try measure(nil)
            for half in CUDABackend.MixedPrecision.allCases {
                let mixed = try measure(half)
                #expect(Double(mixed.afterForward) <= 0.7 * Double(full.afterForward), "\(half): \(mixed) bytes, float32 \(full)")
                #expect(mixed.peak < full.peak, "\(half): \(mixed) bytes, float32 \(full)")
            }
        }
    }
}

import Foundation
import Synchronization
import SNNCPU
import SNNData
import SNNModels
import SNNTensor
@testable import SNNTraining
import Testing

/// Collects per-step losses and can interrupt a run after a given global step.
private final class Recorder: TrainingObserver {
    var losses: [Double] = []
    var lastMetrics: [String: Double] = [:]
    var stopAfter: Int?
    func stepFinished(epoch: Int, step: Int, stepsInEpoch: Int, loss: Double, samplesPerSecond: Double) {
        losses.append(loss)
        if let s = stopAfter, losses.count == s { Trainer.stopRequested = true }
    }
    func epochFinished(epoch: Int, epochs: Int, metrics: [(String, Double)]) {
        lastMetrics = Dictionary(metrics, uniquingKeysWith: { $1 })
    }
}

/// Training runs end to end on tiny synthetic data; they share `Trainer.stopRequested`, so
/// they run one at a time.
@Suite("trainer", .serialized)
struct TrainerTests {
    init() { CPUBackend.register() }

    private func config(epochs: Int = 2, loss: TrainingLoss = .trt(lambda: 1e-4, decay: 0.5, epsilon: 1e-5, eta: 0.05)) -> TrainingConfig {
        TinyRun.config(epochs: epochs, loss: loss)
    }

    private func data(_ n: Int, seed: UInt64) -> InMemoryDataset { TinyRun.data(n, seed: seed) }

    private func trainer(_ c: TrainingConfig, dir: String) throws -> Trainer { try TinyRun.trainer(c, dir: dir) }

    private func temporaryDirectory(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("snn-trainer-\(getpid())-\(name)").path
    }

    @Test("an interrupted run resumed from its checkpoint continues the uninterrupted loss curve exactly")
    func resumeEquality() throws {
        let (dirA, dirB) = (temporaryDirectory("a"), temporaryDirectory("b"))
        defer { for d in [dirA, dirB] { try? FileManager.default.removeItem(atPath: d) } }
        Trainer.stopRequested = false
        let straight = Recorder()
        let a = try trainer(config(), dir: dirA)
        a.observer = straight
        let full = try a.run()
        #expect(straight.losses.count == 6 && !full.interrupted)

        // Interrupt mid-epoch (after step 4 of 6), then resume in a fresh trainer.
        let first = Recorder()
        first.stopAfter = 4
        let b = try trainer(config(), dir: dirB)
        b.observer = first
        let stopped = try b.run()
        Trainer.stopRequested = false
        #expect(stopped.interrupted && first.losses.count == 4)
        let second = Recorder()
        let c = try trainer(config(), dir: dirB)
        c.observer = second
        let resumed = try c.run(resume: dirB + "/weights/last")
        #expect(first.losses + second.losses == straight.losses)
        #expect(resumed.finalTestAccuracy == full.finalTestAccuracy)
        for file in ["summary.json", "metrics.csv", "steps.csv", "metrics.jsonl", "weights/last.safetensors", "weights/last.json", "weights/best.json"] {
            #expect(FileManager.default.fileExists(atPath: dirB + "/" + file), "\(file)")
        }
    }

    @Test("runs started in the same second with the same settings each claim their own folder, even concurrently")
    func freshRunDirectories() throws {
        let base = temporaryDirectory("fresh")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let date = Date(timeIntervalSince1970: 1_800_000_000)
        let first = try Trainer.freshRunDirectory(under: base, config: config(), date: date)
        #expect(first == "\(base)/\(Trainer.runName(config(), date: date))")
        #expect(FileManager.default.fileExists(atPath: first), "the folder is created, not only named")
        #expect(try Trainer.freshRunDirectory(under: base, config: config(), date: date) == first + "-2")
        #expect(try Trainer.freshRunDirectory(under: base, config: config(), date: date) == first + "-3")
        // Eight at once: eight different folders (a check-then-create would hand out duplicates).
        let claimed = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let path = try! Trainer.freshRunDirectory(under: base, config: config(), date: date)
            claimed.withLock { $0.append(path) }
        }
        #expect(Set(claimed.withLock { $0 }).count == 8)
    }

    @Test("a missing or corrupt checkpoint is refused with its path and the reason")
    func badCheckpoint() throws {
        let dir = temporaryDirectory("bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = try trainer(config(), dir: dir)
        #expect(throws: CheckpointError.self) { try t.run(resume: dir + "/nope") }
        try FileManager.default.createDirectory(atPath: dir + "/w", withIntermediateDirectories: true)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: dir + "/w/last.json"))
        let noWeights = #expect(throws: CheckpointError.self) { try t.run(resume: dir + "/w/last") }
        #expect("\(noWeights!)".contains("w/last.safetensors: no such file"), "\(noWeights!)")
        // A weights file without the training state (an older checkpoint) falls back to the sidecar.
        try SafeTensors.save(["x": Tensor.zeros([1])], to: dir + "/w/last.safetensors")
        let corrupt = #expect(throws: CheckpointError.self) { try t.run(resume: dir + "/w/last") }
        #expect("\(corrupt!)".contains("w/last.json") && "\(corrupt!)".contains("not a SwiftSNN checkpoint"), "\(corrupt!)")
    }

    @Test("a non-finite loss stops the run with a message")
    func nonFiniteLoss() throws {
        let dir = temporaryDirectory("nan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = config(epochs: 1)
        c.learningRate = 1e30  // diverges at once
        c.optimizer = .sgd
        let t = try trainer(c, dir: dir)
        do {
            _ = try t.run()
            Issue.record("training with lr 1e30 finished")
        } catch {
            #expect("\(error)".contains("the loss became"))
        }
    }

    @Test("a small spiking network learns the synthetic data: the loss falls and accuracy beats chance")
    func learns() throws {
        let dir = temporaryDirectory("learns")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // conv 5×5 stride 4 → BN → LIF → max-pool to 4×4, then a readout: 24 Adam steps of 16
        // samples (8 epochs of 48) take about 3 seconds.
        var c = config(epochs: 8, loss: .sdt(.crossEntropy))
        (c.topology, c.learningRate, c.scheduler) = ("CONV-8-5-4-2_L-8", 0.02, false)
        let model = try SpikingNetwork(c.topology, classes: 8, config: ModelConfig(timesteps: 3, inputShape: [2, 32, 32]),
                                       generator: RandomGenerator(seed: c.seed))
        let t = Trainer(config: c, model: model, train: data(48, seed: 3), test: data(64, seed: 4), runDirectory: dir)
        let recorder = Recorder()
        t.observer = recorder
        Trainer.stopRequested = false
        let result = try t.run()
        let losses = recorder.losses
        #expect(losses.count == 24)
        // The first losses sit near ln 8 ≈ 2.08 (uniform guesses over 8 classes); this seed
        // reaches about 0.8 over the last 8 steps.
        let first = losses.prefix(4).reduce(0, +) / 4, last = losses.suffix(8).reduce(0, +) / 8
        #expect(last < 0.6 * first, "mean loss of the first 4 steps \(first), of the last 8 \(last)")
        // Chance is 1/8. The last epoch fits its training batches (about 0.94 for this seed),
        // and generalises beyond chance: 20 or more of 64 test samples right by guessing has
        // probability about 1e-4 (this seed gets 25).
        let trainAccuracy = recorder.lastMetrics["train_acc"] ?? 0
        #expect(trainAccuracy >= 0.75, "training accuracy of the last epoch \(trainAccuracy)")
        #expect(result.finalTestAccuracy >= 0.3, "test accuracy \(result.finalTestAccuracy)")
    }

    @Test("evaluation uses the TET criterion (MSE here), as the reference's test loop does")
    func tetEvaluationCriterion() throws {
        let dir = temporaryDirectory("tet-mse")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = try trainer(config(loss: .tet(lambda: 0.05, means: 1, criterion: .mse)), dir: dir)
        let evaluated = try t.evaluate().loss
        // The test set is one batch of 16: the criterion of the time-averaged output, by hand.
        let batch = data(16, seed: 2).batch(Array(0..<16)[...], epoch: 0)
        t.model.eval()
        defer { t.model.train() }
        let (mseLoss, ceLoss) = withoutGradients { () -> (Double, Double) in
            let mean = t.model(batch.inputs.to(.cpu)).mean(axes: [0])
            let labels = batch.labels.to(.cpu)
            return (Criterion.mse(mean, labels).item(), Criterion.crossEntropy(mean, labels).item())
        }
        #expect(Swift.abs(mseLoss - ceLoss) > 0.1, "the two criteria must be told apart: \(mseLoss) vs \(ceLoss)")
        // Same forward pass, same float32 kernels: equal up to the Double accumulation of batches.
        #expect(Swift.abs(evaluated - mseLoss) <= 1e-6 * Swift.abs(mseLoss), "evaluate() \(evaluated), MSE \(mseLoss)")
    }

    @Test("the evaluation criterion of each training loss")
    func evaluationCriteria() {
        #expect(TrainingLoss.sdt(.mse).evaluationCriterion == .mse)
        #expect(TrainingLoss.sdt(.crossEntropy).evaluationCriterion == .crossEntropy)
        #expect(TrainingLoss.tet(lambda: 0.05, means: 1, criterion: .mse).evaluationCriterion == .mse)
        #expect(TrainingLoss.tet(lambda: 0.05, means: 1, criterion: nil).evaluationCriterion == .crossEntropy)
        #expect(TrainingLoss.trt(lambda: 1e-4, decay: 0.5, epsilon: 1e-5, eta: 0.05).evaluationCriterion == .crossEntropy)
    }

    @Test("TensorBoard records are framed with masked CRC-32C checksums")
    func tensorBoardFraming() {
        // CRC-32C of "123456789" is 0xE3069283 (the standard check value).
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }
}

@Suite("training step: flat gradients, flat optimiser state, no host reads")
struct TrainingStepTests {
    init() { CPUBackend.register() }

    private func trainer(clip: Double? = nil) throws -> (Trainer, Batch) {
        let c = TrainingConfig(dataset: "synthetic", topology: "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8", modelName: nil, timesteps: 3,
                               epochs: 1, batchSize: 8, learningRate: 1e-2, optimizer: .adam, scheduler: false, weightDecay: 0,
                               l1: 0, l2: 0, loss: .trt(lambda: 1e-4, decay: 0.5, epsilon: 1e-5, eta: 0.05),
                               neuron: NeuronParameters(), dropout: 0, batchNorm: true, kaimingInit: true, seed: 7, device: "cpu",
                               maxSteps: nil, clipGradNorm: clip, checkpointEpochs: [], saveCheckpoints: false)
        let model = try SpikingNetwork(c.topology, classes: 8, config: ModelConfig(timesteps: 3, inputShape: [2, 32, 32]),
                                       generator: RandomGenerator(seed: 7))
        let d = SyntheticEvents(count: 8, seed: 5, integration: .eventCount(frames: 3))
        let data = InMemoryDataset(samples: d.frames, labels: d.labels, isSequence: true, classes: 8)
        let t = Trainer(config: c, model: model, train: data, test: data, runDirectory: "")
        return (t, data.batch(Array(0..<8)[...]))
    }

    @Test("nothing is read back to the host until the loss is: forward, loss and backward of a step; the optimiser's step, --clip-grad-norm's too",
          arguments: [nil, 1e-3])
    func noHostReadsInAStep(clip: Double?) throws {
        let (t, batch) = try trainer(clip: clip)
        _ = try t.step(batch)  // plans, optimiser state
        let before = Tensor.hostReadCount
        let (loss, predictions) = t.computeGradients(batch)
        // computeGradients reads the loss and the predictions together, once, after the backward pass.
        #expect(Tensor.hostReadCount - before == 1)
        #expect(loss.isFinite && predictions.count == 8)
        let beforeUpdate = Tensor.hostReadCount
        t.applyGradients()
        #expect(Tensor.hostReadCount == beforeUpdate, "the optimiser step reads nothing back")
    }

    @Test("gradients land in one flat buffer in parameter order; Adam's state is flat too")
    func flatBuffers() throws {
        let (t, batch) = try trainer()
        _ = t.computeGradients(batch)
        let names = t.parameterNames
        #expect(t.gradients.views.count == names.count)
        #expect(t.gradients.flat.toDoubles().contains { $0 != 0 })
        t.applyGradients()
        for kind in ["exp_avg", "exp_avg_sq"] {
            guard let flat = t.optimizer.flatState[kind] else { Issue.record("no flat \(kind)"); continue }
            #expect(flat.count == t.gradients.flat.count)
            for name in names { #expect(t.optimizer.state["\(name).\(kind)"]?.storage === flat.storage) }
        }
    }

    @Test("clipping runs over the flat buffer: the global norm, the same bits every time")
    func clipping() throws {
        let (t, batch) = try trainer()
        _ = t.computeGradients(batch)
        let values = t.gradients.flat.toDoubles()
        let expected = values.map { $0 * $0 }.reduce(0, +).squareRoot()
        let copy = Tensor(values.map(Float.init), shape: [values.count])
        let before = Tensor.hostReadCount
        let norm = clipGradients(t.gradients, maxNorm: expected / 2).item()
        #expect(Tensor.hostReadCount - before == 1, "clipping reads nothing back (here: the norm, once, by item())")
        // float32 squares summed in blocks: within 1e-5 of the Double sum.
        #expect(Swift.abs(norm - expected) <= 1e-5 * expected)
        let clipped = t.gradients.flat.toDoubles()
        let after = clipped.map { $0 * $0 }.reduce(0, +).squareRoot()
        #expect(Swift.abs(after - expected / 2) <= 1e-5 * expected)
        let buffer = GradientBuffer(parameters: [copy])
        buffer.flat.assign(copy)
        #expect(clipGradients(buffer, maxNorm: expected / 2).item() == norm, "bit-identical norm on a second computation")
        #expect(buffer.flat.toDoubles() == clipped, "bit-identical clipped gradients")
        // Under the bound: the gradients are left as they were (times 1).
        buffer.flat.assign(copy)
        clipGradients(buffer, maxNorm: expected * 2)
        #expect(buffer.flat.toDoubles() == values)
    }
}

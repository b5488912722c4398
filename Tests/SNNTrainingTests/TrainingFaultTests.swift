import Foundation
import SNNCPU
import SNNData
import SNNModels
import SNNTensor
@testable import SNNTraining
import Testing

/// The promises training keeps when things go wrong: no checkpoint with non-finite weights, a
/// truthful account of what is left, logs that stay parseable on a full disk, and checkpoints
/// that are one unit whatever moment a write is cut short.
@Suite("training under faults", .serialized)
struct TrainingFaultTests {
    init() { CPUBackend.register() }

    private func config(epochs: Int = 2, learningRate: Double = 1e-2, lambda: Double = 1e-4) -> TrainingConfig {
        TinyRun.config(epochs: epochs, learningRate: learningRate, loss: .trt(lambda: lambda, decay: 0.5, epsilon: 1e-5, eta: 0.05))
    }

    /// One step per epoch (16 training samples, batch 16).
    private func trainer(_ c: TrainingConfig, dir: String) throws -> Trainer { try TinyRun.trainer(c, dir: dir, trainSamples: 16) }

    private func temporaryDirectory(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("snn-faults-\(getpid())-\(name)").path
    }

    private func summary(_ dir: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test("weights that became NaN are never saved; the error and summary.json say no checkpoint exists")
    func nanWeightsNotSaved() throws {
        let dir = temporaryDirectory("nan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Trainer.stopRequested = false
        // A learning rate beyond float32: the first loss is finite, the step makes every weight
        // infinite or NaN (what `--lr nan` did before the flag was checked).
        let t = try trainer(config(learningRate: 1e300), dir: dir)
        let error = #expect(throws: TrainingError.self) { try t.run() }
        #expect("\(error!)".contains("NaN or infinite") && "\(error!)".contains("no checkpoint was written"), "\(error!)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/weights/best.safetensors"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/weights/last.safetensors"))
        let s = try summary(dir)
        #expect((s["stopped_by"] as? String)?.contains("NaN") == true && s["checkpoint"] == nil)
    }

    @Test("a loss that overflows stops the run naming the checkpoint that is left")
    func lossBlowUp() throws {
        let dir = temporaryDirectory("blowup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Trainer.stopRequested = false
        let t = try trainer(config(lambda: 1e38), dir: dir)
        let error = #expect(throws: TrainingError.self) { try t.run() }
        #expect("\(error!)".contains("the loss became") && "\(error!)".contains("no checkpoint was written"), "\(error!)")
        #expect(try summary(dir)["stopped_by"] != nil)
    }

    @Test("a full disk while logging ends the run with the path, keeps the checkpoint and whole records only")
    func fullDisk() throws {
        let dir = temporaryDirectory("full")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Trainer.stopRequested = false
        _ = try trainer(config(epochs: 1), dir: dir).run()
        let last = dir + "/weights/last"
        let before = try Data(contentsOf: URL(fileURLWithPath: last + ".safetensors"))
        // Every write to /dev/full fails with ENOSPC, as on a full disk.
        try FileManager.default.removeItem(atPath: dir + "/steps.csv")
        try FileManager.default.createSymbolicLink(atPath: dir + "/steps.csv", withDestinationPath: "/dev/full")
        let resumed = try trainer(config(epochs: 2), dir: dir)
        let error = #expect(throws: MetricsWriteError.self) { try resumed.run(resume: last) }
        #expect("\(error!)".contains("steps.csv"), "\(error!)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: last + ".safetensors")) == before, "the checkpoint is untouched")
        // Every line of the JSON log is a whole record.
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        #expect(try summary(dir)["stopped_by"] != nil)
    }

    @Test("a save cut off between the weights and the sidecar leaves a checkpoint that resumes like an uninterrupted run")
    func checkpointIsOneUnit() throws {
        let (dirA, dirB) = (temporaryDirectory("unit-a"), temporaryDirectory("unit-b"))
        defer {
            Checkpoint.afterWeightsWritten = nil
            for d in [dirA, dirB] { try? FileManager.default.removeItem(atPath: d) }
        }
        Trainer.stopRequested = false
        // A: three epochs straight.
        let a = try trainer(config(epochs: 3), dir: dirA)
        _ = try a.run()
        // B: two epochs, the second's save of `last` stopped after its weights, as by a kill.
        var saves = 0
        Checkpoint.afterWeightsWritten = { base in
            guard base == dirB + "/weights/last" else { return }
            saves += 1
            if saves == 2 { throw TrainingError(message: "killed") }
        }
        #expect(throws: TrainingError.self) { try trainer(config(epochs: 3), dir: dirB).run() }
        Checkpoint.afterWeightsWritten = nil
        // The sidecar still says epoch 1; the weights file is epoch 2's and says so itself.
        let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dirB + "/weights/last.json"))) as? [String: Any]
        #expect(sidecar?["epoch"] as? Int == 1)
        let b = try trainer(config(epochs: 3), dir: dirB)
        _ = try b.run(resume: dirB + "/weights/last")
        // Resumed at epoch 2, not re-training epoch 2 on epoch-2 weights: the same weights as A.
        for ((ka, pa), (kb, pb)) in zip(a.model.namedParameters(), b.model.namedParameters()) {
            #expect(ka == kb && pa.toFloats() == pb.toFloats(), "\(ka)")
        }
    }

    @Test("a checkpoint whose state holds impossible values is refused with the field")
    func invalidState() throws {
        let dir = temporaryDirectory("invalid")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Trainer.stopRequested = false
        let t = try trainer(config(epochs: 1), dir: dir)
        _ = try t.run()
        let base = dir + "/weights/last"
        let (tensors, metadata) = try SafeTensors.decode(Data(contentsOf: URL(fileURLWithPath: base + ".safetensors")))
        for (field, value) in [("stepInEpoch", -1), ("epoch", -2), ("lossScale", 0), ("lossScale", -65536)] {
            var state = try #require(try JSONSerialization.jsonObject(with: Data(metadata[Checkpoint.metadataKey]!.utf8)) as? [String: Any])
            state[field] = value
            var edited = metadata
            edited[Checkpoint.metadataKey] = String(decoding: try JSONSerialization.data(withJSONObject: state), as: UTF8.self)
            try SafeTensors.save(tensors, to: base + ".safetensors", metadata: edited)
            let error = #expect(throws: CheckpointError.self) { try trainer(config(epochs: 1), dir: dir).run(resume: base) }
            #expect("\(error!)".contains(field), "\(error!)")
        }
    }
}

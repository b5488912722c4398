import Foundation
import SNNLayers
import SNNTensor

/// A checkpoint: `NAME.safetensors` (model state under its state-dict keys, optimiser state
/// under `optimizer.<key>`, and where training stands with the full config as JSON in its
/// metadata under `swiftsnn.checkpoint`) and `NAME.json` (the same JSON, for people and tools).
///
/// The weights file alone is the checkpoint: it is written to a temporary file and renamed into
/// place, so a kill at any moment leaves either the old or the new checkpoint whole, never new
/// weights beside an old epoch count. The loader reads the state from the weights file (the
/// sidecar only for checkpoints written before it carried one).
public struct CheckpointState: Codable {
    /// Completed epochs (training resumes at this epoch).
    public var epoch: Int
    /// Steps completed inside `epoch` (non-zero after an interruption mid-epoch).
    public var stepInEpoch: Int
    public var globalStep: Int
    public var optimizerSteps: Int
    public var learningRate: Double
    public var bestAccuracy: Double
    /// The epoch (1-based) of `bestAccuracy`; 0 before the first evaluation.
    public var bestEpoch: Int
    public var bestLoss: Double
    /// Sums of the interrupted epoch's training metrics so far.
    public var partialLossSum: Double
    public var partialCorrect: Int
    public var partialSeen: Int
    /// Position of each dropout layer's mask stream, in module order.
    public var dropoutCounters: [UInt64]
    public var config: TrainingConfig
    /// Wall time, training time and samples trained over every session of the run so far
    /// (`nil` in checkpoints written before they were recorded).
    public var wallSeconds: Double?
    public var trainSeconds: Double?
    public var trainedSamples: Int?
    /// Processes and micro-batches per step that wrote it (nil: one and one): a resume inside an
    /// epoch needs the same product, or its steps would map to other samples.
    public var worldSize: Int?
    public var accumulate: Int?
    /// The fp16 loss scale (`--amp fp16`) when the checkpoint was written.
    public var lossScale: Double? = nil
    /// The layout of this state: 2 since `bestEpoch` is 1-based; `nil` before (0-based, -1 none).
    public var version: Int? = CheckpointState.currentVersion
    static let currentVersion = 2

    /// The first value a checkpoint cannot hold (negative counts, a step past its epoch's
    /// end is caught later), or `nil`.
    func problem() -> String? {
        let counts = [("epoch", epoch), ("stepInEpoch", stepInEpoch), ("globalStep", globalStep), ("optimizerSteps", optimizerSteps),
                      ("partialCorrect", partialCorrect), ("partialSeen", partialSeen)]
        if let (name, value) = counts.first(where: { $0.1 < 0 }) { return "\(name) is \(value), expected 0 or more" }
        if bestEpoch < 0 || bestEpoch > epoch { return "bestEpoch is \(bestEpoch), expected 0 (none yet) to epoch (\(epoch))" }
        if let t = trainedSamples, t < 0 { return "trainedSamples is \(t), expected 0 or more" }
        for (name, value) in [("wallSeconds", wallSeconds), ("trainSeconds", trainSeconds)] {
            if let v = value, !v.isFinite || v < 0 { return "\(name) is \(v)" }
        }
        if partialCorrect > partialSeen { return "partialCorrect (\(partialCorrect)) exceeds partialSeen (\(partialSeen))" }
        if epoch > config.epochs { return "epoch \(epoch) is past the run's \(config.epochs) epochs" }
        if !learningRate.isFinite || learningRate < 0 { return "learningRate is \(learningRate)" }
        if !partialLossSum.isFinite { return "partialLossSum is \(partialLossSum)" }
        if let scale = lossScale, !scale.isFinite || scale <= 0 { return "lossScale is \(scale), expected a positive loss scale" }
        return nil
    }
}

extension CheckpointState {
    /// The training state of the checkpoint `path` (with or without `.safetensors`), read from
    /// its header alone: what a resumed run's configuration starts from.
    public static func read(_ path: String) throws -> CheckpointState { try Checkpoint.readState(path) }
}

/// A missing or unreadable checkpoint; the message names the path and the reason.
public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "checkpoint \(path): \(reason)" }
}

enum Checkpoint {
    /// JSON with infinities and NaN spelled out (a run stopped before its first evaluation has
    /// no best loss yet).
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    /// The metadata key holding the state's JSON inside the weights file.
    static let metadataKey = "swiftsnn.checkpoint"

    /// Runs between writing the weights file and its sidecar (tests stop a save there).
    nonisolated(unsafe) static var afterWeightsWritten: ((_ base: String) throws -> Void)?

    static func save(_ state: CheckpointState, model: Module, optimizer: Optimizer, to base: String) throws {
        var tensors = model.stateDict()
        for (k, v) in optimizer.state { tensors["optimizer.\(k)"] = v }
        let json = try Checkpoint.encoder.encode(state)
        // One file, one rename: the checkpoint. The sidecar after it is a copy for readers.
        try SafeTensors.save(tensors, to: base + ".safetensors",
                             metadata: ["format": "pt", "writer": "SwiftSNN", metadataKey: String(decoding: json, as: UTF8.self)])
        try afterWeightsWritten?(base)
        try AtomicFile.write(json, to: base + ".json")
    }

    /// The weights file and sidecar of a checkpoint named with or without its extension.
    static func files(_ base: String) -> (weights: String, json: String) {
        let stem = base.hasSuffix(".safetensors") ? String(base.dropLast(".safetensors".count))
            : (base.hasSuffix(".json") ? String(base.dropLast(".json".count)) : base)
        return (stem + ".safetensors", stem + ".json")
    }

    /// A checkpoint's training state, from its weights file's header (the tensors are not read).
    static func readState(_ base: String) throws -> CheckpointState {
        let (weights, _) = files(base)
        guard FileManager.default.fileExists(atPath: weights) else { throw CheckpointError(path: weights, reason: "no such file") }
        let metadata: [String: String]
        do { metadata = try SafeTensors.metadata(ofFile: weights) } catch { throw CheckpointError(path: weights, reason: "\(error)") }
        return try state(metadata: metadata, base: base)
    }

    /// The state held in a weights file's metadata (or, for checkpoints older than that, its
    /// sidecar), brought to the current layout and checked field by field.
    static func state(metadata: [String: String], base: String) throws -> CheckpointState {
        let (weights, json) = files(base)
        let saved: CheckpointState
        if let embedded = metadata[metadataKey] {
            do {
                saved = try Checkpoint.decoder.decode(CheckpointState.self, from: Data(embedded.utf8))
            } catch {
                throw CheckpointError(path: weights, reason: "its training state (metadata \(metadataKey)) is unreadable (\(error))")
            }
        } else {
            guard FileManager.default.fileExists(atPath: json) else {
                throw CheckpointError(path: json, reason: "no such file, and \(weights) carries no training state")
            }
            do {
                saved = try Checkpoint.decoder.decode(CheckpointState.self, from: try Data(contentsOf: URL(fileURLWithPath: json)))
            } catch {
                throw CheckpointError(path: json, reason: "not a SwiftSNN checkpoint sidecar (\(error))")
            }
        }
        var state = saved
        if state.version == nil {
            // Written before version 2: the best epoch was 0-based, -1 for none.
            state.bestEpoch += 1
            state.version = CheckpointState.currentVersion
        }
        if let problem = state.problem() { throw CheckpointError(path: weights, reason: "invalid training state: \(problem)") }
        return state
    }

    static func load(_ base: String, model: Module, optimizer: Optimizer) throws -> CheckpointState {
        let (weights, _) = files(base)
        guard FileManager.default.fileExists(atPath: weights) else { throw CheckpointError(path: weights, reason: "no such file") }
        let tensors: [String: Tensor], metadata: [String: String]
        do {
            (tensors, metadata) = try SafeTensors.decode(try Data(contentsOf: URL(fileURLWithPath: weights)), path: weights)
        } catch {
            throw CheckpointError(path: weights, reason: "\(error)")
        }
        let state = try state(metadata: metadata, base: base)
        var modelState: [String: Tensor] = [:], optimizerState: [String: Tensor] = [:]
        for (k, v) in tensors {
            if k.hasPrefix("optimizer.") { optimizerState[String(k.dropFirst("optimizer.".count))] = v } else { modelState[k] = v }
        }
        do { try model.load(stateDict: modelState) } catch { throw CheckpointError(path: weights, reason: "\(error)") }
        optimizer.restore(state: optimizerState, steps: state.optimizerSteps)
        return state
    }
}

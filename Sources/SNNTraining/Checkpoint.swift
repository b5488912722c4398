import Foundation
import SNNLayers
import SNNTensor

/// A checkpoint: `NAME.safetensors` (model state under its state-dict keys, optimiser state
/// under `optimizer.<key>`) and `NAME.json` (where training stands and the full config), each
/// written atomically.
public struct CheckpointState: Codable {
    /// Completed epochs (training resumes at this epoch).
    public var epoch: Int
    /// Steps completed inside `epoch` (non-zero after an interruption mid-epoch).
    public var stepInEpoch: Int
    public var globalStep: Int
    public var optimizerSteps: Int
    public var learningRate: Double
    public var bestAccuracy: Double
    public var bestEpoch: Int
    public var bestLoss: Double
    /// Sums of the interrupted epoch's training metrics so far.
    public var partialLossSum: Double
    public var partialCorrect: Int
    public var partialSeen: Int
    /// Position of each dropout layer's mask stream, in module order.
    public var dropoutCounters: [UInt64]
    public var config: TrainingConfig
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

    static func save(_ state: CheckpointState, model: Module, optimizer: Optimizer, to base: String) throws {
        var tensors = model.stateDict()
        for (k, v) in optimizer.state { tensors["optimizer.\(k)"] = v }
        // Tensors first, sidecar last: a sidecar always describes a complete tensor file.
        try SafeTensors.save(tensors, to: base + ".safetensors", metadata: ["format": "pt", "writer": "SwiftSNN"])
        try AtomicFile.write(try Checkpoint.encoder.encode(state), to: base + ".json")
    }

    static func load(_ base: String, model: Module, optimizer: Optimizer) throws -> CheckpointState {
        let stem = base.hasSuffix(".safetensors") ? String(base.dropLast(".safetensors".count))
            : (base.hasSuffix(".json") ? String(base.dropLast(".json".count)) : base)
        let json = stem + ".json", weights = stem + ".safetensors"
        guard FileManager.default.fileExists(atPath: json) else { throw CheckpointError(path: json, reason: "no such file") }
        let state: CheckpointState
        do {
            state = try Checkpoint.decoder.decode(CheckpointState.self, from: try Data(contentsOf: URL(fileURLWithPath: json)))
        } catch {
            throw CheckpointError(path: json, reason: "not a SwiftSNN checkpoint sidecar (\(error))")
        }
        let tensors: [String: Tensor]
        do { tensors = try SafeTensors.load(weights) } catch { throw CheckpointError(path: weights, reason: "\(error)") }
        var modelState: [String: Tensor] = [:], optimizerState: [String: Tensor] = [:]
        for (k, v) in tensors {
            if k.hasPrefix("optimizer.") { optimizerState[String(k.dropFirst("optimizer.".count))] = v } else { modelState[k] = v }
        }
        do { try model.load(stateDict: modelState) } catch { throw CheckpointError(path: weights, reason: "\(error)") }
        optimizer.restore(state: optimizerState, steps: state.optimizerSteps)
        return state
    }
}

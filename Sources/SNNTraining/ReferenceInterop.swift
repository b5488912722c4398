import Foundation
import SNNData
import SNNLayers
import SNNModels
import SNNTensor

/// A weights file that cannot be read or does not fit the model; the message names the file.
public struct WeightsFileError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Weights shared with the TRT reference implementation (PyTorch).
///
/// SwiftSNN's state-dict keys are the reference's (`layers.0.conv2d_layer.module.0.weight`,
/// BatchNorm's `running_mean`, `running_var`, `num_batches_tracked`), so weights move between the
/// two under the same names; only the file format differs. See TRT-SPEC.md §6.
public enum ReferenceWeights {
    /// A state dict read from a file, with notes on what was done to find it.
    public struct StateDict {
        public let tensors: [String: Tensor]
        public let notes: [String]
    }

    /// Reads a state dict from `.safetensors` (the reference's names, or a SwiftSNN checkpoint,
    /// whose `optimizer.*` entries are dropped) or from PyTorch's `.pth`/`.pt` (a state dict, or
    /// a checkpoint dict holding one, e.g. the reference's `{'model_state_dict': ...}`). A
    /// `module.` prefix on every key (`nn.DataParallel`) is removed.
    public static func read(_ path: String) throws -> StateDict {
        guard FileManager.default.fileExists(atPath: path) else { throw WeightsFileError(path: path, reason: "no such file") }
        if isSafeTensors(path) {
            var tensors = try SafeTensors.load(path)
            var notes: [String] = []
            let optimizer = tensors.keys.filter { $0.hasPrefix("optimizer.") }
            if !optimizer.isEmpty {
                for k in optimizer { tensors[k] = nil }
                notes.append("dropped \(optimizer.count) optimizer entries (a SwiftSNN checkpoint)")
            }
            let keys = Array(tensors.keys)
            let (names, stripped) = TorchCheckpoint.withoutDataParallelPrefix(keys)
            if let stripped {
                tensors = Dictionary(uniqueKeysWithValues: zip(names, keys.map { tensors[$0]! }))
                notes.append(stripped)
            }
            return StateDict(tensors: tensors, notes: notes)
        }
        let read = try TorchCheckpoint.stateDict(path)
        return StateDict(tensors: read.tensors, notes: read.notes)
    }

    /// Whether a file is safetensors: by extension, else by its header (a little-endian length,
    /// then `{`).
    static func isSafeTensors(_ path: String) -> Bool {
        if path.hasSuffix(".safetensors") { return true }
        if path.hasSuffix(".pth") || path.hasSuffix(".pt") { return false }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = handle.readData(ofLength: 9)
        return head.count == 9 && head[head.startIndex + 8] == UInt8(ascii: "{")
    }

    /// Reads `path` and loads it into `model`, strictly: every key of the model must be present
    /// with its shape, and no other key may be (BatchNorm running statistics and
    /// `num_batches_tracked` included). Floating-point tensors of another precision are converted.
    ///
    /// - Returns: the notes of ``read(_:)``.
    /// - Throws: ``WeightsFileError`` naming the file and every missing, unexpected or wrongly
    ///   shaped key.
    @discardableResult
    public static func load(_ path: String, into model: Module) throws -> [String] {
        let state = try read(path)
        do { try model.load(stateDict: state.tensors) } catch { throw WeightsFileError(path: path, reason: "\(error)") }
        return state.notes
    }

    /// Writes the model's state dict under the reference's names as safetensors (atomically):
    /// `torch.load`-free for PyTorch users (`safetensors.torch.load_file` then
    /// `model.load_state_dict`).
    public static func export(_ model: Module, to path: String, metadata: [String: String] = [:]) throws {
        try export(model.stateDict(), to: path, metadata: metadata)
    }

    /// Writes a state dict as safetensors (atomically), with `format: pt` metadata.
    public static func export(_ tensors: [String: Tensor], to path: String, metadata: [String: String] = [:]) throws {
        var meta = metadata
        meta["format"] = "pt"
        meta["writer"] = meta["writer"] ?? "SwiftSNN"
        try SafeTensors.save(tensors, to: path, metadata: meta)
    }
}

/// One forward pass (and optionally a loss and its gradients) on batch-major tensors, the way
/// the reference lays them out; `snn forward` and the interoperability tests use it.
public enum ReferenceForward {
    /// Outputs `[N, T, K]`, the loss (a scalar) and the gradients keyed by parameter name.
    public struct Result {
        public let output: Tensor
        public let loss: Tensor?
        public let gradients: [String: Tensor]
    }

    /// Runs `model` on `input`.
    ///
    /// - Parameters:
    ///   - input: a sequence `[N, T, C, H, W]` (event frames) or static images `[N, C, H, W]`,
    ///     repeated over the model's T, as the reference does.
    ///   - labels: `[N]` integer labels; with `loss`, the loss is computed.
    ///   - loss: the objective; penalties `l1`/`l2` follow ``TrainingLoss/total(_:labels:parameters:l1:l2:)``.
    ///   - training: batch statistics (and BN running-statistics updates) as in training, else
    ///     running statistics.
    ///   - gradients: also back-propagate and return the gradient of every parameter.
    public static func run(_ model: SpikingNetwork, input: Tensor, labels: Tensor? = nil, loss: TrainingLoss? = nil,
                           l1: Double = 0, l2: Double = 0, training: Bool, gradients: Bool = false) -> Result {
        precondition(input.rank == 4 || input.rank == 5, "[forward] expected [N, T, C, H, W] or [N, C, H, W] input, got \(ShapeUtil.describe(input.shape))")
        model.train(training)
        let device = model.parameters().first?.device ?? .cpu
        let x = (input.rank == 5 ? input.permuted([1, 0, 2, 3, 4]).contiguous() : input).to(device)
        let params = model.namedParameters()
        var output: Tensor?
        let objective = { () -> Tensor in
            let out = model(x)
            output = out
            guard let loss, let labels else { return out }
            return loss.total(out, labels: labels.to(device), parameters: params, l1: l1, l2: l2)
        }
        var value: Tensor?
        var grads: [String: Tensor] = [:]
        if gradients && loss != nil && labels != nil {
            let (v, g) = valueAndGradients(of: Dictionary(uniqueKeysWithValues: params.map { ($0.key, $0.value) }), objective)
            (value, grads) = (v.detached(), g)
        } else {
            let v = withoutGradients(objective)
            value = loss != nil && labels != nil ? v : nil
        }
        // [T, N, K] -> [N, T, K]
        let out = withoutGradients { (output ?? Tensor.zeros([0, 0, 0])).permuted([1, 0, 2]).contiguous() }
        return Result(output: out, loss: value, gradients: grads)
    }
}

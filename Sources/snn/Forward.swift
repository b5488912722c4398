import ArgumentParser
import Foundation
import SNNModels
import SNNTensor
import SNNTraining

/// `snn forward`: outputs, loss and gradients of a network on saved tensors, batch-major like the
/// reference, for checking SwiftSNN against PyTorch (or using reference weights).
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a network on saved tensors: outputs, and with --labels the loss and (--grads) its gradients.",
        discussion: """
            Reads the tensor 'input' of --input (a sequence [N, T, C, H, W], or static images [N, C, H, W] \
            repeated over T as the reference does) and, with --labels, the integer tensor 'labels' [N]. \
            --weights holds a state dict under the reference's names: safetensors, or PyTorch's .pth (a \
            state dict or a checkpoint holding one; a DataParallel 'module.' prefix is removed). Writes \
            float32 tensors to --output: 'output' [N, T, classes]; with --labels, 'loss' (a scalar; SDT \
            unless --trtloss 1 or --tetloss 1) and, with --grads, 'grad.<name>' for every parameter. \
            The model and loss flags are those of snn train, with the same defaults. Without \
            --train-mode, BatchNorm uses its running statistics (evaluation); with it, batch statistics.
            """)

    @Option(name: .customLong("topology"), help: "A topology string, or a named model (ResNet-19, VGGSNN, ResNet-34, SEW-ResNet-34).")
    var topology: String?
    @Option(name: .customLong("model"), help: "A named model: ResNet-19, VGGSNN, ResNet-34 or SEW-ResNet-34.")
    var model: String?
    @Option(name: .customLong("dataset"), help: "Sets the class count of a named model (default: the rows of the readout weight in --weights).")
    var dataset: String?
    @Option(name: [.customLong("T"), .customShort("T")], help: "Timesteps.")
    var timesteps: Int
    @Option(name: .customLong("weights"), help: "State dict: .safetensors or PyTorch .pth, reference key names.")
    var weights: String
    @Option(name: .customLong("input"), help: "safetensors file holding 'input'.")
    var input: String
    @Option(name: .customLong("labels"), help: "safetensors file holding 'labels' (int64 or int32) [N]; computes the loss.")
    var labels: String?
    @Option(name: .customLong("output"), help: "safetensors file to write.")
    var output: String
    @Flag(name: [.customLong("train-mode"), .customLong("train_mode")], help: "BatchNorm with batch statistics, as in training.")
    var trainMode = false
    @Flag(name: .customLong("grads"), help: "Also write the gradient of the loss for every parameter (needs --labels).")
    var grads = false
    @Option(name: .customLong("device"), help: ArgumentHelp(stringLiteral: DeviceFlag.help))
    var device: String = "cpu"
    @OptionGroup var losses: LossOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var limits: ReaderLimitOptions

    func validate() throws {
        guard (topology == nil) != (model == nil) else { throw FlagError("pass one of --topology or --model") }
        if let model, NamedModel(rawValue: model) == nil {
            throw FlagError("--model accepts \(NamedModel.allCases.map(\.rawValue).joined(separator: ", ")); got \(model)")
        }
        if let dataset { _ = try DatasetName.parse(dataset) }
        guard timesteps >= 1 else { throw FlagError("--T must be a positive integer, got \(timesteps)") }
        if grads && labels == nil { throw FlagError("--grads needs --labels") }
        try DeviceFlag.check(device)
        try losses.check(trtDefault: 0)
    }

    func run() throws {
        SNN.prepare()
        limits.apply()
        let dev = try DeviceFlag.open(device)
        let x = try Forward.tensor(named: "input", in: input)
        guard x.rank == 4 || x.rank == 5, x.dtype.isFloatingPoint else {
            throw CLIError("\(input): 'input' must be a floating-point [N, T, C, H, W] or [N, C, H, W] tensor, got \(x.dtype) \(x.shape)")
        }
        if x.rank == 5 && x.shape[1] != timesteps {
            throw CLIError("\(input): 'input' holds \(x.shape[1]) timesteps ([N, T, C, H, W] = \(x.shape)) but --T is \(timesteps)")
        }
        let state = try ReferenceWeights.read(weights)
        let name = model ?? topology ?? ""
        let net = try Forward.network(name, frame: Array(x.shape.suffix(3)), timesteps: timesteps, dataset: dataset,
                                      weights: state.tensors, options: network, device: dev)
        if x.rank == 5, case .conv(_, _, _, _, _, _, true)? = net.topology.tokens.first {
            throw CLIError("\(input): a CONVEN encoder takes static [N, C, H, W] images, got a sequence \(x.shape)")
        }
        do { try net.load(stateDict: state.tensors) } catch { throw CLIError("\(weights): \(error)") }
        for note in state.notes { print("\(weights): \(note)") }

        var y: SNNTensor.Tensor?
        if let labels {
            let l = try Forward.tensor(named: "labels", in: labels)
            guard l.rank == 1, !l.dtype.isFloatingPoint, l.shape[0] == x.shape[0] else {
                throw CLIError("\(labels): 'labels' must be an integer [N] tensor with N = \(x.shape[0]), got \(l.dtype) \(l.shape)")
            }
            if let bad = l.toDoubles().first(where: { $0 < 0 || $0 >= Double(net.classes) }) {
                throw CLIError("\(labels): label \(Int(bad)) is outside 0..<\(net.classes)")
            }
            y = l
        }
        let loss = losses.loss(trtDefault: 0)
        let result = ReferenceForward.run(net, input: Forward.float32(x), labels: y, loss: y == nil ? nil : loss,
                                          l1: losses.l1, l2: losses.l2, training: trainMode, gradients: grads)
        var tensors: [String: SNNTensor.Tensor] = ["output": result.output]
        if let value = result.loss { tensors["loss"] = Forward.float32(value.reshaped([])) }
        for (k, g) in result.gradients { tensors["grad.\(k)"] = Forward.float32(g) }
        try ReferenceWeights.export(tensors, to: output, metadata: ["producer": "snn forward"])
        var line = "\(output): output \(result.output.shape) (\(trainMode ? "batch" : "running") statistics)"
        if let value = result.loss { line += String(format: ", loss %@ %.6g", loss.methodName, value.item()) }
        if !result.gradients.isEmpty { line += ", \(result.gradients.count) gradients" }
        print(line)
    }

    /// The network for a topology or named model, sized by the input frame; a named model's
    /// class count comes from --dataset or from the readout weight's rows.
    static func network(_ name: String, frame: [Int], timesteps: Int, dataset: String?, weights: [String: SNNTensor.Tensor],
                        options: NetworkOptions, device: Device) throws -> SpikingNetwork {
        let config = ModelConfig(timesteps: timesteps, inputShape: frame, dropout: options.dropout, batchNorm: options.norm == "tdBN",
                                 kaimingInit: options.initFlag == 1, neuron: options.neuron)
        func build(_ classes: Int) throws -> SpikingNetwork {
            do {
                return try SpikingNetwork(name, classes: classes, config: config, generator: RandomGenerator(seed: 0), device: device)
            } catch {
                throw CLIError("--topology: \(error)")
            }
        }
        var net = try build(dataset.flatMap(DatasetName.init(named:))?.classes ?? 10)
        if dataset == nil, NamedModel(rawValue: name) != nil, let readout = net.namedParameters().last(where: { $0.key.hasSuffix(".weight") }),
           let rows = weights[readout.key]?.shape.first, rows != net.classes {
            net = try build(rows)
        }
        return net
    }

    /// The tensor `name` of a safetensors file.
    static func tensor(named name: String, in path: String) throws -> SNNTensor.Tensor {
        let tensors: [String: SNNTensor.Tensor]
        do { tensors = try SafeTensors.load(path) } catch { throw CLIError("\(error)") }
        guard let t = tensors[name] else {
            throw CLIError("\(path): no tensor '\(name)' (it holds \(tensors.keys.sorted().joined(separator: ", ")))")
        }
        return t
    }

    /// `t` as float32.
    static func float32(_ t: SNNTensor.Tensor) -> SNNTensor.Tensor {
        guard t.dtype != .float32 else { return t }
        let out = SNNTensor.Tensor.empty(t.shape, dtype: .float32, device: t.device)
        out.assign(t)
        return out
    }
}

import ArgumentParser
import Foundation
import SNNModels
import SNNTensor
import SNNTraining

/// `snn convert`: weights between PyTorch's files, SwiftSNN checkpoints and safetensors under the
/// reference's names.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert weights to safetensors under the reference's state-dict names.",
        discussion: """
            IN is a PyTorch file (.pth/.pt: a state dict saved by the reference, or a checkpoint dict \
            holding one such as the reference's {'model_state_dict': ...}; a DataParallel 'module.' \
            prefix is removed), a safetensors file, or a SwiftSNN checkpoint (runs/result/<run>/weights/best, \
            with or without .safetensors; its optimizer state is dropped). OUT holds the model's \
            parameters and BatchNorm buffers only, under the names of the reference's SNN class, which \
            are SwiftSNN's too: `snn forward --weights OUT` reads it, and PyTorch loads it with \
            model.load_state_dict(safetensors.torch.load_file(OUT)). With --topology or --model the \
            weights are first checked against that network (every key present with its shape, no other).
            """)

    @Argument(help: "Weights to read: .pth, .pt, .safetensors or a SwiftSNN checkpoint path.")
    var source: String
    @Argument(help: "The safetensors file to write.")
    var destination: String
    @Option(name: .customLong("topology"), help: "Check against this topology string or named model.")
    var topology: String?
    @Option(name: .customLong("model"), help: "Check against this named model.")
    var model: String?
    @Option(name: .customLong("dataset"), help: "Input shape and class count for the check (default: CIFAR10 for ResNet-19, DVSCIFAR10 otherwise; the readout's rows for named models).")
    var dataset: String?
    @Option(name: [.customLong("input-shape"), .customLong("input_shape")], help: "One input frame C,H,W for the check (default: the data set's).")
    var inputShape: String?
    @Option(name: [.customLong("T"), .customShort("T")], help: "Timesteps for the check.")
    var timesteps: Int = 4
    @OptionGroup var network: NetworkOptions
    @OptionGroup var limits: ReaderLimitOptions

    func validate() throws {
        if topology != nil && model != nil { throw FlagError("pass at most one of --topology or --model") }
        if let dataset { _ = try DatasetName.parse(dataset) }
        if let inputShape, Convert.frame(inputShape) == nil { throw FlagError("--input-shape expects C,H,W (e.g. 2,48,48), got \(inputShape)") }
        guard destination.hasSuffix(".safetensors") else { throw FlagError("OUT must be a .safetensors file, got \(destination)") }
    }

    func run() throws {
        SNN.prepare()
        limits.apply()
        try Convert.perform(source: source, destination: destination, name: model ?? topology, dataset: dataset,
                            inputShape: inputShape.flatMap(Convert.frame), timesteps: timesteps, network: network)
    }

    /// Converts `source` to the safetensors file `destination` (`snn convert`, and
    /// `snn export --format safetensors`), checked against the network `name` when given.
    static func perform(source: String, destination: String, name: String?, dataset: String?, inputShape: [Int]?,
                        timesteps: Int, network: NetworkOptions) throws {
        let path = weightsFile(source)
        // Where OUT goes must be writable before any work (one line naming the folder and why).
        let folder = FileSystem.parent(destination)
        do {
            try FileSystem.checkCreatable(folder)
        } catch {
            throw CLIError("\(destination): \(error)")
        }
        let state: ReferenceWeights.StateDict
        do { state = try ReferenceWeights.read(path) } catch { throw CLIError("\(error)") }
        for note in state.notes { print("\(path): \(note)") }
        if let name {
            // A SwiftSNN checkpoint knows its data set: its frame shape is the default.
            let run = path.hasSuffix(".safetensors") ? (try? CheckpointState.read(path))?.config : nil
            let runFrame = run.flatMap(frame(of:))
            let defaultData: DatasetName = name == "ResNet-19" ? .cifar10 : .dvsCIFAR10
            let frame = inputShape ?? dataset.flatMap(DatasetName.init(named:))?.inputShape ?? runFrame ?? defaultData.inputShape
            let net = try Forward.network(name, frame: frame, timesteps: timesteps, dataset: dataset ?? run?.dataset, weights: state.tensors,
                                          options: network, device: .cpu)
            do {
                try net.load(stateDict: state.tensors)
            } catch {
                let source = inputShape != nil ? "--input-shape" : dataset != nil ? "--dataset \(dataset!)"
                    : runFrame != nil ? "the checkpoint's data set (\(run!.dataset))" : "the default data set (\(defaultData.rawValue))"
                throw CLIError("\(path): \(error) (the network was built for input frames of \(frame.map(String.init).joined(separator: "×")), "
                    + "from \(source); --dataset or --input-shape C,H,W sets the frames the weights were trained on)")
            }
            print("\(path): matches \(name) (\(net.parameterCount) parameters)")
        }
        do {
            try ReferenceWeights.export(state.tensors, to: destination, metadata: ["source": URL(fileURLWithPath: path).lastPathComponent])
        } catch {
            throw CLIError("\(error)")
        }
        let scalars = state.tensors.values.map(\.count).reduce(0, +)
        print("\(destination): \(state.tensors.count) tensors, \(scalars) values")
    }

    /// `path`, or `path.safetensors` when only that exists (a checkpoint named without extension).
    static func weightsFile(_ path: String) -> String {
        !FileManager.default.fileExists(atPath: path) && FileManager.default.fileExists(atPath: path + ".safetensors") ? path + ".safetensors" : path
    }

    /// The input frame a SwiftSNN run trained on (its data set's, resized by --frame-size).
    static func frame(of run: TrainingConfig) -> [Int]? {
        (try? TrainOptions.parse(run.trainArguments))?.expectedInput.shape
    }

    /// `C,H,W` (or `CxHxW`) as three positive integers.
    static func frame(_ text: String) -> [Int]? {
        let parts = text.split(whereSeparator: { ",x×".contains($0) }).compactMap { Int($0) }
        return parts.count == 3 && parts.allSatisfy({ $0 > 0 }) ? parts : nil
    }
}

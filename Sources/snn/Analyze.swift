import ArgumentParser
import Foundation
import SNNAnalysis
import SNNData
import SNNModels
import SNNTensor
import SNNTraining

/// `snn analyze ...`: the paper's analyses of a trained network.
struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyse a trained network: Fisher information per timestep and its information centroid.",
        subcommands: [AnalyzeFisher.self])
}

/// The flags every `snn analyze` command shares: the checkpoint and where results go.
struct AnalysisOptions: ParsableArguments {
    @Option(name: .customLong("checkpoint"), help: "A SwiftSNN checkpoint (RUN/weights/best or last, with or without .safetensors); its run's configuration builds the network and reads the data.")
    var checkpoint: String
    @Option(name: [.customLong("data-dir"), .customLong("data_dir")], help: "The data set's folder, when it is no longer where the run read it.")
    var dataDir: String?
    @Flag(help: "Print one JSON object on stdout.")
    var json = false
    @Option(name: .customLong("output"), help: "Also write the results as CSV and JSON files into this folder.")
    var output: String?

    /// The checkpoint's weights file.
    var weightsFile: String {
        checkpoint.hasSuffix(".safetensors") ? checkpoint
            : (checkpoint.hasSuffix(".json") ? String(checkpoint.dropLast(5)) : checkpoint) + ".safetensors"
    }

    /// The checkpoint's run: its training state, its options, the trained network and its data.
    func openRun() throws -> (state: CheckpointState, options: TrainOptions, model: SpikingNetwork, train: any LabelledDataset) {
        let state: CheckpointState
        do { state = try CheckpointState.read(checkpoint) } catch { throw CLIError("--checkpoint: \(error)") }
        let options: TrainOptions
        do {
            options = try TrainOptions.parse(state.config.trainArguments + (dataDir.map { ["--data-dir=\($0)"] } ?? []))
        } catch {
            throw CLIError("--checkpoint \(checkpoint): its run's configuration is not valid here: \(TrainOptions.message(for: error))")
        }
        let config = options.makeConfig()
        let device = Device(config.device) ?? .cpu
        let (train, _, shape) = try options.loadData(config)
        let model = try options.makeModel(config, shape: shape, classes: train.classes, device: device)
        do { _ = try ReferenceWeights.load(weightsFile, into: model) } catch { throw CLIError("--checkpoint: \(error)") }
        return (state, options, model, train)
    }

    /// Writes `files` (name → contents) into --output, atomically, and says where.
    func write(_ files: [(String, String)]) throws {
        guard let output else { return }
        for (name, text) in files {
            do { try AtomicFile.write(Data(text.utf8), to: "\(output)/\(name)", durable: false) } catch { throw CLIError("--output: \(error)") }
        }
        if !json { print("wrote \(files.map { "\(output)/\($0.0)" }.joined(separator: ", "))") }
    }

    func validate() throws {
        if let output { do { try FileSystem.checkCreatable(output) } catch { throw FlagError("--output: \(error)") } }
    }
}

/// `snn analyze fisher`: FI_t for t = 1...T and the information centroid (TRT-SPEC.md §5).
struct AnalyzeFisher: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fisher",
        abstract: "Fisher information per timestep of a trained network and its information centroid.",
        discussion: """
            With the network in evaluation mode, for t = 1...T: the loss is the negative log-likelihood \
            of the log-softmax of the output averaged over the first t timesteps, on the training data \
            in the order of the checkpoint's epoch (with its augmentation), as the reference computes it. \
            The reference estimator (the default) sums the squared gradient of each batch's mean loss \
            over --batches batches and divides by 100; --estimator per-sample is the empirical Fisher, \
            the mean over samples of each sample's squared gradient (one sample at a time: costlier). \
            One forward pass per batch serves every t. IC = Σ t·FI_t / Σ FI_t.
            """)

    @OptionGroup var common: AnalysisOptions
    @Option(help: "Training batches to estimate over (the reference: the first 101).")
    var batches: Int = 101
    @Option(help: "reference (squared batch-mean gradients / 100) or per-sample (the empirical Fisher).")
    var estimator: String = "reference"

    func validate() throws {
        if batches < 1 { throw FlagError("--batches must be positive, got \(batches)") }
        guard FisherEstimator(rawValue: estimator) != nil else {
            throw FlagError("--estimator accepts reference, per-sample; got \(estimator)")
        }
    }

    func run() throws {
        SNN.prepare()
        let (state, options, model, train) = try common.openRun()
        let config = options.makeConfig()
        let kind = FisherEstimator(rawValue: estimator) ?? .reference
        let order = train.batchIndices(epoch: state.epoch, batchSize: config.batchSize, shuffle: true, seed: config.seed)
        let terminal = isatty(STDOUT_FILENO) != 0 && !common.json
        let start = Date()
        let fi = try FisherInformation.estimate(model: model, data: train, batchIndices: order, epoch: state.epoch, estimator: kind,
                                                batches: batches) { done, total in
            guard terminal else { return }
            let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-3)
            print(String(format: "\rbatch %d/%d, %.2f batches/s, ETA %.0f s ", done, total, rate, Double(total - done) / rate), terminator: "")
            fflush(stdout)
        }
        if terminal { print("\r\u{1B}[K", terminator: "") }
        let seconds = Date().timeIntervalSince(start)
        let object: [String: Any] = [
            "checkpoint": common.checkpoint, "epoch": state.epoch, "T": fi.perTimestep.count, "estimator": kind.rawValue,
            "batches": fi.batches, "samples": fi.samples, "fisher_information": fi.perTimestep,
            "information_centroid": fi.centroid.isFinite ? fi.centroid : NSNull(), "seconds": seconds,
        ]
        let csv = "t,fisher_information\n" + fi.perTimestep.enumerated().map { "\($0.offset + 1),\($0.element)" }.joined(separator: "\n") + "\n"
        let jsonText = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self)
        if common.json {
            try Output.printJSON(object)
        } else {
            print("Fisher information of \(config.modelName ?? config.topology) after epoch \(state.epoch) (\(kind.label)), \(fi.batches) batches, \(fi.samples) samples, \(String(format: "%.1f", seconds)) s")
            for (t, value) in fi.perTimestep.enumerated() { print(String(format: "t=%-3d %.6g", t + 1, value)) }
            print(String(format: "information centroid %.4f", fi.centroid))
        }
        try common.write([("fisher.csv", csv), ("fisher.json", jsonText + "\n")])
    }
}

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
        abstract: "Analyse a trained network: Fisher information per timestep and its information centroid, loss landscapes, firing rates and energy.",
        subcommands: [AnalyzeFisher.self, AnalyzeLandscape.self, AnalyzeRates.self])
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
    @Option(name: .customLong("device"), help: "Where to compute: cpu, cuda, cuda:N or reference (default: the run's device).")
    var device: String?

    /// The checkpoint's weights file.
    var weightsFile: String {
        checkpoint.hasSuffix(".safetensors") ? checkpoint
            : (checkpoint.hasSuffix(".json") ? String(checkpoint.dropLast(5)) : checkpoint) + ".safetensors"
    }

    /// The checkpoint's run: its training state, its options, the trained network and its data.
    func openRun() throws -> (state: CheckpointState, options: TrainOptions, model: SpikingNetwork, train: any LabelledDataset) {
        let run = try openRunWithTest()
        return (run.state, run.options, run.model, run.train)
    }

    /// ``openRun()`` with the test split too.
    func openRunWithTest() throws -> (state: CheckpointState, options: TrainOptions, model: SpikingNetwork, train: any LabelledDataset,
                                      test: any LabelledDataset) {
        let state: CheckpointState
        do { state = try CheckpointState.read(checkpoint) } catch { throw CLIError("--checkpoint: \(error)") }
        let options: TrainOptions
        do {
            options = try TrainOptions.parse(state.config.trainArguments + (dataDir.map { ["--data-dir=\($0)"] } ?? []))
        } catch {
            throw CLIError("--checkpoint \(checkpoint): its run's configuration is not valid here: \(TrainOptions.message(for: error))")
        }
        let config = options.makeConfig()
        let device: Device
        if let chosen = self.device {
            device = try DeviceFlag.open(chosen)
        } else {
            do {
                device = try DeviceFlag.open(config.device)
            } catch {
                throw CLIError("the run computed on \(config.device), which is not available here (\(error)); choose another with --device cpu")
            }
        }
        let (train, test, shape) = try options.loadData(config)
        let model = try options.makeModel(config, shape: shape, classes: train.classes, device: device)
        do { _ = try ReferenceWeights.load(weightsFile, into: model) } catch { throw CLIError("--checkpoint: \(error)") }
        return (state, options, model, train, test)
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
            of the log-softmax of the output averaged over the first t timesteps, on the training batches \
            of the epoch the checkpoint finished (with its augmentation), as train --observe_fi measures it. \
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
        // The batches of the epoch the checkpoint finished (what --observe_fi measures in training).
        let epoch = max(state.epoch - 1, 0)
        let order = train.batchIndices(epoch: epoch, batchSize: config.batchSize, shuffle: true, seed: config.seed)
        let progress = TerminalProgress(enabled: isatty(STDOUT_FILENO) != 0 && !common.json)
        let fi = try FisherInformation.estimate(model: model, data: train, batchIndices: order, epoch: epoch, estimator: kind,
                                                batches: batches) { progress.show("fisher", $0, $1, unit: "batches") }
        progress.clear()
        let seconds = Date().timeIntervalSince(progress.start)
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

/// `snn analyze landscape`: loss and accuracy on a 2-D grid around the trained weights.
struct AnalyzeLandscape: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "landscape",
        abstract: "Loss landscape: loss and accuracy on a grid along two filter-normalised random directions.",
        discussion: """
            The weights move to w + a·δx + b·δy for a, b in [-span, span] (--grid points each way). δx and δy \
            are Gaussian (from --seed), scaled filter by filter to the norm of the matching filter of the \
            weights; biases and batch norm parameters do not move (Li et al. 2018). The loss is the \
            cross-entropy of the output averaged over time, with batch norm on its running statistics, on \
            a fixed subset of --samples training samples (drawn with the run's seed; augmentation as in epoch 0). \
            --directions FILE reuses the directions in FILE (written there on first use), so several \
            checkpoints (SDT, TET, TRT) are plotted along the same directions. --parallel N evaluates the \
            points in N processes of snn at once (points i, i+N, ... each, with OMP_NUM_THREADS = threads/N), \
            each reading the checkpoint and the samples. The numbers are those of one process run with \
            OMP_NUM_THREADS = threads/N, bit for bit (oneDNN and OpenBLAS may sum in another order at \
            another thread count: differences near float precision). \
            A progress line shows points done, rate and ETA on a terminal.
            """)

    @OptionGroup var common: AnalysisOptions
    @Option(help: "Grid points along each direction (2 or more; odd includes the trained weights).")
    var grid: Int = 21
    @Option(help: "The grid spans [-span, span] along each direction.")
    var span: Double = 1.0
    @Option(help: "Training samples the loss is measured on.")
    var samples: Int = 2048
    @Option(help: "Seed of the random directions (when --directions does not name an existing file).")
    var seed: UInt64 = 0
    @Option(help: "A safetensors file of directions: read when it exists, else written.")
    var directions: String?
    @Option(help: "Processes evaluating grid points at once, each with OMP_NUM_THREADS = threads / N.")
    var parallel: Int = 1
    @Option(name: .customLong("points-shard"), help: ArgumentHelp("A worker of --parallel: evaluate points i, i+N, ... (i/N) and print them.",
                                                                  visibility: .hidden))
    var pointsShard: String?

    /// --points-shard `i/N` as (i, N).
    var shard: (index: Int, count: Int)? {
        guard let pointsShard else { return nil }
        let parts = pointsShard.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(i) else { return nil }
        return (i, n)
    }

    func validate() throws {
        if grid < 2 { throw FlagError("--grid must be 2 or more (a landscape needs points on both sides), got \(grid)") }
        try requireFinite([("--span", span)])
        if span <= 0 { throw FlagError("--span must be positive, got \(span)") }
        if samples < 1 { throw FlagError("--samples must be positive, got \(samples)") }
        if parallel < 1 { throw FlagError("--parallel must be 1 or more, got \(parallel)") }
        if let pointsShard, shard == nil { throw FlagError("--points-shard expects i/N with 0 <= i < N, got \(pointsShard)") }
        if pointsShard != nil, directions.map(FileManager.default.fileExists) != true {
            throw FlagError("--points-shard needs --directions naming an existing file")
        }
    }

    func run() throws {
        SNN.prepare()
        let (_, options, model, train) = try common.openRun()
        let config = options.makeConfig()
        let parameters = model.namedParameters()
        let workers = shard == nil ? min(parallel, grid * grid) : 1
        // Workers read the directions from a file: --directions, else one of ours for this run.
        let file = directions ?? (workers > 1 ? FileManager.default.temporaryDirectory
            .appendingPathComponent("snn-landscape-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).safetensors").path : nil)
        defer { if directions == nil, let file { try? FileManager.default.removeItem(atPath: file) } }
        let chosen: LandscapeDirections
        if let directions, FileManager.default.fileExists(atPath: directions) {
            do { chosen = try LandscapeDirections.load(directions, parameters: parameters) } catch { throw CLIError("--directions: \(error)") }
        } else {
            chosen = LandscapeDirections(parameters: parameters, seed: seed)
            if let file {
                do { try chosen.save(to: file) } catch { throw CLIError("\(directions == nil ? "--parallel: the workers' directions" : "--directions"): \(error)") }
            }
        }
        // A fixed subset of the training data, drawn with the run's seed (the same for every
        // checkpoint of a run and for any --seed of the directions).
        let subset = Array(train.batchIndices(epoch: 0, batchSize: train.count, shuffle: true, seed: config.seed).first?.prefix(samples) ?? [])
        let batches = stride(from: 0, to: subset.count, by: config.batchSize).map { subset[$0..<min($0 + config.batchSize, subset.count)] }
        if let shard {
            // A worker of --parallel: its points on stdout as they are done (LandscapeWorkers reads them).
            _ = try LossLandscape.evaluate(model: model, data: train, batches: batches, directions: chosen, grid: grid, span: span,
                                           points: LossLandscape.shard(shard.index, of: shard.count, grid: grid), point: { k, loss, accuracy in
                                               print("point \(k) \(loss) \(accuracy)")
                                               fflush(stdout)
                                           })
            return
        }
        let progress = TerminalProgress(enabled: isatty(STDOUT_FILENO) != 0 && !common.json)
        let landscape: LossLandscape
        if workers > 1, let file {
            landscape = try LandscapeWorkers.evaluate(workers: workers, coordinates: LossLandscape.coordinates(grid: grid, span: span),
                                                      samples: subset.count, progress: progress,
                                                      removeOnSignal: directions == nil ? file : nil) { w in
                ["analyze", "landscape", "--checkpoint", common.checkpoint] + (common.dataDir.map { ["--data-dir", $0] } ?? [])
                    + (common.device.map { ["--device", $0] } ?? [])
                    + ["--grid", "\(grid)", "--span", "\(span)", "--samples", "\(samples)", "--directions", file, "--points-shard", "\(w)/\(workers)"]
            }
        } else {
            landscape = try LossLandscape.evaluate(model: model, data: train, batches: batches, directions: chosen, grid: grid, span: span,
                                                   progress: { progress.show("landscape", $0, $1, unit: "points") })
        }
        progress.clear()
        let seconds = Date().timeIntervalSince(progress.start)
        let center = grid / 2
        var csv = "x,y,loss,accuracy\n"
        for (i, a) in landscape.coordinates.enumerated() {
            for (j, b) in landscape.coordinates.enumerated() { csv += "\(a),\(b),\(landscape.loss[i][j]),\(landscape.accuracy[i][j])\n" }
        }
        let object: [String: Any] = [
            "checkpoint": common.checkpoint, "grid": grid, "span": span, "samples": landscape.samples, "seed": chosen.seed,
            "coordinates": landscape.coordinates, "loss": landscape.loss, "accuracy": landscape.accuracy, "seconds": seconds,
        ]
        let jsonText = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        if common.json {
            print(jsonText)
        } else {
            let flat = landscape.loss.flatMap { $0 }
            print("loss landscape of \(config.modelName ?? config.topology): \(grid)×\(grid) points in [-\(span), \(span)]², \(landscape.samples) training samples, directions from seed \(chosen.seed), \(String(format: "%.1f", seconds)) s")
            print(String(format: "loss %.4f at the centre point, min %.4f, max %.4f; accuracy %.2f%% at the centre point",
                         landscape.loss[center][center], flat.min() ?? 0, flat.max() ?? 0, landscape.accuracy[center][center] * 100))
        }
        try common.write([("landscape.csv", csv), ("landscape.json", jsonText + "\n")])
    }
}

/// `snn analyze rates`: firing rates per layer and timestep, synaptic operations and energy.
struct AnalyzeRates: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rates",
        abstract: "Spike firing rates per layer and timestep on test data, synaptic operations and the energy estimate.",
        discussion: """
            With the network in evaluation mode on the test split: the mean firing rate of every spiking \
            layer, overall and per timestep. Operations per sample over T steps: the first layer's \
            multiply-accumulates on analog input count as MACs; every later layer does one accumulate \
            per input spike and connection (the rate of the spikes feeding it × its MACs × T; \
            average-pooled spikes count as spikes). Energy: MACs × --mac-energy + accumulates × \
            --ac-energy (45 nm: 4.6 pJ and 0.9 pJ), beside the same network as an ANN (every \
            connection a MAC, one pass).
            """)

    @OptionGroup var common: AnalysisOptions
    @Option(help: "Test samples to measure on (default: the whole test split).")
    var samples: Int?
    @Option(name: [.customLong("mac-energy"), .customLong("mac_energy")], help: "Picojoules per multiply-accumulate.")
    var macEnergy: Double = 4.6
    @Option(name: [.customLong("ac-energy"), .customLong("ac_energy")], help: "Picojoules per accumulate (synaptic operation).")
    var acEnergy: Double = 0.9

    func validate() throws {
        if let samples, samples < 1 { throw FlagError("--samples must be positive, got \(samples)") }
        try requireFinite([("--mac-energy", macEnergy), ("--ac-energy", acEnergy)])
        if macEnergy < 0 || acEnergy < 0 { throw FlagError("--mac-energy and --ac-energy must be 0 or more") }
    }

    func run() throws {
        SNN.prepare()
        let (_, options, model, _, test) = try common.openRunWithTest()
        let config = options.makeConfig()
        let count = min(samples ?? test.count, test.count)
        let batches = stride(from: 0, to: count, by: config.batchSize).map { ArraySlice(Array($0..<min($0 + config.batchSize, count))) }
        let activity = try SpikeActivity.measure(model: model, data: test, batches: batches)
        let (snn, ann) = activity.energy(mac: macEnergy * 1e-12, ac: acEnergy * 1e-12)
        let layers = activity.layers.map { ["name": $0.name, "rate": $0.rate, "per_timestep": $0.perTimestep] as [String: Any] }
        let operations = activity.operations.map { o -> [String: Any] in
            ["index": o.index, "token": o.token, "input": o.input ?? NSNull(), "input_rate": o.inputRate ?? NSNull(),
             "macs_per_timestep": o.macsPerTimestep, "macs": o.macs, "synaptic_operations": o.synapticOperations]
        }
        let object: [String: Any] = [
            "checkpoint": common.checkpoint, "samples": activity.samples, "T": activity.timesteps, "layers": layers,
            "operations": operations, "macs": activity.totalMACs, "synaptic_operations": activity.totalSynapticOperations,
            "ann_macs": activity.annMACs, "mac_energy_pj": macEnergy, "ac_energy_pj": acEnergy,
            "energy_joules": snn, "ann_energy_joules": ann,
        ]
        let jsonText = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        var csv = "layer,t,firing_rate\n"
        for l in activity.layers { for (t, r) in l.perTimestep.enumerated() { csv += "\(l.name),\(t + 1),\(r)\n" } }
        if common.json {
            print(jsonText)
        } else {
            print("spike firing rates of \(config.modelName ?? config.topology) on \(activity.samples) test samples, T=\(activity.timesteps)")
            let width = max(20, (activity.layers.map(\.name.count).max() ?? 0) + 2)
            func pad(_ s: String) -> String { s + String(repeating: " ", count: max(width - s.count, 1)) }
            let labels = ["mean"] + (1...activity.timesteps).map { "t=\($0)" }
            let header = pad("layer") + labels.map { $0 + String(repeating: " ", count: max(6 - $0.count, 0)) }.joined(separator: "  ")
            print(String(header.reversed().drop { $0 == " " }.reversed()))
            for l in activity.layers {
                print(pad(l.name) + ([l.rate] + l.perTimestep).map { String(format: "%.4f", $0) }.joined(separator: "  "))
            }
            print(String(format: "per sample: %.3e MACs (analog input) and %.3e synaptic operations over %d steps; as an ANN %.3e MACs",
                         activity.totalMACs, activity.totalSynapticOperations, activity.timesteps, activity.annMACs))
            print(String(format: "energy per sample (%.2g pJ per MAC, %.2g pJ per accumulate): SNN %.4g µJ, ANN %.4g µJ (%.2f×)",
                         macEnergy, acEnergy, snn * 1e6, ann * 1e6, ann / max(snn, 1e-30)))
        }
        try common.write([("firing_rates.csv", csv), ("rates.json", jsonText + "\n")])
    }
}

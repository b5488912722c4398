import ArgumentParser
import Foundation
import SNNCPU
import SNNData
import SNNDistributed
import SNNModels
import SNNTensor
import SNNTraining

extension TrainOptions {
    /// The data set the flags name (the synthetic events without --dataset).
    var datasetName: DatasetName { dataset.flatMap(DatasetName.init(named:)) ?? .synthetic }

    func makeConfig() -> TrainingConfig {
        var config = makeBaseConfig()
        config.workers = workers
        config.dropLast = dropLast
        return config
    }

    private func makeBaseConfig() -> TrainingConfig {
        let name = datasetName
        let topologyText = topology ?? name.defaultTopology
        let modelName = NamedModel(rawValue: topologyText) != nil ? topologyText
            : (name == .synthetic && topologyText == name.defaultTopology ? "SyntheticVGG" : nil)
        var config = TrainingConfig(
            dataset: name.rawValue, topology: topologyText, modelName: modelName,
            timesteps: timesteps ?? name.defaultTimesteps, epochs: epochs ?? (name == .synthetic ? 8 : 300), batchSize: batchSize, learningRate: lr,
            optimizer: Optimizer.Kind(rawValue: optimizer) ?? .adam, scheduler: scheduler == 1, weightDecay: weightDecay,
            l1: losses.l1, l2: losses.l2, loss: losses.loss(trtDefault: 1), neuron: network.neuron, dropout: network.dropout,
            batchNorm: network.norm == "tdBN", kaimingInit: network.initFlag == 1,
            seed: seed, device: device, maxSteps: maxSteps, clipGradNorm: clipGradNorm,
            checkpointEpochs: checkpointEpochs.split(separator: "-").compactMap { Int($0) }, saveCheckpoints: saveCheckpoint == 1)
        if observeFI == 1 { config.fisherEpochs = fiEpochs.split(separator: "-").compactMap { Int($0) } }
        if observeIC == 1 { config.observeCentroid = true }
        if accumulate > 1 { config.accumulate = accumulate }
        if syncBatchNorm { config.syncBatchNorm = true }
        config.amp = (try? DeviceFlag.amp(amp, device: device)) ?? nil
        if tf32 { config.tf32 = true }
        var recorded = dataOptions.recorded(for: name)
        recorded["augment"] = String(augment)
        if skipCorrupt { recorded["skip_corrupt"] = "1" }
        // Absolute, so a resumed run finds the data from any working directory.
        if let dataDir, name.readsFiles { recorded["data_dir"] = URL(fileURLWithPath: dataDir).standardizedFileURL.path }
        config.dataOptions = recorded
        return config
    }

    var dataOptions: DataOptions {
        DataOptions(augment: augment == 1, skipCorrupt: skipCorrupt, dvsFrames: EventFolderDataset.DVSFrames(rawValue: dvsFrames) ?? .standard,
                    classes: classes, frameSize: frameSize, syntheticSamples: syntheticSamples, cacheDir: cacheDir)
    }

    /// The shape of one input frame and the class count the data set will have, when they are
    /// known before reading it (folder data sets have the classes their folders hold).
    var expectedInput: (shape: [Int], classes: Int?) {
        let name = datasetName
        var shape = name.inputShape
        if let size = frameSize, name.eventKind != nil { shape = [shape[0], size, size] }
        let fixed = [.cifar10, .cifar100, .synthetic].contains(name) || (name == .imagenet100 && classes == "imagenet100")
        return (shape, fixed ? name.classes : nil)
    }

    /// The training and test sets the flags select, and one sample's shape.
    func loadData(_ config: TrainingConfig) throws -> (any LabelledDataset, any LabelledDataset, [Int]) {
        let data = try datasetName.loadForCommand(from: dataDir ?? "", timesteps: config.timesteps, seed: seed, options: dataOptions)
        if !data.skipped.isEmpty { print("skipped \(data.skipped.count) unreadable file(s), e.g. \(data.skipped[0])") }
        return (data.train, data.test, data.inputShape)
    }

    /// The network the configuration describes, for frames of `shape` and `classes` outputs
    /// (`nil`: not known yet; a named model gets the data set's default and the readout is not
    /// checked).
    func makeModel(_ config: TrainingConfig, shape: [Int], classes known: Int?, device: Device) throws -> SpikingNetwork {
        let classes = known ?? datasetName.classes
        let modelConfig = ModelConfig(timesteps: config.timesteps, inputShape: shape, dropout: network.dropout,
                                      batchNorm: config.batchNorm, kaimingInit: config.kaimingInit, neuron: config.neuron)
        let model: SpikingNetwork
        do {
            model = try SpikingNetwork(config.topology, classes: classes, config: modelConfig, generator: RandomGenerator(seed: seed), device: device)
        } catch {
            throw CLIError("--topology: \(error)")
        }
        guard known == nil || model.classes == classes else {
            throw CLIError("--topology: the readout has \(model.classes) outputs but \(config.dataset) has \(classes) classes")
        }
        return model
    }

    func runTraining() throws {
        // First, so a Ctrl-C while data loads still ends in a clean, resumable stop.
        installInterruptHandler()
        guard resume == 1, let resumePath else { try train(resuming: nil, in: nil); return }
        // A resumed run takes the checkpoint's configuration; flags given again must match it,
        // or be ones a run may change (named once).
        let saved: CheckpointState
        do { saved = try CheckpointState.read(resumePath) } catch { throw CLIError("--resume_path: \(error)") }
        var given = SNN.arguments
        if given.first == "train" { given.removeFirst() }
        let (options, overrides) = try ResumeConfiguration.merge(saved: saved.config, given: given, checkpoint: resumePath)
        if !overrides.isEmpty { print("resuming with overrides: \(overrides.joined(separator: ", "))") }
        // The run continues in its own folder (logs appended), unless --output asks for another.
        let weightsFolder = FileSystem.parent(resumePath)
        let continued = output == nil && FileSystem.lastComponent(weightsFolder) == "weights" ? FileSystem.parent(weightsFolder) : nil
        try options.train(resuming: resumePath, in: continued)
    }

    /// Checks every option, then loads the data, builds the model and trains, in `runDirectory`
    /// (a resumed run's own folder) or in a new folder under --output.
    @discardableResult
    func train(resuming checkpoint: String?, in continuedDirectory: String?) throws -> TrainingSummary {
        let communicator = try distributed.communicator()
        guard communicator.size > 1 else { return try train(resuming: checkpoint, in: continuedDirectory, communicator: communicator) }
        do {
            return try train(resuming: checkpoint, in: continuedDirectory, communicator: communicator)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            // A failure on one process (its data, its disk) would leave the others waiting in the
            // next collective: say which rank failed, then end the job.
            FileHandle.standardError.write(Data("Error: rank \(communicator.rank) of \(communicator.size): \(error)\n".utf8))
            communicator.abort(code: 1)
        }
    }

    private func train(resuming checkpoint: String?, in continuedDirectory: String?, communicator: any Communicator) throws -> TrainingSummary {
        let config = makeConfig()
        let dev = try DeviceFlag.open(device, localRank: communicator.size > 1 ? DistributedOptions.localRank : 0)
        let gradientSums = "gradients " + (try GPUCollectives.attach(to: communicator, device: dev))
        if communicator.size > 1 {
            // One voice: rank 0 prints; the others' output would only repeat it (errors still
            // reach stderr from every rank).
            if !communicator.isLeader { _ = freopen("/dev/null", "w", stdout) }
            print("data-parallel: \(communicator.size) processes started by \(DistributedOptions.launcher) over \(communicator.backendName), "
                + "rank 0 writes the run; "
                + "each process trains on \(accumulate > 1 ? "\(accumulate) micro-batches" : "a batch") of \(batchSize) per step "
                + "(\(communicator.size * accumulate * batchSize) samples per step), "
                + (dev.isHostMemory ? "on \(device) with \(CPUBackend.threads) thread\(CPUBackend.threads == 1 ? "" : "s") each"
                                    : "each on the GPU of its local rank (rank 0 on \(dev)), \(gradientSums)")
                + (syncBatchNorm ? "; batch norm over all processes' batches (--sync-bn)" : ""))
        } else if syncBatchNorm {
            print("note: --sync-bn changes nothing in a run of one process (its batch is every process's batch)")
        }
        let isSDT: Bool = { if case .sdt = config.loss { return true } else { return false } }()
        if !isSDT && (config.l1 != 0 || config.l2 != 0) {
            // Reference-compatible, but easy to miss: say it.
            print("note: --l1/--l2 apply to SDT only (as in the reference); \(config.loss.methodName) ignores them")
        }
        DeviceFlag.applyPrecision(amp: config.amp, tf32: config.tf32 == true, on: dev)
        if config.tf32 == true { print("TF32: float32 convolutions may use TF32 tensor cores, as PyTorch's cuDNN default (no --tf32: float32 products)") }
        if let amp = config.amp {
            print("mixed precision: \(amp) operands for matrix products and convolutions, float32 elsewhere"
                  + (amp == "fp16" ? ", dynamic loss scaling" : "") + " (--amp 0: float32 throughout)")
        }
        // Everything that can be checked before the data is read: the topology (against the
        // data set's frame shape and classes), --weights, and where the run will write.
        let expected = expectedInput
        func loadWeights(into model: SpikingNetwork, quiet: Bool) throws {
            guard let weights else { return }
            do {
                let notes = try ReferenceWeights.load(weights, into: model)
                if !quiet { for note in notes { print("\(weights): \(note)") } }
            } catch {
                throw CLIError("--weights: \(error)")
            }
        }
        var model = try makeModel(config, shape: expected.shape, classes: expected.classes, device: dev)
        try loadWeights(into: model, quiet: false)
        let base = "\(output ?? "runs")/result"
        do {
            if let continuedDirectory { try FileSystem.checkWritable(continuedDirectory) } else { try FileSystem.checkCreatable(base) }
        } catch {
            throw CLIError(continuedDirectory == nil ? "--output: \(error)" : "--resume_path: the run's folder: \(error)")
        }
        let (train, test, inputShape) = try loadData(config)
        if inputShape != expected.shape || train.classes != model.classes {
            model = try makeModel(config, shape: inputShape, classes: train.classes, device: dev)
            try loadWeights(into: model, quiet: true)
        }
        if weights != nil { print("initial weights: \(weights!)") }
        var runDirectory = continuedDirectory ?? ""
        if continuedDirectory == nil && communicator.isLeader {
            do {
                runDirectory = try Trainer.freshRunDirectory(under: base, config: config)
            } catch {
                throw CLIError("--output: \(error)")
            }
        }
        // Rank 0 names the folder; the others only report it.
        runDirectory = try communicator.broadcast(string: runDirectory)
        let trainer = Trainer(config: config, model: model, train: train, test: test, runDirectory: runDirectory,
                              communicator: communicator)
        let reporter = ProgressReporter(logInterval: logInterval)
        trainer.observer = reporter
        trainer.environment = runEnvironment(device: dev)
        print("run directory: \(runDirectory)\(continuedDirectory != nil ? " (continued)" : "")")
        print("training \(config.modelName ?? config.topology) (\(model.parameterCount) parameters) with \(config.loss.methodName) on \(config.dataset): \(train.count) train / \(test.count) test samples, T=\(config.timesteps), \(config.epochs) epochs")
        let summary = try trainer.run(resume: checkpoint)
        if let stop = summary.stoppedAt {
            let cause = stop.reason == "max-steps" ? "stopped by --max-steps \(config.maxSteps ?? stop.globalStep)" : "interrupted by \(stop.reason)"
            print("\(cause) in epoch \(stop.epoch)/\(config.epochs) after step \(stop.step)/\(stop.stepsInEpoch) (\(stop.globalStep) steps in all); checkpoint: \(runDirectory)/weights/last")
            // Flags of this session that no checkpoint records (where the frames are cached).
            let session = cacheDir.map { " --cache-dir \(shellQuoted($0))" } ?? ""
            print("resume with: snn train --resume 1 --resume_path \(shellQuoted("\(runDirectory)/weights/last"))\(session)")
        }
        if summary.bestEpoch > 0 {
            print(String(format: "best test accuracy %@%.2f%% at epoch %d, final %.2f%%, %.1f samples/s, %.0f s",
                         summary.stoppedAt == nil ? "" : "so far ", summary.bestTestAccuracy * 100, summary.bestEpoch,
                         summary.finalTestAccuracy * 100, summary.samplesPerSecond, summary.wallSeconds))
        } else {
            print(String(format: "no test evaluation yet (the first epoch did not finish); %.1f samples/s, %.0f s",
                         summary.samplesPerSecond, summary.wallSeconds))
        }
        print("summary: \(runDirectory)/summary.json")
        switch summary.stoppedAt?.reason {
        case "SIGINT": throw ExitCode(128 + SIGINT)
        case "SIGTERM": throw ExitCode(128 + SIGTERM)
        default: return summary
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (what cluster schedulers send before a kill) asks the trainer to
/// save a resumable checkpoint after the current step; a second signal exits at once, with the
/// conventional status (128 + the signal: 130, 143).
func installInterruptHandler() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig) { sig in
            if Trainer.stopRequested { _exit(128 + sig) }
            Trainer.stopSignal = sig
            Trainer.stopRequested = true
        }
    }
    unblockStopSignals()
}

/// A launcher may start us with SIGINT and SIGTERM blocked (Foundation's `Process` does): `snn`
/// unblocks them on start, and code that handles them unblocks them again on its own thread,
/// where they are then delivered.
func unblockStopSignals() {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigprocmask(SIG_UNBLOCK, &set, nil)
}

/// A user-facing error printed as one line.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A progress bar with rate and ETA on a terminal. Otherwise (a log file) one line per epoch,
/// and a step line at the first step and then every `logInterval` seconds, so a redirected log
/// shows progress before the first epoch ends.
final class ProgressReporter: TrainingObserver {
    let isTerminal = isatty(STDOUT_FILENO) != 0
    let logInterval: Double
    /// The first step seen in the current epoch and when it ended: the ETA is the time per step
    /// since then (the first step also waits for the first batch, so it is not timed).
    private var firstStep: (epoch: Int, step: Int, time: Date)?
    private var lastLine: Date?

    init(logInterval: Double) { self.logInterval = logInterval }

    func stepFinished(epoch: Int, step: Int, stepsInEpoch: Int, loss: Double, samplesPerSecond: Double) {
        let now = Date()
        if firstStep?.epoch != epoch { firstStep = (epoch, step, now) }
        var eta = ""
        if let first = firstStep, step > first.step {
            eta = String(format: "  ETA %.0f s", now.timeIntervalSince(first.time) / Double(step - first.step) * Double(stepsInEpoch - step))
        }
        if isTerminal {
            let width = 30, done = width * step / max(stepsInEpoch, 1)
            let bar = String(repeating: "█", count: done) + String(repeating: "·", count: width - done)
            print(String(format: "\repoch %d [%@] %d/%d loss %.4f %.0f samples/s%@ ", epoch + 1, bar, step, stepsInEpoch,
                         loss, samplesPerSecond, eta), terminator: "")
        } else {
            if let last = lastLine, now.timeIntervalSince(last) < logInterval { return }
            guard step < stepsInEpoch else { return }  // the epoch line follows
            lastLine = now
            print(String(format: "epoch %d step %d/%d  loss %.4f  %.0f samples/s%@", epoch + 1, step, stepsInEpoch,
                         loss, samplesPerSecond, eta))
        }
        fflush(stdout)
    }

    func epochFinished(epoch: Int, epochs: Int, metrics: [(String, Double)]) {
        if isTerminal { print("\r\u{1B}[K", terminator: "") }
        let m = Dictionary(metrics, uniquingKeysWith: { a, _ in a })
        print(String(format: "epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  lr %.2e  %.0f samples/s",
                     epoch + 1, epochs, m["train_loss"] ?? 0, (m["train_acc"] ?? 0) * 100, m["test_loss"] ?? 0,
                     (m["test_acc"] ?? 0) * 100, m["lr"] ?? 0, m["samples_per_second"] ?? 0))
        lastLine = Date()
        fflush(stdout)
    }

    func note(_ text: String) {
        if isTerminal { print("\r\u{1B}[K", terminator: "") }
        print(text)
    }
}

/// Where a run ran: SwiftSNN's version, the device, library versions and the host.
func runEnvironment(device: Device) -> [String: String] {
    var env = CPUBackend.libraryVersions
    env["swiftsnn"] = SwiftSNNVersion.string
    env["device"] = device.description
    env["cores"] = String(ProcessInfo.processInfo.activeProcessorCount)
    env["host"] = ProcessInfo.processInfo.hostName
    return env
}

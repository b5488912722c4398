import Foundation
import SNNCPU
import SNNData
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
        var config = TrainingConfig(
            dataset: name.rawValue, topology: topologyText,
            modelName: NamedModel(rawValue: topologyText) != nil ? topologyText : (topology == nil && name == .synthetic ? "SyntheticVGG" : nil),
            timesteps: timesteps ?? name.defaultTimesteps, epochs: epochs ?? (name == .synthetic ? 8 : 300), batchSize: batchSize, learningRate: lr,
            optimizer: Optimizer.Kind(rawValue: optimizer) ?? .adam, scheduler: scheduler == 1, weightDecay: weightDecay,
            l1: losses.l1, l2: losses.l2, loss: losses.loss(trtDefault: 1), neuron: network.neuron, dropout: network.dropout,
            batchNorm: network.norm == "tdBN", kaimingInit: network.initFlag == 1,
            seed: seed, device: device, maxSteps: maxSteps, clipGradNorm: clipGradNorm,
            checkpointEpochs: checkpointEpochs.split(separator: "-").compactMap { Int($0) }, saveCheckpoints: saveCheckpoint == 1)
        config.dataOptions = dataOptions.recorded(for: name)
        return config
    }

    var dataOptions: DataOptions {
        DataOptions(augment: augment == 1, skipCorrupt: skipCorrupt, dvsFrames: EventFolderDataset.DVSFrames(rawValue: dvsFrames) ?? .standard,
                    classes: classes, frameSize: frameSize, syntheticSamples: syntheticSamples)
    }

    /// The training and test sets the flags select, and one sample's shape.
    func loadData(_ config: TrainingConfig) throws -> (any LabelledDataset, any LabelledDataset, [Int]) {
        let data: LoadedData
        do {
            data = try datasetName.load(from: dataDir ?? "", timesteps: config.timesteps, seed: seed, options: dataOptions)
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("--data-dir: \(error)")
        }
        if !data.skipped.isEmpty { print("skipped \(data.skipped.count) unreadable file(s), e.g. \(data.skipped[0])") }
        return (data.train, data.test, data.inputShape)
    }

    func runTraining() throws {
        // First, so a Ctrl-C while data loads still ends in a clean, resumable stop.
        installInterruptHandler()
        let config = makeConfig()
        let isSDT: Bool = { if case .sdt = config.loss { return true } else { return false } }()
        if !isSDT && (config.l1 != 0 || config.l2 != 0) {
            // Reference-compatible, but easy to miss: say it.
            print("note: --l1/--l2 apply to SDT only (as in the reference); \(config.loss.methodName) ignores them")
        }
        let dev = Device(device) ?? .cpu
        let (train, test, inputShape) = try loadData(config)
        let classes = train.classes
        let modelConfig = ModelConfig(timesteps: config.timesteps, inputShape: inputShape,
                                      dropout: network.dropout, batchNorm: config.batchNorm, kaimingInit: config.kaimingInit, neuron: config.neuron)
        let model: SpikingNetwork
        do {
            model = try SpikingNetwork(config.topology, classes: classes, config: modelConfig,
                                       generator: RandomGenerator(seed: seed), device: dev)
        } catch {
            throw CLIError("--topology: \(error)")
        }
        guard model.classes == classes else {
            throw CLIError("--topology: the readout has \(model.classes) outputs but the data set has \(classes) classes")
        }
        if let weights {
            do {
                for note in try ReferenceWeights.load(weights, into: model) { print("\(weights): \(note)") }
            } catch {
                throw CLIError("--weights: \(error)")
            }
            print("initial weights: \(weights)")
        }
        let runDirectory: String
        do {
            runDirectory = try Trainer.freshRunDirectory(under: "\(output)/result", config: config)
        } catch let error as TrainingError {
            throw CLIError("--output: \(error)")
        } catch {
            throw CLIError("--output \(output): cannot create \(output)/result: \((error as NSError).localizedFailureReason ?? "\(error)")")
        }
        let trainer = Trainer(config: config, model: model, train: train, test: test, runDirectory: runDirectory)
        let reporter = ProgressReporter()
        trainer.observer = reporter
        trainer.environment = runEnvironment(device: dev)
        print("run directory: \(runDirectory)")
        print("training \(config.modelName ?? config.topology) (\(model.parameterCount) parameters) with \(config.loss.methodName) on \(config.dataset): \(train.count) train / \(test.count) test samples, T=\(config.timesteps), \(config.epochs) epochs")
        let summary = try trainer.run(resume: resume == 1 ? resumePath : nil)
        if summary.interrupted {
            print("interrupted: resumable checkpoint at \(runDirectory)/weights/last (snn train --resume 1 --resume_path \(runDirectory)/weights/last ...)")
        }
        print(String(format: "best test accuracy %.2f%% at epoch %d, final %.2f%%, %.1f samples/s, %.0f s",
                     summary.bestTestAccuracy * 100, summary.bestEpoch, summary.finalTestAccuracy * 100,
                     summary.samplesPerSecond, summary.wallSeconds))
        print("summary: \(runDirectory)/summary.json")
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (what cluster schedulers send before a kill) asks the trainer to
/// save a resumable checkpoint after the current step; a second signal exits at once.
func installInterruptHandler() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig) { _ in
            if Trainer.stopRequested { _exit(130) }
            Trainer.stopRequested = true
        }
    }
    // A launcher may start us with these signals blocked; we handle them, so take them.
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

/// A progress bar with rate and ETA on a terminal; one line per epoch otherwise.
final class ProgressReporter: TrainingObserver {
    let isTerminal = isatty(STDOUT_FILENO) != 0
    private var epochStart = Date()

    func stepFinished(epoch: Int, step: Int, stepsInEpoch: Int, loss: Double, samplesPerSecond: Double) {
        if step == 1 { epochStart = Date() }
        guard isTerminal else { return }
        let width = 30, done = width * step / max(stepsInEpoch, 1)
        let elapsed = Date().timeIntervalSince(epochStart)
        let eta = elapsed / Double(step) * Double(stepsInEpoch - step)
        let bar = String(repeating: "█", count: done) + String(repeating: "·", count: width - done)
        print(String(format: "\repoch %d [%@] %d/%d loss %.4f %.0f samples/s ETA %.0fs ", epoch + 1, bar, step, stepsInEpoch,
                     loss, samplesPerSecond, eta), terminator: "")
        fflush(stdout)
    }

    func epochFinished(epoch: Int, epochs: Int, metrics: [(String, Double)]) {
        if isTerminal { print("\r\u{1B}[K", terminator: "") }
        let m = Dictionary(metrics, uniquingKeysWith: { a, _ in a })
        print(String(format: "epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  lr %.2e  %.0f samples/s",
                     epoch + 1, epochs, m["train_loss"] ?? 0, (m["train_acc"] ?? 0) * 100, m["test_loss"] ?? 0,
                     (m["test_acc"] ?? 0) * 100, m["lr"] ?? 0, m["samples_per_second"] ?? 0))
        fflush(stdout)
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

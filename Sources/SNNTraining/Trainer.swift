import Foundation
import SNNAnalysis
import SNNData
import SNNDistributed
import SNNLayers
import SNNModels
import SNNSpiking
import SNNTensor

/// Where a run stopped before its last epoch ended, and why.
public struct StopPoint: Codable, Sendable {
    /// `SIGINT`, `SIGTERM` or `max-steps`.
    public var reason: String
    /// The epoch in progress (1-based, as printed).
    public var epoch: Int
    /// Steps done in that epoch, of `stepsInEpoch`.
    public var step: Int
    public var stepsInEpoch: Int
    /// Optimisation steps since the run began.
    public var globalStep: Int

    enum CodingKeys: String, CodingKey {
        case reason, epoch, step, stepsInEpoch = "steps_in_epoch", globalStep = "global_step"
    }
}

/// What a finished (or interrupted) run reports; written as `summary.json`.
public struct TrainingSummary: Codable {
    public var bestTestAccuracy: Double
    /// The epoch (1-based, as printed) whose test accuracy was best; 0 before the first evaluation.
    public var bestEpoch: Int
    public var finalTestAccuracy: Double
    public var epochs: Int
    public var wallSeconds: Double
    public var samplesPerSecond: Double
    public var interrupted: Bool
    /// Where an interrupted run (a signal, `--max-steps`) stopped, or `nil`.
    public var stoppedAt: StopPoint?
    /// Why the run stopped early with an error (a non-finite loss, a full disk), or `nil`.
    public var stoppedBy: String?
    /// The checkpoint a resume would continue from (`weights/last` or `weights/best`), or `nil`
    /// when none was written.
    public var checkpoint: String?
    public var runDirectory: String
    public var config: TrainingConfig
    /// Seed, device, library versions and the like (see ``Trainer/environment``).
    public var environment: [String: String]

    enum CodingKeys: String, CodingKey {
        case bestTestAccuracy = "best_test_accuracy", bestEpoch = "best_epoch", finalTestAccuracy = "final_test_accuracy"
        case epochs, wallSeconds = "wall_seconds", samplesPerSecond = "samples_per_second", interrupted
        case stoppedAt = "stopped_at", stoppedBy = "stopped_by", checkpoint
        case runDirectory = "run_directory", config, environment
    }
}

/// A run that cannot go on: a non-finite loss, for one.
public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Receives progress; the CLI draws a bar on a terminal or prints a line per epoch.
public protocol TrainingObserver: AnyObject {
    func stepFinished(epoch: Int, step: Int, stepsInEpoch: Int, loss: Double, samplesPerSecond: Double)
    func epochFinished(epoch: Int, epochs: Int, metrics: [(String, Double)])
    /// Something the user should know that is not progress (log rows dropped on resume).
    func note(_ text: String)
}

extension TrainingObserver {
    public func note(_ text: String) {}
}

/// Epochs of training with a test evaluation after each, metrics, checkpoints and resume.
public final class Trainer {
    public let config: TrainingConfig
    public let model: SpikingNetwork
    public let optimizer: Optimizer
    let schedule: CosineSchedule
    let trainSet: any LabelledDataset, testSet: any LabelledDataset
    public let runDirectory: String
    public weak var observer: TrainingObserver?
    private let parameters: [(key: String, value: Tensor)]
    private let spikingLayers: [(key: String, value: LIF)]
    private let dropoutLayers: [Dropout]
    /// Where the model lives; batches are moved there.
    private let device: Device
    /// Every parameter's gradient after ``computeGradients(_:)``: one flat buffer in parameter
    /// order (``parameterNames``), with a view per parameter and buckets for an all-reduce.
    public let gradients: GradientBuffer
    /// Dynamic loss scaling, with `--amp fp16` (float16 operands would lose small gradients).
    public let lossScaler: LossScaler?
    /// The parameters' names in the order of ``gradients``.
    public var parameterNames: [String] { parameters.map(\.key) }
    /// Every parameter, in the order of ``gradients``: the model's parameters are views into it,
    /// so the optimiser updates them all in one pass over flat buffers.
    public let flatParameters: Tensor
    /// What the run's records should say about where it ran (versions, device, commit).
    public var environment: [String: String] = [:]
    /// The processes training together: each computes the gradients of its share of every
    /// step's micro-batches; the sum is all-reduced before the optimiser step. Rank 0 alone
    /// writes logs and checkpoints.
    public let communicator: any Communicator
    /// Seconds spent in the gradient all-reduce (waiting for the slowest process included).
    public var allReduceSeconds = 0.0
    /// Micro-batches of `batchSize` each process computes per optimisation step.
    public var accumulate: Int { max(config.accumulate ?? 1, 1) }

    /// Set from a signal handler: the trainer saves a resumable checkpoint after the current
    /// step and stops.
    nonisolated(unsafe) public static var stopRequested = false
    /// The signal that set ``stopRequested`` (`SIGINT`, `SIGTERM`), or 0.
    nonisolated(unsafe) public static var stopSignal: Int32 = 0

    public init(config: TrainingConfig, model: SpikingNetwork, train: any LabelledDataset, test: any LabelledDataset, runDirectory: String,
                communicator: any Communicator = SingleProcess()) {
        self.config = config
        self.communicator = communicator
        self.model = model
        optimizer = Optimizer(config.optimizer, learningRate: config.learningRate, weightDecay: config.weightDecay)
        schedule = CosineSchedule(baseRate: config.learningRate, epochs: config.epochs, enabled: config.scheduler)
        (trainSet, testSet, self.runDirectory) = (train, test, runDirectory)
        // Firing rates are logged per step and per evaluation: one mean per spiking layer.
        // The module tree is fixed once built: walk it (by reflection) once, not every step.
        parameters = model.namedParameters()
        spikingLayers = model.spikingLayers
        dropoutLayers = model.namedModules().compactMap { $0.value as? Dropout }
        device = parameters.first?.value.device ?? .cpu
        flatParameters = Tensor.flattenParameters(parameters.map(\.value))
        lossScaler = config.amp == "fp16" ? LossScaler() : nil
        gradients = GradientBuffer(parameters: parameters.map(\.value))
        for (_, l) in spikingLayers { l.recordsFiringRate = true }
    }

    /// The run directory name the reference uses: `TRT(CE)_T6_triangle_tdBN_ResNet-19_<time>`.
    /// Creates `base/runName`, or with `-2`, `-3`, ... appended when a run started in the same
    /// second with the same settings already owns that folder (its logs must not be mixed with
    /// ours). Each name is claimed with one `mkdir`, which fails when the folder exists, so two
    /// runs starting together never share one.
    public static func freshRunDirectory(under base: String, config: TrainingConfig, date: Date = Date()) throws -> String {
        try FileSystem.makeDirectory(base)
        let first = "\(base)/\(runName(config, date: date))"
        var (path, n) = (first, 2)
        while mkdir(path, 0o755) != 0 {
            guard errno == EEXIST else {
                throw TrainingError(message: "cannot create the run directory \(path): \(String(cString: strerror(errno)))")
            }
            path = "\(first)-\(n)"
            n += 1
        }
        return path
    }

    public static func runName(_ c: TrainingConfig, date: Date = Date()) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd_HH-mm-ss"
        let criterion: String
        switch c.loss {
        case .sdt(let crit): criterion = crit.rawValue
        case .tet: criterion = "TET"
        case .trt: criterion = "TRT(CE)"
        }
        let norm = c.batchNorm && c.topology.contains("CONV") ? "tdBN_" : ""
        return "\(criterion)_T\(c.timesteps)_\(c.neuron.surrogate.kind)_\(norm)\(c.modelName ?? c.topology)_\(f.string(from: date))"
    }

    /// Trains from scratch or from `resume` (a checkpoint path without extension or with
    /// `.json`/`.safetensors`) and returns the summary. A resumed run in the same run directory
    /// appends to its logs, after dropping rows logged past the checkpoint (work being redone).
    public func run(resume: String? = nil) throws -> TrainingSummary {
        let start = Date()
        var state = CheckpointState(epoch: 0, stepInEpoch: 0, globalStep: 0, optimizerSteps: 0, learningRate: config.learningRate,
                                    bestAccuracy: -1, bestEpoch: 0, bestLoss: .infinity, partialLossSum: 0, partialCorrect: 0,
                                    partialSeen: 0, dropoutCounters: [], config: config)
        if let resume {
            state = try Checkpoint.load(resume, model: model, optimizer: optimizer)
            if let scale = state.lossScale { lossScaler?.scale = scale }
            // The run's configuration from now on (a resume may change --epochs, --workers, ...).
            state.config = config
            for (d, c) in zip(dropoutLayers, state.dropoutCounters) { d.generator.seek(to: c) }
        }
        let leader = communicator.isLeader
        let (world, rank) = (communicator.size, communicator.rank)
        if state.stepInEpoch > 0, (state.worldSize ?? 1) * (state.accumulate ?? 1) != world * accumulate {
            throw TrainingError(message: "the checkpoint was written in the middle of epoch \(state.epoch + 1) (step \(state.stepInEpoch)) by "
                + "\(state.worldSize ?? 1) process(es) × \(state.accumulate ?? 1) micro-batch(es) per step; \(world) × \(accumulate) would map "
                + "its steps to other samples: resume with \(state.worldSize ?? 1) process(es) and --accumulate \(state.accumulate ?? 1), "
                + "or from a checkpoint written at the end of an epoch (weights/best, weights/epoch<N>)")
        }
        // Every rank starts from rank 0's weights and statistics.
        try synchronizeModel()
        let log = leader ? try MetricsLog(directory: runDirectory) : nil
        if resume != nil, let log {
            let dropped = try log.rewind(steps: state.globalStep, epochs: state.epoch)
            if dropped > 0 { observer?.note("dropped \(dropped) log row(s) written after the checkpoint (that work is redone)") }
        }
        // Times and counts of earlier sessions of this run (a resumed run reports the whole run).
        let (earlierWall, earlierTrainSeconds, earlierSamples) = (state.wallSeconds ?? 0, state.trainSeconds ?? 0, state.trainedSamples ?? 0)
        var finalAccuracy = 0.0
        var trainedSamples = 0
        var trainSeconds = 0.0
        var stopPoint: StopPoint?
        checkpoint = resume
        var stoppedBy: Error?
        /// Brings the run's totals into `state` before it is saved.
        func totals(_ s: inout CheckpointState) {
            s.wallSeconds = earlierWall + Date().timeIntervalSince(start)
            (s.trainSeconds, s.trainedSamples) = (earlierTrainSeconds + trainSeconds, earlierSamples + trainedSamples)
            (s.worldSize, s.accumulate) = (world > 1 ? world : nil, accumulate > 1 ? accumulate : nil)
        }
        do {
            epochs: while state.epoch < config.epochs {
                let epoch = state.epoch
                optimizer.learningRate = schedule.rate(epoch: epoch)
                model.train()
                // Micro-batches of the epoch's permutation; step s takes `group` of them in order,
                // rank r the ones at s·group + r·K + j for j < K (all K on one process).
                let batches = trainSet.batchIndices(epoch: epoch, batchSize: config.batchSize, shuffle: true, seed: config.seed,
                                                    dropLast: config.dropLast)
                let group = world * accumulate
                let steps = (batches.count + group - 1) / group
                func mine(_ s: Int) -> [Int] { (0..<accumulate).map { s * group + rank * accumulate + $0 }.filter { $0 < batches.count } }
                func stepSamples(_ s: Int) -> Int { (s * group..<min((s + 1) * group, batches.count)).reduce(0) { $0 + batches[$1].count } }
                // Whether every process has one batch of the same size this step (every process
                // knows every batch, so all decide alike): then the gradient buckets are summed
                // while the backward pass goes on, and scaled by 1/W after.
                func evenStep(_ s: Int) -> Bool {
                    let ids = s * group..<min((s + 1) * group, batches.count)
                    return accumulate == 1 && ids.count == group && Set(ids.map { batches[$0].count }).count == 1
                }
                var (lossSum, correct, seen) = (state.partialLossSum, state.partialCorrect, state.partialSeen)
                let first = min(state.stepInEpoch, steps)
                let prefetcher = BatchPrefetcher(dataset: trainSet, batches: (first..<steps).flatMap { mine($0).map { batches[$0] } },
                                                 epoch: epoch, workers: config.workers)
                for i in first..<steps {
                    if let max = config.maxSteps, state.globalStep >= max {
                        stopPoint = StopPoint(reason: "max-steps", epoch: epoch + 1, step: i, stepsInEpoch: steps,
                                              globalStep: state.globalStep)
                        (state.partialLossSum, state.partialCorrect, state.partialSeen) = (lossSum, correct, seen)
                        break epochs
                    }
                    var micro: [Batch] = []
                    for _ in mine(i) {
                        guard let batch = try prefetcher.next() else { break }
                        micro.append(batch)
                    }
                    let t0 = Date()
                    let result = try step(micro, samples: stepSamples(i), overlap: world > 1 && evenStep(i))
                    let dt = Date().timeIntervalSince(t0)
                    trainSeconds += dt
                    trainedSamples += result.seen
                    (lossSum, correct, seen) = (lossSum + result.lossSum, correct + result.correct, seen + result.seen)
                    let loss = result.lossSum / Double(max(result.seen, 1))
                    state.globalStep += 1
                    state.stepInEpoch = i + 1
                    let rates = spikingLayers.map { ("firing_rate/\($0.key)", $0.value.lastFiringRate ?? 0) }
                    log?.record(kind: "step", step: state.globalStep, [("train_loss", loss), ("lr", optimizer.learningRate),
                                                                        ("samples_per_second", Double(result.seen) / dt)] + rates)
                    if let failure = log?.failure { throw failure }
                    if leader {
                        observer?.stepFinished(epoch: epoch, step: i + 1, stepsInEpoch: steps, loss: loss,
                                               samplesPerSecond: Double(result.seen) / dt)
                    }
                    // Processes agree on stopping through the next step's all-reduce; alone, at once.
                    if result.stop || (world == 1 && Trainer.stopRequested) {
                        (state.partialLossSum, state.partialCorrect, state.partialSeen) = (lossSum, correct, seen)
                        let signal = Trainer.stopSignal == SIGTERM ? "SIGTERM" : "SIGINT"
                        stopPoint = StopPoint(reason: signal, epoch: epoch + 1, step: i + 1, stepsInEpoch: steps,
                                              globalStep: state.globalStep)
                        break epochs
                    }
                }
                let (testLoss, testAccuracy, rates) = try evaluate()
                finalAccuracy = testAccuracy
                // The epoch is complete: from here on `state` describes the weights after it.
                state.epoch += 1
                (state.stepInEpoch, state.partialLossSum, state.partialCorrect, state.partialSeen) = (0, 0, 0, 0)
                let improved = testAccuracy > state.bestAccuracy || (testAccuracy == state.bestAccuracy && testLoss < state.bestLoss)
                if improved { (state.bestAccuracy, state.bestEpoch, state.bestLoss) = (testAccuracy, state.epoch, testLoss) }
                let runSamples = earlierSamples + trainedSamples, runSeconds = earlierTrainSeconds + trainSeconds
                var metrics: [(String, Double)] = [("train_loss", lossSum / Double(max(seen, 1))),
                                                   ("train_acc", Double(correct) / Double(max(seen, 1))),
                                                   ("test_loss", testLoss), ("test_acc", testAccuracy), ("lr", optimizer.learningRate),
                                                   ("samples_per_second", runSeconds > 0 ? Double(runSamples) / runSeconds : 0)]
                metrics += rates.map { ("firing_rate/\($0.0)", $0.1) }
                let measureFisher = config.fisherEpochs?.contains(state.epoch) == true, measureCentroid = config.observeCentroid == true
                if leader && (measureFisher || measureCentroid) {
                    // On this epoch's training batches, as the reference measures it (rank 0 alone).
                    let fi = try FisherInformation.estimate(model: model, data: trainSet, batchIndices: batches, epoch: epoch, estimator: .reference)
                    if measureCentroid { metrics.append(("information_centroid", fi.centroid)) }
                    if measureFisher {
                        log?.recordFisher(epoch: state.epoch, perTimestep: fi.perTimestep, centroid: fi.centroid, estimator: fi.estimator.rawValue)
                    }
                }
                log?.record(kind: "epoch", step: state.epoch, metrics)
                log?.flush()
                if let failure = log?.failure { throw failure }
                if leader { observer?.epochFinished(epoch: epoch, epochs: config.epochs, metrics: metrics) }
                state.optimizerSteps = optimizer.steps
                totals(&state)
                if improved { try save(state, name: "best") }
                try save(state, name: "last")
                if config.saveCheckpoints && config.checkpointEpochs.contains(state.epoch) { try save(state, name: "epoch\(state.epoch)") }
            }
            state.optimizerSteps = optimizer.steps
            totals(&state)
            if stopPoint != nil { try save(state, name: "last") }
        } catch {
            stoppedBy = error
        }
        totals(&state)
        let summary = TrainingSummary(bestTestAccuracy: max(state.bestAccuracy, 0), bestEpoch: state.bestEpoch,
                                      finalTestAccuracy: finalAccuracy, epochs: state.epoch,
                                      wallSeconds: state.wallSeconds ?? 0,
                                      samplesPerSecond: (state.trainSeconds ?? 0) > 0 ? Double(state.trainedSamples ?? 0) / state.trainSeconds! : 0,
                                      interrupted: stopPoint != nil, stoppedAt: stopPoint, stoppedBy: stoppedBy.map { "\($0)" },
                                      checkpoint: checkpoint, runDirectory: runDirectory, config: config, environment: environment)
        do {
            if leader { try AtomicFile.write(try Checkpoint.encoder.encode(summary), to: runDirectory + "/summary.json") }
        } catch where stoppedBy != nil {
            // The first failure is the one to report (a full disk fails this write too).
        }
        if let stoppedBy { throw stoppedBy }
        return summary
    }

    /// The checkpoint a resume would continue from: the last one written (or resumed from).
    public private(set) var checkpoint: String?

    /// What is left to resume from, for messages.
    private var checkpointNote: String {
        checkpoint.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written"
    }

    private func save(_ state: CheckpointState, name: String) throws {
        guard communicator.isLeader else { return }
        // A checkpoint with NaN or infinite weights resumes into nothing: refuse to write one.
        let nonFinite = withoutGradients {
            model.stateDict().sorted { $0.key < $1.key }.first { $0.value.dtype.isFloatingPoint && ($0.value * 0).sum().item() != 0 }
        }
        if let (key, _) = nonFinite {
            throw TrainingError(message: "\(key) holds NaN or infinite values; not saving weights/\(name) (\(checkpointNote))")
        }
        var s = state
        s.dropoutCounters = dropoutLayers.map(\.generator.counter)
        s.learningRate = optimizer.learningRate
        s.optimizerSteps = optimizer.steps
        s.lossScale = lossScaler?.scale
        let path = "\(runDirectory)/weights/\(name)"
        try Checkpoint.save(s, model: model, optimizer: optimizer, to: path)
        if name == "last" || checkpoint == nil { checkpoint = path }
    }

    /// One optimisation step on one batch in one process; returns the loss and the number of
    /// correct predictions.
    public func step(_ batch: Batch) throws -> (Double, Int) {
        let r = try step([batch], samples: batch.count)
        return (r.lossSum / Double(max(r.seen, 1)), r.correct)
    }

    /// What one optimisation step did, summed over every process.
    public struct StepResult {
        public var lossSum: Double, correct: Int, seen: Int
        /// A process was asked to stop (a signal): every process stops after this step.
        public var stop: Bool
    }

    /// One optimisation step over this process's micro-batches of a step of `samples` samples
    /// in all processes: the gradient is Σ (nᵢ/samples)·gᵢ over every micro-batch i of every
    /// process (each gᵢ the gradient of its batch's mean loss), so W processes with K
    /// micro-batches each take the step one process takes with W·K; with equal batches the
    /// weights are bitwise the same for W·K = 2 (a sum of two numbers does not depend on order).
    ///
    /// With `overlap` (every process has one batch of the same size), each bucket of gradients
    /// is summed over the processes as soon as the backward pass completes it, while the pass
    /// goes on, and the sum is scaled by 1/W after: `(g₀ + g₁)/2` is bitwise `g₀/2 + g₁/2`.
    public func step(_ micro: [Batch], samples: Int, overlap: Bool = false) throws -> StepResult {
        var (lossSum, correct, seen, finite) = (0.0, 0, 0, true)
        var accumulated: Tensor?
        var pending: [any PendingCollective] = []
        var startError: Error?
        // Buckets are summed from host memory as the backward pass finishes them; a GPU's
        // gradients are summed all at once after it, through one host copy.
        let overlapping = overlap && micro.count == 1 && communicator.size > 1 && gradients.flat.device.isHostMemory
        if overlapping {
            gradients.onBucketReady = { [unowned self] b in
                guard startError == nil else { return }
                let range = gradients.buckets[b]
                let first = gradients.views[range.lowerBound]
                let count = range.reduce(0) { $0 + gradients.views[$1].count }
                do {
                    for p in pending { p.progress() }
                    pending.append(try communicator.startAllReduceSum(UnsafeMutableBufferPointer(start: first.pointer(as: Float.self), count: count)))
                } catch {
                    startError = error
                }
            }
        }
        defer { if overlapping { gradients.onBucketReady = nil } }
        for batch in micro {
            let (value, predictions) = synchronizingBatchNorm { computeGradients(batch) }
            finite = finite && value.isFinite
            // The batch's weight in the step, and the loss scale undone in the same pass.
            let factor = Double(batch.count) / Double(max(samples, 1)) / (lossScaler?.scale ?? 1)
            withoutGradients {
                let g = gradients.flat
                if overlapping {
                    // Scaled after the sum (below).
                } else if micro.count == 1 {
                    if factor != 1 { g.assign(g * factor) }
                } else {
                    accumulated = accumulated.map { $0 + g * factor } ?? g * factor
                }
            }
            let truth = batch.labels.toDoubles().map { Int($0) }
            (lossSum, correct, seen) = (lossSum + value * Double(batch.count), correct + zip(predictions, truth).filter { $0 == $1 }.count,
                                        seen + batch.count)
        }
        withoutGradients {
            if let accumulated { gradients.flat.assign(accumulated) }
            if micro.isEmpty { gradients.flat.assign(Tensor.zeros(gradients.flat.shape, device: gradients.flat.device)) }
        }
        var totals = [lossSum, Double(correct), Double(seen), finite ? 0 : 1, Trainer.stopRequested ? 1 : 0]
        if communicator.size > 1 {
            Profiler.phase = "all-reduce"
            let start = DispatchTime.now().uptimeNanoseconds
            if overlapping {
                if let startError { throw startError }  // the CLI ends the job (MPI_Abort) on any error
                for p in pending { try p.wait() }
                let factor = 1 / Double(communicator.size) / (lossScaler?.scale ?? 1)
                withoutGradients { gradients.flat.assign(gradients.flat * factor) }
            } else {
                try communicator.allReduceSum(gradients.flat)
                // A GPU's collective (NCCL) is only queued: a profile waits for it, to time it here.
                if Profiler.isEnabled { try gradients.flat.device.backend.synchronize() }
            }
            totals = try communicator.allReduceSum(totals)
            allReduceSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            Profiler.phase = "rest"
        }
        guard totals[3] == 0 else {
            throw TrainingError(message: "the loss became \(finite ? "non-finite on another process" : "\(lossSum / Double(max(seen, 1)))"); stopping (\(checkpointNote))")
        }
        if let lossScaler {
            // The gradients (unscaled above, with each batch's weight): a step whose gradients overflowed is skipped.
            let finiteGradients = withoutGradients { gradients.flat.abs().max().item().isFinite }
            guard lossScaler.update(finite: finiteGradients) else {
                return StepResult(lossSum: totals[0], correct: Int(totals[1]), seen: Int(totals[2]), stop: totals[4] > 0)
            }
        }
        applyGradients()
        return StepResult(lossSum: totals[0], correct: Int(totals[1]), seen: Int(totals[2]), stop: totals[4] > 0)
    }

    /// Runs `body` with batch norm's statistics summed over every process (`--sync-bn`) when
    /// the run asks for it and has several processes; a failed sum ends the job, naming the rank
    /// (an op cannot throw, and the other processes would wait for this one).
    private func synchronizingBatchNorm<R>(_ body: () -> R) -> R {
        guard config.syncBatchNorm == true, communicator.size > 1 else { return body() }
        nonisolated(unsafe) let communicator = self.communicator
        // Tensors on a GPU are summed there (NCCL, on the stream) when the communicator can.
        CrossProcessBatchNorm.group = .init(rank: communicator.rank, size: communicator.size) { tensor in
            do {
                try communicator.allReduceSum(tensor)
            } catch {
                FileHandle.standardError.write(Data("Error: rank \(communicator.rank) of \(communicator.size): --sync-bn: \(error)\n".utf8))
                communicator.abort(code: 1)
            }
        }
        defer { CrossProcessBatchNorm.group = nil }
        return body()
    }

    /// Copies rank 0's parameters and batch-norm statistics to every other process.
    func synchronizeModel() throws {
        guard communicator.size > 1 else { return }
        try communicator.broadcast(flatParameters)
        try synchronizeBuffers()
    }

    /// Rank 0's batch-norm statistics to every process (as PyTorch's DDP does before each
    /// forward pass), so every process evaluates the same network.
    func synchronizeBuffers() throws {
        guard communicator.size > 1 else { return }
        for (_, b) in model.namedBuffers() where b.value.isContiguous { try communicator.broadcast(b.value) }
    }

    /// The forward and backward pass of one batch: returns the loss and the predicted classes,
    /// and leaves every parameter's gradient in ``gradients`` (flat, in parameter order). The
    /// tape is gone when this returns: every node's saved tensors were freed as its rule ran, so
    /// the optimiser step runs with activations already released.
    public func computeGradients(_ batch: Batch) -> (loss: Double, predictions: [Int]) {
        let params = parameters
        let previous = params.map(\.value.requiresGrad)
        for (_, p) in params { p.requiresGrad = true }
        defer { for ((_, p), r) in zip(params, previous) { p.requiresGrad = r } }
        let labels = batch.labels.to(device)
        Profiler.phase = "forward"
        let out = model(batch.inputs.to(device))
        let timeMean = withoutGradients { out.detached().mean(axes: [0]) }
        Profiler.phase = "loss"
        let loss = config.loss.total(out, labels: labels, parameters: params, l1: config.l1, l2: config.l2)
        Profiler.phase = "backward"
        if let lossScaler { (loss * lossScaler.scale).backward(into: gradients) } else { loss.backward(into: gradients) }
        Profiler.phase = "rest"
        // The loss and the outputs in one read: on a GPU the step's one wait.
        let read = withoutGradients { Tensor.read([loss.detached(), timeMean]) }
        return (read[0][0], Tensor.argmaxRows(read[1], columns: timeMean.shape[1]))
    }

    /// Clips (with `--clip-grad-norm`) the gradients left by ``computeGradients(_:)`` and
    /// applies them with the optimiser.
    public func applyGradients() {
        Profiler.phase = "optimizer"
        defer { Profiler.phase = "rest" }
        if let maxNorm = config.clipGradNorm { clipGradients(gradients, maxNorm: maxNorm) }
        optimizer.step(flat: flatParameters, gradients: gradients.flat, named: parameters)
    }

    /// Test loss (criterion on the time-mean output), accuracy and firing rate per spiking layer.
    /// With several processes, each evaluates every W-th batch with rank 0's batch-norm
    /// statistics and the sums are all-reduced.
    public func evaluate() throws -> (loss: Double, accuracy: Double, firingRates: [(String, Double)]) {
        try synchronizeBuffers()
        model.eval()
        defer { model.train() }
        let lifs = spikingLayers
        var rates = [Double](repeating: 0, count: lifs.count)
        var (lossSum, correct, seen) = (0.0, 0, 0)
        let criterion = config.loss.evaluationCriterion
        try withoutGradients {
            let all = testSet.batchIndices(epoch: 0, batchSize: config.batchSize, shuffle: false, seed: 0)
            // Each batch's mean loss, correct count and firing rates stay on the device, read
            // once at the end: on a GPU the batches queue one after another without a wait.
            var results: [[Tensor]] = [], sizes: [Int] = []
            var classIndices: Tensor?
            for indices in all.enumerated().filter({ $0.offset % communicator.size == communicator.rank }).map(\.element) {
                let batch = try testSet.batch(indices, epoch: 0)
                let mean = model(batch.inputs.to(device)).mean(axes: [0])
                let labels = batch.labels.to(device)
                let order = classIndices ?? Tensor.argmaxIndices(mean.shape[1], dtype: mean.dtype, device: mean.device)
                classIndices = order
                let values = [criterion(mean, labels), mean.argmaxMatches(labels, indices: order)]
                    + lifs.map { $0.value.lastSpikeMean ?? Tensor.zeros([], device: device) }
                results.append(values)
                sizes.append(batch.count)
            }
            let read = Tensor.read(results.flatMap { $0 }).map { $0[0] }
            for (b, size) in sizes.enumerated() {
                let row = read[(b * (lifs.count + 2))...]
                lossSum += row[row.startIndex] * Double(size)
                correct += Int(row[row.startIndex + 1])
                seen += size
                for j in lifs.indices { rates[j] += row[row.startIndex + 2 + j] * Double(size) }
            }
        }
        if communicator.size > 1 {
            let sums = try communicator.allReduceSum([lossSum, Double(correct), Double(seen)] + rates)
            (lossSum, correct, seen) = (sums[0], Int(sums[1]), Int(sums[2]))
            rates = Array(sums[3...])
        }
        let n = Double(max(seen, 1))
        return (lossSum / n, Double(correct) / n, zip(lifs.map(\.key), rates.map { $0 / n }).map { ($0, $1) })
    }
}

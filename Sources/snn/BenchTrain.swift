import ArgumentParser
import Foundation
import SNNCUDA
import SNNData
import SNNModels
import SNNTensor
import SNNTraining

/// `snn bench train`: the speed of full training steps (forward, TRT loss, backward, Adam).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time full TRT training steps on synthetic inputs of a data set's shape.",
        discussion: "Reports the median samples/s over --steps timed steps after --warmup steps, the peak resident memory and the peak bytes held by tensors, and where a step's time goes: each convolution direction, batch norm, the neuron, pooling, the loss, the TRT regulariser, the optimiser, oneDNN's layout reorders, other ops and the rest.")

    @Option(name: .customLong("topology"), help: "A named model or a topology string.")
    var topology: String = "VGGSNN"
    @Option(name: .customLong("dataset"), help: "CIFAR10, CIFAR100, ImageNet100, DVSCIFAR10, NCaltech101, NMNIST, DVSGesture or synthetic: sets the input shape and classes.")
    var dataset: String = "DVSCIFAR10"
    @Option(name: [.customLong("T"), .customShort("T")], help: "Timesteps.")
    var timesteps: Int = 10
    @Option(name: [.customLong("batch_size"), .customLong("batch-size")], help: "Batch size.")
    var batchSize: Int = 16
    @Option(name: .customLong("device"), help: ArgumentHelp(stringLiteral: DeviceFlag.help))
    var device: String = "cpu"
    @Option(name: .customLong("amp"), help: "Mixed precision on a GPU: bf16 or fp16 (with loss scaling); 0: float32.")
    var amp: String = "0"
    @Flag(name: .customLong("tf32"), help: "On a GPU, let float32 convolutions use TF32 tensor cores, as PyTorch's cuDNN does by default.")
    var tf32 = false
    @Option(help: "Timed steps.")
    var steps: Int = 5
    @Option(help: "Untimed warm-up steps.")
    var warmup: Int = 1
    @Option(name: .customLong("event-density"), help: "Event data sets: the fraction of ones in the binary input frames.")
    var eventDensity: Double = 0.2
    @Flag(help: "Print one JSON object.")
    var json = false
    @OptionGroup var distributed: DistributedOptions
    @Flag(name: .customLong("no-overlap"), help: "Under mpirun: all-reduce the gradients after the backward pass instead of bucket by bucket during it.")
    var noOverlap = false

    func validate() throws {
        _ = try DatasetName.parse(dataset)
        guard timesteps >= 1, batchSize >= 1, steps >= 1, warmup >= 0 else {
            throw FlagError("--T, --batch_size and --steps must be positive and --warmup non-negative")
        }
        guard eventDensity >= 0, eventDensity <= 1 else { throw FlagError("--event-density must be in [0, 1]; got \(eventDensity)") }
        try DeviceFlag.check(device)
        _ = try DeviceFlag.amp(amp, device: device)
        try DeviceFlag.checkTF32(tf32, device: device)
    }

    func run() throws {
        SNN.prepare()
        // Under mpirun: every process steps on its own batch and the gradients are all-reduced,
        // as in data-parallel training; rank 0 reports.
        let communicator = try distributed.communicator()
        if !communicator.isLeader { _ = freopen("/dev/null", "w", stdout) }
        let ranks = communicator.size
        let dev = try DeviceFlag.open(device, localRank: ranks > 1 ? DistributedOptions.localRank : 0)
        let gradientSums = "gradients " + (try GPUCollectives.attach(to: communicator, device: dev))
        let precision = try DeviceFlag.amp(amp, device: device)
        DeviceFlag.applyPrecision(amp: precision, tf32: tf32, on: dev)
        let named = try DatasetName.parse(dataset)
        let (shape, classes) = (named.inputShape, named.classes)
        let isEvent = shape[0] == 2
        let g = RandomGenerator(seed: 0)
        let model = try SpikingNetwork(topology, classes: classes, config: ModelConfig(timesteps: timesteps, inputShape: shape),
                                       generator: g, device: dev)
        guard model.classes == classes else {
            throw FlagError("--topology: the readout has \(model.classes) outputs but \(dataset) has \(classes) classes")
        }
        // One batch of synthetic samples: event frames (non-negative counts) or normalised images.
        let sampleShape = isEvent ? [timesteps] + shape : shape
        // Event frames: binary, each pixel on with probability --event-density (what
        // preprocessed DVS frames look like to the network), as scripts/bench_reference.py feeds.
        let samples = isEvent ? Tensor.bernoulli([batchSize] + sampleShape, probability: eventDensity, generator: g, device: .cpu)
                              : Tensor.normal([batchSize] + sampleShape, generator: g, device: .cpu)
        let labels = (0..<batchSize).map { _ in g.integer(below: classes) }
        let data = InMemoryDataset(samples: samples, labels: labels, isSequence: isEvent, classes: classes)
        var config = TrainingConfig(
            dataset: dataset, topology: topology, modelName: NamedModel(rawValue: topology)?.rawValue, timesteps: timesteps,
            epochs: 1, batchSize: batchSize, learningRate: 1e-3, optimizer: .adam, scheduler: false, weightDecay: 0, l1: 0, l2: 0,
            loss: .trt(lambda: 5e-5, decay: 0.5, epsilon: 1e-5, eta: 0.05), neuron: NeuronParameters(), dropout: 0,
            batchNorm: true, kaimingInit: true, seed: 0, device: device, maxSteps: nil, clipGradNorm: nil,
            checkpointEpochs: [], saveCheckpoints: false)
        config.amp = precision
        let trainer = Trainer(config: config, model: model, train: data, test: data, runDirectory: "", communicator: communicator)
        let batch = data.batch(data.batchIndices(epoch: 0, batchSize: batchSize, shuffle: false, seed: 0)[0])
        func step() throws { _ = try trainer.step([batch], samples: batchSize * ranks, overlap: !noOverlap) }
        for _ in 0..<warmup { try step() }
        trainer.allReduceSeconds = 0
        // Every primitive of the timed steps runs through a profiling wrapper of the backend. A
        // GPU queues its work, so there the steps are timed as they run, and the breakdown comes
        // from as many more steps with a wait after every primitive.
        let inner = dev.backend
        let gpu = dev.isHostMemory ? nil : inner as? CUDABackend
        if dev == .cpu { BackendRegistry.cpu = ProfilingBackend(wrapping: inner) }
        Storage.resetPeakByteCount()
        gpu?.resetPeak()
        if gpu == nil { Profiler.start() }
        var wall = DispatchTime.now().uptimeNanoseconds
        let median = try Output.medianSeconds(repeats: steps) { try step() }
        var meanStep = Double(DispatchTime.now().uptimeNanoseconds - wall) / 1e9 / Double(steps)
        if dev == .cpu { BackendRegistry.cpu = inner }
        if let gpu {
            let registered = BackendRegistry.cuda
            let profiling = ProfilingBackend(wrapping: gpu, synchronizing: true)
            BackendRegistry.cuda = { _ in profiling }
            defer { BackendRegistry.cuda = registered }
            trainer.allReduceSeconds = 0   // the breakdown's all-reduce: these steps' alone
            Profiler.start()
            wall = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<steps { try step() }
            meanStep = Double(DispatchTime.now().uptimeNanoseconds - wall) / 1e9 / Double(steps)
        }
        let booked = Profiler.stop()
        let calls = Profiler.calls.mapValues { Double($0) / Double(steps) }
        let callsPerStep = Double(Profiler.outermostCalls) / Double(steps)
        var breakdown = booked.mapValues { $0 / Double(steps) }
        if ranks > 1 { breakdown["all-reduce", default: 0] += trainer.allReduceSeconds / Double(steps) }
        breakdown["rest", default: 0] += max(0, meanStep - breakdown.values.reduce(0, +))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peakMiB = Double(usage.ru_maxrss) / 1024
        let liveMiB = Double(Storage.peakByteCount) / 1_048_576
        var result: [String: Any] = [
            "samples_per_second": (Double(batchSize * ranks) / median * 100).rounded() / 100,
            "processes": ranks, "gradient_bytes": trainer.flatParameters.count * 4,
            "gradient_sums": ranks > 1 ? (dev.isHostMemory ? communicator.backendName : gradientSums) : "none",
            "step_seconds_median": (median * 1e4).rounded() / 1e4,
            "peak_rss_mib": peakMiB.rounded(),
            "peak_tensor_mib": liveMiB.rounded(),
            "breakdown_seconds": breakdown.mapValues { ($0 * 1e4).rounded() / 1e4 },
            "breakdown_calls": calls, "calls_per_step": callsPerStep,
            "topology": topology, "dataset": dataset, "T": timesteps, "batch_size": batchSize, "device": device,
            "steps": steps, "warmup": warmup, "event_density": isEvent ? eventDensity : 0, "parameters": model.parameterCount, "loss": "TRT", "optimizer": "Adam",
            "threads": ProcessInfo.processInfo.activeProcessorCount, "amp": precision ?? "off", "tf32": tf32,
        ]
        // On a GPU, tensors live in device memory: its peak is the figure that matters.
        let gpuPeakMiB = gpu.map { Double($0.memory.peak) / 1_048_576 }
        if let gpuPeakMiB, let gpu {
            result["peak_gpu_tensor_mib"] = gpuPeakMiB.rounded()
            result["gpu"] = gpu.info.name
            result["libraries"] = [gpu.cublas, gpu.cudnn].compactMap { $0.map { "\($0.component.rawValue) \($0.version)" } }
            // What cuDNN's search chose for each convolution (its timings are the search's).
            result["conv_algorithms"] = gpu.convolutionAlgorithms.map { a -> [String: Any] in
                ["input": a.input, "weight": a.weight, "groups": a.groups, "direction": a.direction, "operands": a.operands,
                 "tf32": a.tf32, "algorithm": a.algorithm, "search_ms": (a.milliseconds * 1000).rounded() / 1000,
                 "workspace_bytes": a.workspaceBytes, "deterministic": a.deterministic]
            }
        }
        if json {
            try Output.printJSON(result)
        } else {
            let scope = ranks > 1 ? String(format: "%d processes × batch %d over %@", ranks, batchSize, communicator.backendName)
                + (dev.isHostMemory ? "" : ", \(gradientSums)") : "batch \(batchSize)"
            print(String(format: "%@ on %@ (T=%d, %@, %@): %.2f samples/s (median step %.3f s), peak memory %.0f MiB (tensors %.0f MiB)%@",
                         topology, dataset, timesteps, scope, device, Double(batchSize * ranks) / median, median, peakMiB, liveMiB,
                         ranks > 1 ? " per process" : "")
                  + (gpuPeakMiB.map { String(format: "; GPU tensors peak %.0f MiB", $0) } ?? ""))
            print(gpu == nil ? "where a step's time goes (mean of the timed steps):"
                  : String(format: "where a step's time goes (mean of %d more steps, waiting for the GPU after each primitive: %.3f s a step):",
                           steps, meanStep))
            for (name, seconds) in breakdown.sorted(by: { $0.value > $1.value }) {
                let label = name.padding(toLength: 22, withPad: " ", startingAt: 0)
                print("  \(label)" + String(format: "%8.3f s  %5.1f%%", seconds, 100 * seconds / meanStep)
                      + (calls[name].map { String(format: "  %6.0f calls", $0) } ?? ""))
            }
            print(String(format: "  %.0f calls to the backend a step", callsPerStep))
        }
    }
}

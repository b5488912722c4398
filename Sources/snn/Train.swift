import ArgumentParser
import Foundation
import SNNData
import SNNModels
import SNNTensor
import SNNTraining

/// `snn train`: the reference's `python main.py`, with its flags.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a spiking network with SDT, TET or TRT.",
        discussion: """
            Flags follow the reference implementation (snake_case, e.g. --batch_size, or kebab-case, \
            --batch-size). Without --dataset, trains on SwiftSNN's built-in synthetic event data set \
            (moving shapes, 8 classes, 2×32×32, T=8), generated from --seed.
            """)

    @OptionGroup var options: TrainOptions

    mutating func run() throws {
        SNN.prepare()
        options.limits.apply()
        try options.runTraining()
    }
}

/// The flags of `snn train`.
struct TrainOptions: ParsableArguments {
    @Option(name: .customLong("dataset"), help: "Data set: CIFAR10, CIFAR100, ImageNet100, DVSCIFAR10, NCaltech101, NMNIST or DVSGesture (with --data-dir), or synthetic (the default: the built-in synthetic events); any case.")
    var dataset: String?
    @Option(name: [.customLong("topology")], help: "A named model (ResNet-19, VGGSNN, ResNet-34, SEW-ResNet-34) or a topology string such as CONV-32-3-1-1_L-10; default: ResNet-19 for CIFAR, SEW-ResNet-34 for ImageNet100, VGGSNN for DVSCIFAR10, NCaltech101 and DVSGesture, a small CNN for NMNIST and a small VGG for the synthetic data.")
    var topology: String?
    @Option(name: [.customLong("T"), .customShort("T")], help: "Timesteps; default: 6 for CIFAR, 4 for ImageNet100, 10 for the event data sets (the paper's), 8 for the synthetic data.")
    var timesteps: Int?
    @OptionGroup var losses: LossOptions
    @Option(name: .customLong("epochs"), help: "Training epochs; default: 300 for every data set (the reference's), 8 for the synthetic data.")
    var epochs: Int?
    @Option(name: [.customLong("batch_size"), .customLong("batch-size")], help: "Batch size.")
    var batchSize: Int = 64
    @Option(name: .customLong("lr"), help: "Learning rate.")
    var lr: Double = 1e-3
    @Option(name: .customLong("optimizer"), help: "SGD (momentum 0.9), Adam, AdamW or RMSprop.")
    var optimizer: String = "Adam"
    @Option(name: .customLong("scheduler"), help: "1: cosine annealing of the learning rate to 0, stepped per epoch.")
    var scheduler: Int = 1
    @Option(name: .customLong("seed"), help: "Random seed for initialisation, shuffling, augmentation and dropout.")
    var seed: UInt64 = 42
    @Option(name: .customLong("amp"), help: "Mixed precision on a GPU: fp16 or bf16 operands for matrix products and convolutions, float32 elsewhere (fp16 with dynamic loss scaling); 1 (the reference's default): fp16 on a GPU, nothing on the CPU; 0 or off: float32 throughout.")
    var amp: String = "1"
    @Flag(name: .customLong("tf32"), help: "On a GPU, let float32 convolutions use TF32 tensor cores (10-bit mantissa products), as PyTorch's cuDNN does by default; off: float32 products.")
    var tf32 = false
    @Option(name: .customLong("augment"), help: "1: data augmentation (the data set's).")
    var augment: Int = 1
    @OptionGroup var network: NetworkOptions
    @OptionGroup var limits: ReaderLimitOptions
    @OptionGroup var distributed: DistributedOptions
    @Option(name: [.customLong("weight_decay"), .customLong("weight-decay")], help: "Weight decay passed to the optimiser.")
    var weightDecay: Double = 0
    @Option(name: .customLong("weights"), help: "Start from these weights instead of the initialisation: .safetensors or PyTorch .pth under the reference's names (a state dict the reference saved, or a checkpoint holding one).")
    var weights: String?
    @Option(name: .customLong("resume"), help: "1: resume from --resume_path.")
    var resume: Int = 0
    @Option(name: [.customLong("resume_path"), .customLong("resume-path")], help: "Checkpoint to resume (weights/last of a run directory).")
    var resumePath: String?
    @Option(name: [.customLong("save_checkpoint"), .customLong("save-checkpoint")], help: "1: also keep checkpoints at --checkpoint_epochs.")
    var saveCheckpoint: Int = 0
    @Option(name: [.customLong("checkpoint_epochs"), .customLong("checkpoint-epochs")], help: "Epochs to keep checkpoints at, joined by '-'.")
    var checkpointEpochs: String = "150-200-250"
    @Option(name: [.customLong("mean_reduce"), .customLong("mean-reduce")], help: "Accepted for compatibility (losses are batch means).")
    var meanReduce: Int = 1
    @Option(name: .customLong("cpu"), help: "Accepted for compatibility with the reference; --device chooses where to compute.")
    var cpu: Int = 0
    @Option(name: [.customLong("data-dir"), .customLong("data_dir")], help: "Folder holding the data set.")
    var dataDir: String?
    @Option(name: .customLong("device"), help: ArgumentHelp(stringLiteral: DeviceFlag.help))
    var device: String = "cpu"
    @Option(name: [.customLong("max-steps"), .customLong("max_steps")], help: "Stop after this many optimisation steps (smoke tests).")
    var maxSteps: Int?
    @Option(name: .customLong("output"), help: "Folder under which the run directory result/<name> is created (default: runs). A resumed run continues in its own folder unless --output is given.")
    var output: String?
    @Option(name: [.customLong("log-interval"), .customLong("log_interval")], help: "When stdout is not a terminal: seconds between step lines (the first step always prints one; 0: every step).")
    var logInterval: Double = 10
    @Option(name: [.customLong("clip-grad-norm"), .customLong("clip_grad_norm")], help: "Clip the global gradient norm to this value.")
    var clipGradNorm: Double?
    @Option(name: .customLong("workers"), help: "Background threads assembling batches ahead of each step (0: on the training thread); batches are the same for any count.")
    var workers: Int = 2
    @Flag(name: [.customLong("drop-last"), .customLong("drop_last")], help: "Drop each epoch's last partial training batch (the reference keeps it).")
    var dropLast = false
    @Option(help: "Micro-batches of --batch_size per optimisation step (gradient accumulation): the step's gradient is their sample-weighted mean, over every process of a data-parallel run too.")
    var accumulate: Int = 1
    @Flag(name: .customLong("sync-bn"), inversion: .prefixedNo, help: "In a data-parallel run, batch norm normalises with the statistics of every process's batch together (PyTorch's SyncBatchNorm), not each process's own.")
    var syncBatchNorm = false
    @Flag(name: [.customLong("skip-corrupt"), .customLong("skip_corrupt")], help: "Skip unreadable event files and JPEGs (and say how many) instead of stopping.")
    var skipCorrupt = false
    @Option(name: [.customLong("dvs-frames"), .customLong("dvs_frames")], help: "DVSCIFAR10 frames: standard (per-polarity counts, per-frame max normalisation) or reference (the reference code's occupancy frames with its channel quirk, for bit-for-bit comparisons).")
    var dvsFrames: String = "standard"
    @Option(name: .customLong("classes"), help: "ImageNet100 classes: imagenet100 (the reference's list of 100 synsets), all (every folder in train/), or a file of synsets, one per line.")
    var classes: String = "imagenet100"
    @Option(name: [.customLong("frame-size"), .customLong("frame_size")], help: "Event frames are resized to this height and width; default 48 (34 for NMNIST, its sensor).")
    var frameSize: Int?
    @Option(name: [.customLong("observe_fi"), .customLong("observe-fi")], help: "1: measure the Fisher information per timestep after each of --fi_epochs (the reference's estimator; fisher.csv, TensorBoard fisher/epoch_<n>).")
    var observeFI: Int = 0
    @Option(name: [.customLong("fi_epochs"), .customLong("fi-epochs")], help: "Epochs to measure the Fisher information after, joined by '-'.")
    var fiEpochs: String = "20-40-60-80-100-120-200-300"
    @Option(name: [.customLong("observe_ic"), .customLong("observe-ic")], help: "1: measure the information centroid after every epoch (metrics column information_centroid).")
    var observeIC: Int = 0
    @Option(name: [.customLong("cache-dir"), .customLong("cache_dir")],
            help: ArgumentHelp("Read and write event frames in DIR/<options>/ instead of DATA-DIR/.snn-frames/<options>/.", valueName: "DIR"))
    var cacheDir: String?
    @Option(name: [.customLong("synthetic-samples")], help: "Samples of the synthetic data set (train; test gets a quarter).")
    var syntheticSamples: Int = 3000

    func validate() throws {
        if let t = timesteps, t < 1 { throw FlagError("--T must be a positive integer, got \(t)") }
        if batchSize < 1 { throw FlagError("--batch_size must be positive, got \(batchSize)") }
        if workers < 0 { throw FlagError("--workers must be 0 or more, got \(workers)") }
        if let e = epochs, e < 1 { throw FlagError("--epochs must be positive, got \(e)") }
        try requireFinite([("--lr", lr), ("--weight_decay", weightDecay), ("--clip-grad-norm", clipGradNorm ?? 1)])
        if lr <= 0 { throw FlagError("--lr must be positive, got \(lr)") }
        if weightDecay < 0 { throw FlagError("--weight_decay must be 0 or more, got \(weightDecay)") }
        if let c = clipGradNorm, c <= 0 { throw FlagError("--clip-grad-norm must be positive, got \(c)") }
        if accumulate < 1 { throw FlagError("--accumulate must be a positive integer, got \(accumulate)") }
        guard Optimizer.Kind(rawValue: optimizer) != nil else {
            throw FlagError("--optimizer accepts SGD, Adam, AdamW, RMSprop; got \(optimizer)")
        }
        try losses.check(trtDefault: 1)
        try DeviceFlag.check(device)
        _ = try DeviceFlag.amp(amp, device: device)
        try DeviceFlag.checkTF32(tf32, device: device)
        if resume == 1 && resumePath == nil { throw FlagError("--resume 1 needs --resume_path (a run's weights/last)") }
        try requireFinite([("--log-interval", logInterval)])
        if logInterval < 0 { throw FlagError("--log-interval must be 0 or more, got \(logInterval)") }
        guard EventFolderDataset.DVSFrames(rawValue: dvsFrames) != nil else {
            throw FlagError("--dvs-frames accepts standard, reference; got \(dvsFrames)")
        }
        if let s = frameSize, s < 1 { throw FlagError("--frame-size must be positive, got \(s)") }
        if resume == 1 && weights != nil { throw FlagError("--weights and --resume 1 exclude each other: a resumed run continues from its checkpoint") }
        if let d = dataset {
            let name = try DatasetName.parse(d)
            if name.readsFiles && dataDir == nil {
                throw FlagError("--dataset \(name.rawValue) needs --data-dir: the folder holding \(name.layout)")
            }
        }
        if observeFI == 1 {
            let parts = fiEpochs.split(separator: "-", omittingEmptySubsequences: false)
            guard !parts.isEmpty, parts.allSatisfy({ Int($0).map { $0 >= 1 } ?? false }) else {
                throw FlagError("--fi_epochs expects positive epoch numbers joined by '-' (e.g. 20-40-60), got \(fiEpochs)")
            }
        }
        if cacheDir?.isEmpty == true { throw FlagError("--cache-dir needs a folder") }
        if syntheticSamples < 1 { throw FlagError("--synthetic-samples must be positive, got \(syntheticSamples)") }
    }
}

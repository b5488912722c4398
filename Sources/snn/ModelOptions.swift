import ArgumentParser
import SNNData
import SNNTensor
import SNNTraining

/// The neuron and layer flags of the reference's `SNN` class, shared by `snn train` and `snn forward`.
struct NetworkOptions: ParsableArguments {
    @Option(name: .customLong("tau"), help: "Membrane time constant τ ≥ 1 (the leak is 1/τ).")
    var tau: Double = 2.0
    @Option(name: [.customLong("v_threshold"), .customLong("v-threshold")], help: "Firing threshold.")
    var vThreshold: Double = 1.0
    // Unconditional: `--v_reset -1` (the reference's spelling of a soft reset) is a value, not a flag.
    @Option(name: [.customLong("v_reset"), .customLong("v-reset")], parsing: .unconditional,
            help: "Reset potential; negative means soft reset (subtract the threshold).")
    var vReset: Double = 0.0
    @Option(name: [.customLong("surrogate_type"), .customLong("surrogate-type")], help: "Surrogate gradient: triangle, sigmoid or rectangle.")
    var surrogateType: String = "triangle"
    @Option(name: [.customLong("surrogate_param"), .customLong("surrogate-param")], help: "Surrogate parameter (γ, α or width).")
    var surrogateParam: Double = 1.0
    @Option(name: .customLong("dropout"), help: "Dropout before the neuron of FC layers.")
    var dropout: Double = 0
    @Option(name: .customLong("norm"), help: "tdBN (batch norm after every conv) or No (conv biases instead).")
    var norm: String = "tdBN"
    @Option(name: .customLong("init"), help: "1: Kaiming-normal conv weights (fan-out, ReLU gain).")
    var initFlag: Int = 1

    var neuron: NeuronParameters {
        NeuronParameters(tau: tau, threshold: vThreshold, reset: vReset < 0 ? .soft : .hard(vReset),
                         surrogate: Surrogate(kind: surrogateType, parameter: surrogateParam) ?? .triangle(gamma: 1))
    }

    func validate() throws {
        try requireFinite([("--tau", tau), ("--v_threshold", vThreshold), ("--v_reset", vReset),
                           ("--surrogate_param", surrogateParam), ("--dropout", dropout)])
        if tau < 1 { throw FlagError("--tau must be >= 1 (the leak is 1/tau), got \(tau)") }
        guard Surrogate(kind: surrogateType, parameter: surrogateParam) != nil else {
            throw FlagError("--surrogate_type accepts triangle, sigmoid, rectangle with a positive --surrogate_param; got \(surrogateType) \(surrogateParam)")
        }
        guard ["tdBN", "No"].contains(norm) else { throw FlagError("--norm accepts tdBN, No; got \(norm)") }
        if dropout < 0 || dropout >= 1 { throw FlagError("--dropout must be in [0, 1), got \(dropout)") }
    }
}

/// The loss flags of the reference (SDT, TET, TRT and their hyperparameters), shared by `snn train`
/// and `snn forward`.
struct LossOptions: ParsableArguments {
    @Option(name: .customLong("trtloss"), help: "1: Temporal Regularization Training loss. Default: 1 for snn train (the reference's), 0 (SDT) for snn forward.")
    var trtloss: Int?
    @Option(name: .customLong("tetloss"), help: "1: Temporal Efficient Training loss (takes precedence over --trtloss).")
    var tetloss: Int = 0
    @Option(name: [.customLong("loss_lambda"), .customLong("loss-lambda")], help: "λ of TRT (weight penalty) or TET (MSE term).")
    var lossLambda: Double = 1e-5
    @Option(name: [.customLong("tet_lambda"), .customLong("tet-lambda")], help: "λ of TET; overrides --loss_lambda for TET runs.")
    var tetLambda: Double?
    @Option(name: [.customLong("loss_decay"), .customLong("loss-decay")], help: "TRT decay d of the penalty over time.")
    var lossDecay: Double = 0.5
    @Option(name: [.customLong("loss_eta"), .customLong("loss-eta")], help: "TRT η: weight of the MSE term.")
    var lossEta: Double = 0.05
    @Option(name: [.customLong("loss_epsilon"), .customLong("loss-epsilon")], help: "TRT ε safeguard.")
    var lossEpsilon: Double = 1e-5
    @Option(name: [.customLong("loss_means"), .customLong("loss-means")], help: "TET φ: the MSE target.")
    var lossMeans: Double = 1.0
    @Option(name: .customLong("criterion"), help: "CE or MSE: the SDT criterion, and TET's per timestep (MSE is refused with TRT, as in the reference).")
    var criterion: String = "CE"
    @Option(name: .customLong("l1"), help: "L1 penalty coefficient on all parameters, added to the SDT loss.")
    var l1: Double = 0
    @Option(name: .customLong("l2"), help: "L2 penalty coefficient on all parameters, added to the SDT loss (as the reference; TET and TRT ignore it).")
    var l2: Double = 0

    /// The loss the flags select: TET if --tetloss 1, else TRT if --trtloss 1 (`trtDefault` when
    /// not given), else SDT.
    func loss(trtDefault: Int) -> TrainingLoss {
        if tetloss == 1 { return .tet(lambda: tetLambda ?? lossLambda, means: lossMeans, criterion: criterion == "MSE" ? .mse : nil) }
        if (trtloss ?? trtDefault) == 1 { return .trt(lambda: lossLambda, decay: lossDecay, epsilon: lossEpsilon, eta: lossEta) }
        return .sdt(Criterion(rawValue: criterion) ?? .crossEntropy)
    }

    /// Checks across flags; `trtDefault` is the command's default for --trtloss.
    func check(trtDefault: Int) throws {
        try requireFinite([("--loss_lambda", lossLambda), ("--tet_lambda", tetLambda ?? 0), ("--loss_decay", lossDecay),
                           ("--loss_eta", lossEta), ("--loss_epsilon", lossEpsilon), ("--loss_means", lossMeans),
                           ("--l1", l1), ("--l2", l2)])
        guard Criterion(rawValue: criterion) != nil else { throw FlagError("--criterion accepts CE, MSE; got \(criterion)") }
        if criterion == "MSE" && (trtloss ?? trtDefault) == 1 && tetloss == 0 {
            throw FlagError("--criterion MSE cannot be used with --trtloss 1 (TRT uses CE with its own MSE term, as the reference requires); pass --trtloss 0 for SDT with MSE")
        }
    }
}

/// Refuses NaN and infinite values by flag name: `Double` parses "nan" and "inf", and either
/// would train a network whose every weight is NaN.
func requireFinite(_ flags: [(String, Double)]) throws {
    for (name, value) in flags where !value.isFinite {
        throw FlagError("\(name) must be a finite number, got \(value)")
    }
}

/// Limits on what one input file may make SwiftSNN do, for files that legitimately exceed them.
struct ReaderLimitOptions: ParsableArguments {
    @Option(name: [.customLong("max-image-pixels"), .customLong("max_image_pixels")],
            help: "Refuse JPEGs declaring more pixels than this (width × height).")
    var maxImagePixels: Int = JPEG.Limits().maxPixels
    @Option(name: [.customLong("max-jpeg-scans"), .customLong("max_jpeg_scans")],
            help: "Refuse progressive JPEGs with more scans than this.")
    var maxJPEGScans: Int = JPEG.Limits().maxScans
    @Option(name: [.customLong("max-checkpoint-expansion"), .customLong("max_checkpoint_expansion")],
            help: "Refuse .pth files whose tensors would take more than this many times the file's size (plus 64 MiB).")
    var maxCheckpointExpansion: Int = TorchCheckpoint.expansionFactor

    func validate() throws {
        for (name, value) in [("--max-image-pixels", maxImagePixels), ("--max-jpeg-scans", maxJPEGScans),
                              ("--max-checkpoint-expansion", maxCheckpointExpansion)] where value < 1 {
            throw FlagError("\(name) must be positive, got \(value)")
        }
    }

    /// Makes the limits the process's defaults.
    func apply() {
        var limits = JPEG.limits
        (limits.maxPixels, limits.maxScans) = (maxImagePixels, maxJPEGScans)
        JPEG.limits = limits
        TorchCheckpoint.expansionFactor = maxCheckpointExpansion
    }
}

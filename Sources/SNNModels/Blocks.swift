import SNNLayers
import SNNSpiking
import SNNTensor

/// How a network is built: the options of the reference's `SNN` class.
public struct ModelConfig: Sendable, Codable, Hashable {
    /// Timesteps T.
    public var timesteps: Int
    /// One input frame `[C, H, W]`.
    public var inputShape: [Int]
    /// Dropout before the neuron of `FC` blocks.
    public var dropout: Double = 0
    /// tdBN after every convolution (`true`, the default) or convolutions with biases (`--norm No`).
    public var batchNorm = true
    /// Kaiming-normal (fan-out, ReLU) convolution weights (`--init 1`), else PyTorch's default.
    public var kaimingInit = true
    /// The neuron of every spiking layer.
    public var neuron = NeuronParameters()

    public init(timesteps: Int, inputShape: [Int], dropout: Double = 0, batchNorm: Bool = true,
                kaimingInit: Bool = true, neuron: NeuronParameters = NeuronParameters()) {
        precondition(timesteps >= 1, "[ModelConfig] expected T >= 1, got \(timesteps)")
        precondition(inputShape.count == 3 && inputShape.allSatisfy { $0 > 0 }, "[ModelConfig] expected a [C, H, W] input shape, got \(inputShape)")
        (self.timesteps, self.inputShape, self.dropout, self.batchNorm, self.kaimingInit, self.neuron) =
            (timesteps, inputShape, dropout, batchNorm, kaimingInit, neuron)
    }
}

/// Builds layers with the config's initialisation and device.
struct LayerFactory {
    let config: ModelConfig
    let generator: RandomGenerator
    let device: Device

    /// conv (+ BN): the reference's `SeqToANNContainer(Conv2d, BatchNorm2d)`.
    func convBN(_ cin: Int, _ cout: Int, kernel: Int, stride: Int, padding: Int) -> [Module] {
        let conv = Conv2d(cin, cout, kernel: kernel, stride: stride, padding: padding, bias: !config.batchNorm,
                          kaiming: config.kaimingInit, generator: generator, device: device)
        return config.batchNorm ? [conv, BatchNorm(cout, device: device)] : [conv]
    }

    func lif() -> LIF { LIF(config.neuron) }
}

/// The reference's `SeqToANNContainer`: one module (key `module`) or several (`module.0`, ...).
public final class SeqToANN: Module {
    let single: Module?
    let list: [Module]

    init(_ modules: [Module]) {
        (single, list) = modules.count == 1 ? (modules[0], []) : (nil, modules)
    }

    public override func childKey(_ property: String) -> String? { "module" }

    /// The convolution and batch norm of a `[conv, BN]` container, which a following neuron can
    /// fuse with (see ``LIF/callAsFunction(_:after:)``).
    var convThenBatchNorm: (conv: Module, bn: BatchNorm)? {
        guard list.count == 2, let bn = list[1] as? BatchNorm else { return nil }
        return (list[0], bn)
    }

    /// `lif(self(x) + residual)`, with batch norm, the residual add and the neuron fused when
    /// this container ends in batch norm.
    func spiking(_ x: Tensor, _ lif: LIF, residual: Tensor? = nil) -> Tensor {
        guard let (conv, bn) = convThenBatchNorm else {
            let y = self(x)
            return lif(residual.map { y + $0 } ?? y)
        }
        return lif(conv(x), after: bn, residual: residual)
    }

    public override func forward(_ x: Tensor) -> Tensor { single.map { $0(x) } ?? list.reduce(x) { $1($0) } }
}

/// `CONV*` tokens: conv → BN → LIF → pooling (or none). The encoder variant runs conv → BN on
/// the static frame once, then repeats it over time before the neuron.
public final class ConvBlock: Module {
    let convBN: Module
    let lif: LIF
    let pool: Pool2d?
    let encoderSteps: Int?

    init(_ f: LayerFactory, cin: Int, token: TopologyToken) {
        guard case let .conv(c, k, s, p, pooling, pool, encoder) = token else { preconditionFailure("[ConvBlock] expected a CONV token") }
        let layers = f.convBN(cin, c, kernel: k, stride: s, padding: p)
        // The reference's encoder holds nn.Sequential(conv, BN) directly, or the bare conv without
        // BN (`conv2d_layer.weight`); the others wrap them in SeqToANNContainer.
        convBN = encoder ? (layers.count == 1 ? layers[0] : Sequential(layers)) : SeqToANN(layers)
        lif = f.lif()
        self.pool = pooling == .none ? nil
            : Pool2d(pooling == .max ? .max : .average, kernel: pool.kernel, stride: pool.stride, padding: pool.padding)
        encoderSteps = encoder ? f.config.timesteps : nil
    }

    public override func childKey(_ property: String) -> String? {
        switch property {
        case "convBN": return "conv2d_layer"
        case "lif": return "lif"
        case "pool", "encoderSteps": return nil
        default: return property
        }
    }

    public override func forward(_ x: Tensor) -> Tensor {
        let y: Tensor
        if let steps = encoderSteps {
            y = lif(repeatOverTime(convBN(x), steps: steps))
        } else if let container = convBN as? SeqToANN {
            y = container.spiking(x, lif)
        } else {
            y = lif(convBN(x))
        }
        return pool.map { $0(y) } ?? y
    }
}

/// `RES` and `SEWRES` tokens. Spiking: `LIF₂(BN(conv₂(LIF₁(BN(conv₁ x)))) + shortcut x)`;
/// SEW: `g(LIF₂(BN(conv₂(LIF₁(BN(conv₁ x))))), shortcut x)` with g in ADD, AND, IAND and a
/// spiking shortcut. Followed by FC or L, the output is average-pooled to 1×1.
public final class ResidualBlock: Module {
    let conv1: SeqToANN, conv2: SeqToANN
    let lif1: LIF, lif2: LIF
    let downsample: Module?
    let connect: TopologyToken.Connect?
    let poolToOne: Bool

    init(_ f: LayerFactory, cin: Int, token: TopologyToken, poolToOne: Bool) {
        guard case let .residual(c, k, s, p, sew) = token else { preconditionFailure("[ResidualBlock] expected a RES token") }
        conv1 = SeqToANN(f.convBN(cin, c, kernel: k.0, stride: s.0, padding: p.0))
        conv2 = SeqToANN(f.convBN(c, c, kernel: k.1, stride: s.1, padding: p.1))
        (lif1, lif2) = (f.lif(), f.lif())
        if s.0 != s.1 || cin != c {
            let projection = SeqToANN(f.convBN(cin, c, kernel: 1, stride: s.0, padding: 0))
            downsample = sew == nil ? projection : Sequential([projection, f.lif()])
        } else {
            downsample = nil
        }
        connect = sew
        self.poolToOne = poolToOne
    }

    public override func childKey(_ property: String) -> String? {
        switch property {
        case "conv1": return "conv2d_layer_1"
        case "conv2": return "conv2d_layer_2"
        case "downsample": return "downsample_layer"
        case "lif1": return "lif_1"
        case "lif2": return "lif_2"
        default: return nil
        }
    }

    public override func forward(_ x: Tensor) -> Tensor {
        let hidden = conv1.spiking(x, lif1)
        let identity = downsample.map { $0(x) } ?? x
        let y: Tensor
        switch connect {
        case nil: y = conv2.spiking(hidden, lif2, residual: identity)
        case .add?: y = conv2.spiking(hidden, lif2) + identity
        case .and?: y = conv2.spiking(hidden, lif2) * identity
        case .iand?: y = identity * (1 - conv2.spiking(hidden, lif2))
        }
        guard poolToOne else { return y }
        // [T, N, C, H, W] -> [T, N, C, 1, 1]
        return y.mean(axes: [3, 4], keepDims: true)
    }
}

/// `FC-n`: linear → dropout → LIF over every timestep.
public final class FCBlock: Module {
    let fc: SeqToANN
    let dropout: Dropout?
    let lif: LIF

    init(_ f: LayerFactory, inFeatures: Int, outFeatures: Int) {
        fc = SeqToANN([Linear(inFeatures, outFeatures, generator: f.generator, device: f.device)])
        dropout = f.config.dropout > 0 ? Dropout(f.config.dropout, generator: f.generator.derived(17)) : nil
        lif = f.lif()
    }

    public override func childKey(_ property: String) -> String? { ["fc", "lif", "dropout"].contains(property) ? property : nil }

    public override func forward(_ x: Tensor) -> Tensor {
        let y = fc(x)
        return lif(dropout.map { $0(y) } ?? y)
    }
}

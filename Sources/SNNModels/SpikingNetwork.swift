import SNNLayers
import SNNSpiking
import SNNTensor

/// A spiking network built from a topology: the reference's `SNN` class, time-major.
///
/// `layers` is indexed like the reference's `SNN.layers` (a flatten takes an index of its own
/// before the first dense token after a conv or residual token), so state-dict keys match the
/// reference's (`layers.0.conv2d_layer.module.0.weight`).
public final class SpikingNetwork: Module {
    public let topology: Topology
    public let config: ModelConfig
    let layers: [Module]
    /// One row per layer of ``summary``, computed while building.
    public let summary: [LayerSummary]

    /// Builds the network, drawing initial weights from `generator`.
    public init(topology: Topology, config: ModelConfig, generator: RandomGenerator, device: Device = .cpu) throws {
        self.topology = topology
        self.config = config
        let f = LayerFactory(config: config, generator: generator, device: device)
        var layers: [Module] = []
        var rows: [LayerSummary] = []
        var shape = config.inputShape  // per timestep and sample: [C, H, W] or [features]
        for (i, token) in topology.tokens.enumerated() {
            let next = i + 1 < topology.tokens.count ? topology.tokens[i + 1] : nil
            func fail(_ why: String) -> TopologyError { TopologyError(message: "topology token \(i + 1) '\(token)': \(why)") }
            switch token {
            case let .conv(c, k, s, p, pooling, pool, _):
                guard shape.count == 3 else { throw fail("a convolution needs [C, H, W] input, got \(shape)") }
                let (ho, wo) = (outputSize(shape[1], k, s, p), outputSize(shape[2], k, s, p))
                guard ho > 0 && wo > 0 else { throw fail("the kernel does not fit the \(shape[1])×\(shape[2]) input") }
                var out = [c, ho, wo]
                let macs = c * shape[0] * k * k * ho * wo
                if pooling != .none {
                    out = [c, outputSize(ho, pool.kernel, pool.stride, pool.padding), outputSize(wo, pool.kernel, pool.stride, pool.padding)]
                    guard out[1] > 0 && out[2] > 0 else { throw fail("the pooling window does not fit the \(ho)×\(wo) map") }
                }
                let block = ConvBlock(f, cin: shape[0], token: token)
                layers.append(block)
                rows.append(LayerSummary(index: layers.count - 1, token: token.description, outputShape: out,
                                         parameters: block.parameterCount, macsPerTimestep: macs))
                shape = out
            case let .residual(c, k, s, p, sew):
                guard shape.count == 3 else { throw fail("a residual block needs [C, H, W] input, got \(shape)") }
                let projected = s.0 != s.1 || shape[0] != c
                if !projected && s.0 > 1 {
                    throw fail("equal strides above 1 shrink the residual path but not the identity shortcut; use different strides (e.g. 2=1, which adds a projection) or 1=1")
                }
                let (h1, w1) = (outputSize(shape[1], k.0, s.0, p.0), outputSize(shape[2], k.0, s.0, p.0))
                let (h2, w2) = (outputSize(h1, k.1, s.1, p.1), outputSize(w1, k.1, s.1, p.1))
                guard h2 > 0 && w2 > 0 else { throw fail("the kernels do not fit the \(shape[1])×\(shape[2]) input") }
                if projected {
                    let (hd, wd) = (outputSize(shape[1], 1, s.0, 0), outputSize(shape[2], 1, s.0, 0))
                    guard hd == h2 && wd == w2 else { throw fail("the shortcut gives \(hd)×\(wd) but the residual path \(h2)×\(w2)") }
                }
                let pool = next?.isDense ?? false
                let block = ResidualBlock(f, cin: shape[0], token: token, poolToOne: pool)
                layers.append(block)
                var macs = c * shape[0] * k.0 * k.0 * h1 * w1 + c * c * k.1 * k.1 * h2 * w2
                if projected { macs += c * shape[0] * h2 * w2 }
                _ = sew
                shape = pool ? [c, 1, 1] : [c, h2, w2]
                rows.append(LayerSummary(index: layers.count - 1, token: token.description, outputShape: shape,
                                         parameters: block.parameterCount, macsPerTimestep: macs))
            case .fc(let n), .readout(let n):
                if shape.count != 1 {
                    layers.append(Flatten())
                    shape = [shape.reduce(1, *)]
                    rows.append(LayerSummary(index: layers.count - 1, token: "flatten", outputShape: shape, parameters: 0, macsPerTimestep: 0))
                }
                let block: Module
                if case .fc = token {
                    block = FCBlock(f, inFeatures: shape[0], outFeatures: n)
                } else {
                    block = SeqToANN([Linear(shape[0], n, generator: generator, device: device)])
                }
                layers.append(block)
                rows.append(LayerSummary(index: layers.count - 1, token: token.description, outputShape: [n],
                                         parameters: block.parameterCount, macsPerTimestep: shape[0] * n))
                shape = [n]
            }
        }
        self.layers = layers
        summary = rows
    }

    /// Builds from a topology string or a named model (`ResNet-19`, `VGGSNN`, ...).
    public convenience init(_ topologyOrModel: String, classes: Int, config: ModelConfig, generator: RandomGenerator,
                            device: Device = .cpu) throws {
        let text = NamedModel(rawValue: topologyOrModel)?.topology(classes: classes) ?? topologyOrModel
        try self.init(topology: try Topology(parsing: text), config: config, generator: generator, device: device)
    }



    /// The number of classes (the readout's width).
    public var classes: Int { summary.last?.outputShape.first ?? 0 }

    /// The spiking layers, in order (for firing-rate probes).
    public var spikingLayers: [(key: String, value: LIF)] {
        namedModules().compactMap { key, m in (m as? LIF).map { (key, $0) } }
    }

    /// - Parameter x: a sequence `[T, N, C, H, W]` (event frames) or a static batch
    ///   `[N, C, H, W]`, repeated over T before the first layer (the encoder token takes it as is).
    /// - Returns: readout values `[T, N, classes]`.
    public override func forward(_ x: Tensor) -> Tensor {
        var h = x
        let encoderFirst: Bool = {
            if case .conv(_, _, _, _, _, _, true)? = topology.tokens.first { return true }
            return false
        }()
        if x.rank == 4 && !encoderFirst {
            h = repeatOverTime(x, steps: config.timesteps)
        }
        precondition(h.rank == 5 || encoderFirst, "[SpikingNetwork] expected [T, N, C, H, W] or [N, C, H, W] input, got \(ShapeUtil.describe(x.shape))")
        return layers.reduce(h) { $1($0) }
    }

    public override func childKey(_ property: String) -> String? {
        property == "layers" ? "layers" : nil
    }
}

/// One row of a network's summary: output shape per timestep and sample, trainable parameters
/// and multiply-accumulates per timestep and sample.
public struct LayerSummary: Codable, Sendable {
    public let index: Int
    public let token: String
    public let outputShape: [Int]
    public let parameters: Int
    public let macsPerTimestep: Int
}

/// The output size of a convolution or pooling along one axis; 0 when the window does not fit
/// (PyTorch's floor division: a 1-pixel map pooled by 2 has no output, not 1).
func outputSize(_ size: Int, _ k: Int, _ s: Int, _ p: Int) -> Int {
    let span = size + 2 * p - k
    return span < 0 ? 0 : span / s + 1
}

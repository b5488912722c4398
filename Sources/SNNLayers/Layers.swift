import SNNTensor

/// Folds a time-major sequence `[T, N, ...]` into `[T·N, ...]` for a per-frame layer and
/// returns the function that unfolds the result; 4-D input passes through.
func foldTime(_ x: Tensor, frameRank: Int) -> (Tensor, (Tensor) -> Tensor) {
    if x.rank == frameRank { return (x, { $0 }) }
    precondition(x.rank == frameRank + 1, "[layer] expected a [N, ...] frame of rank \(frameRank) or a [T, N, ...] sequence, got \(ShapeUtil.describe(x.shape))")
    let (t, n) = (x.shape[0], x.shape[1])
    return (x.reshaped([t * n] + x.shape[2...]), { $0.reshaped([t, n] + $0.shape[1...]) })
}

/// `y = x Wᵀ + b` over the last dimension (any leading dimensions, so sequences pass through).
public final class Linear: Module {
    public var weight: Tensor
    public var bias: Tensor?

    /// PyTorch's default initialisation.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: RandomGenerator, device: Device = .cpu) {
        weight = Init.kaimingUniformDefault([outFeatures, inFeatures], generator: generator, device: device)
        self.bias = bias ? Init.defaultBias(outFeatures, fanIn: inFeatures, generator: generator, device: device) : nil
    }

    public override func forward(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// 2-D convolution of frames `[N, C, H, W]` or of every frame of a sequence `[T, N, C, H, W]`.
public final class Conv2d: Module {
    public var weight: Tensor
    public var bias: Tensor?
    public let stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int), groups: Int

    /// Weights Kaiming-normal (fan-out, ReLU gain) when `kaiming` is true (the reference's
    /// `--init 1`), else PyTorch's default.
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
                groups: Int = 1, bias: Bool = true, kaiming: Bool = true, generator: RandomGenerator, device: Device = .cpu) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0,
                     "[Conv2d] expected channels divisible by groups \(groups), got \(inChannels) -> \(outChannels)")
        let shape = [outChannels, inChannels / groups, kernel, kernel]
        weight = kaiming ? Init.kaimingNormal(shape, generator: generator, device: device)
                         : Init.kaimingUniformDefault(shape, generator: generator, device: device)
        self.bias = bias ? (kaiming ? Tensor.zeros([outChannels], device: device)
                                    : Init.defaultBias(outChannels, fanIn: Init.fans(shape).fanIn, generator: generator, device: device)) : nil
        (self.stride, self.padding, self.dilation, self.groups) = ((stride, stride), (padding, padding), (dilation, dilation), groups)
    }

    public override func forward(_ x: Tensor) -> Tensor {
        let (frames, unfold) = foldTime(x, frameRank: 4)
        return unfold(conv2d(frames, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups))
    }
}

/// Batch normalisation over channels. On a sequence `[T, N, C, H, W]` the statistics cover
/// time and batch together (tdBN). Running statistics update with `momentum` in training mode.
public final class BatchNorm: Module {
    public var weight: Tensor
    public var bias: Tensor
    public let runningMean: Buffer
    public let runningVar: Buffer
    public let numBatchesTracked: Buffer
    public let momentum: Double, epsilon: Double

    public init(_ channels: Int, momentum: Double = 0.1, epsilon: Double = 1e-5, device: Device = .cpu) {
        weight = Tensor.ones([channels], device: device)
        bias = Tensor.zeros([channels], device: device)
        runningMean = Buffer(Tensor.zeros([channels], device: device))
        runningVar = Buffer(Tensor.ones([channels], device: device))
        numBatchesTracked = Buffer(Tensor.zeros([], dtype: .int64, device: device))
        (self.momentum, self.epsilon) = (momentum, epsilon)
    }

    /// PyTorch's state-dict names.
    public override func childKey(_ property: String) -> String? {
        switch property {
        case "runningMean": return "running_mean"
        case "runningVar": return "running_var"
        case "numBatchesTracked": return "num_batches_tracked"
        case "momentum", "epsilon": return nil
        default: return property
        }
    }

    public override func forward(_ x: Tensor) -> Tensor {
        // Frames are [N, C] or [N, C, H, W]; sequences [T, N, C] and [T, N, C, H, W] fold to
        // [T·N, C] and [T·N, C, H, W], so statistics run over time and batch (tdBN), per C.
        let frameRank = x.rank == 3 || x.rank == 5 ? x.rank - 1 : x.rank
        let (frames, unfold) = foldTime(x, frameRank: frameRank)
        if training { countBatch() }
        return unfold(batchNorm(frames, gamma: weight, beta: bias, runningMean: runningMean.value, runningVar: runningVar.value,
                                training: training, momentum: momentum, epsilon: epsilon))
    }

    /// This batch norm, plus `residual` when given, followed by the spiking neuron `neuron` over
    /// a sequence `[T, N, C, ...]`: in training mode one fused op that keeps only `x`, the batch
    /// statistics and the residual (as bytes when it holds spikes) for its backward pass
    /// (``batchNormNeuronScan(_:steps:gamma:beta:runningMean:runningVar:momentum:epsilon:residual:neuron:)``);
    /// in eval mode the ops in turn.
    public func thenNeuron(_ x: Tensor, _ neuron: NeuronParameters, residual: Tensor? = nil) -> Tensor {
        guard training, x.rank >= 3 else {
            let y = forward(x)
            return neuronScan(residual.map { y + $0 } ?? y, neuron)
        }
        countBatch()
        let (t, n) = (x.shape[0], x.shape[1])
        let frames = x.reshaped([t * n] + x.shape[2...])
        let spikes = batchNormNeuronScan(frames, steps: t, gamma: weight, beta: bias, runningMean: runningMean.value,
                                         runningVar: runningVar.value, momentum: momentum, epsilon: epsilon,
                                         residual: residual?.reshaped(frames.shape), neuron: neuron)
        return spikes.reshaped(x.shape)
    }

    /// Counts a training batch on the device (no read-back to the host).
    private func countBatch() {
        withoutGradients { numBatchesTracked.value.assign(numBatchesTracked.value + 1) }
    }
}

/// Max or average pooling of frames or of every frame of a sequence.
public final class Pool2d: Module {
    public let config: Pool2dParameters

    public init(_ kind: Pool2dParameters.Kind, kernel: Int, stride: Int? = nil, padding: Int = 0) {
        config = Pool2dParameters(kind, kernel: (kernel, kernel), stride: stride.map { ($0, $0) }, padding: (padding, padding))
    }

    public override func childKey(_ property: String) -> String? { nil }

    public override func forward(_ x: Tensor) -> Tensor {
        let (frames, unfold) = foldTime(x, frameRank: 4)
        return unfold(pool2d(frames, config))
    }
}

/// Inverted dropout, active in training mode only.
public final class Dropout: Module {
    public let probability: Double
    /// The mask stream; its position is saved in checkpoints so a resumed run draws the same masks.
    public let generator: RandomGenerator

    public init(_ probability: Double, generator: RandomGenerator) {
        precondition(probability >= 0 && probability < 1, "[Dropout] expected 0 <= p < 1, got \(probability)")
        self.probability = probability
        self.generator = generator
    }

    public override func childKey(_ property: String) -> String? { nil }

    public override func forward(_ x: Tensor) -> Tensor { dropout(x, p: probability, training: training, generator: generator) }
}

/// Applies its modules in order (PyTorch's `nn.Sequential`; keys `0`, `1`, ...).
public final class Sequential: Module {
    public var layers: [Module]

    public init(_ layers: [Module]) { self.layers = layers }

    /// Children are keyed by index directly under this module.
    public override func childKey(_ property: String) -> String? { property == "layers" ? "" : property }

    public override func forward(_ x: Tensor) -> Tensor { layers.reduce(x) { $1($0) } }
}

/// Flattens each frame of a sequence from the channel dimension on: `[T, N, C, H, W] -> [T, N, C·H·W]`.
public final class Flatten: Module {
    public override func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 3, "[Flatten] expected a [T, N, ...] sequence, got \(ShapeUtil.describe(x.shape))")
        return x.flattened(from: 2)
    }
}

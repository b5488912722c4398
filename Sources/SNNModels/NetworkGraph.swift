import SNNLayers
import SNNSpiking
import SNNTensor

/// A network as a dataflow graph of its per-timestep operations in evaluation mode, for
/// exporters (`snn export --format nir`).
///
/// Every node computes one value per sample and timestep from the values of its inputs, in the
/// order of ``nodes`` (inputs come first). Dropout is the identity in evaluation and has no node;
/// batch norm rides on the convolution it follows, with its running statistics.
public struct NetworkGraph {
    /// Batch norm in evaluation mode: `y = (x - mean) / sqrt(variance + epsilon) · gamma + beta`.
    public struct BatchNormState {
        public let gamma: [Float], beta: [Float], mean: [Float], variance: [Float]
        public let epsilon: Double
    }

    public enum Operation {
        /// One input frame (or, for event data, one frame of the sequence) per timestep.
        case input
        /// A 2-D convolution, square stride and padding, optionally followed by batch norm.
        case conv(weight: Tensor, bias: Tensor?, batchNorm: BatchNormState?, stride: Int, padding: Int)
        /// A layer of LIF neurons with the input's shape.
        case neuron(NeuronParameters)
        /// Max or average pooling (average pooling counts padded zeros).
        case pool(Pool2dParameters)
        /// `[C, H, W]` to `[C·H·W]`.
        case flatten
        /// `y = W x + b`.
        case linear(weight: Tensor, bias: Tensor?)
        /// The sum of the inputs (a residual connection).
        case sum
        /// `inputs[0] · inputs[1]` on spikes (SEW AND).
        case and
        /// `inputs[1] · (1 - inputs[0])` on spikes (SEW IAND: the shortcut and not the block's output).
        case andNot
    }

    public struct Node {
        /// Unique, of letters, digits and underscores: `layer3_conv1`.
        public let name: String
        public let operation: Operation
        /// The nodes whose values this one reads, in the operation's order.
        public let inputs: [String]
        /// The value's shape per sample and timestep: `[C, H, W]` or `[features]`.
        public let shape: [Int]
        /// The layer it comes from, for messages: `layers.3 (RES-128-3=3-1=1-1=1)`.
        public let layer: String
    }

    /// In evaluation order; the first is the input, the last the readout.
    public let nodes: [Node]
    /// Timesteps the network was built for.
    public let timesteps: Int

    /// The node named `name`.
    public func node(_ name: String) -> Node? { nodes.first { $0.name == name } }
}

extension SpikingNetwork {
    /// This network's dataflow graph in evaluation mode, with its current weights (read to the
    /// host) and batch-norm statistics.
    public func graph() -> NetworkGraph {
        var nodes: [NetworkGraph.Node] = []
        var layer = ""
        @discardableResult
        func add(_ name: String, _ op: NetworkGraph.Operation, _ inputs: [String], _ shape: [Int]) -> String {
            nodes.append(NetworkGraph.Node(name: name, operation: op, inputs: inputs, shape: shape, layer: layer))
            return name
        }
        func shapeOf(_ name: String) -> [Int] { nodes.first { $0.name == name }!.shape }
        /// A conv (+ BN) container: a bare Conv2d, or [Conv2d, BatchNorm] in a SeqToANN or Sequential.
        func convBN(_ module: Module, _ name: String, _ source: String) -> String {
            let parts: [Module]
            switch module {
            case let c as SeqToANN: parts = c.single.map { [$0] } ?? c.list
            case let s as Sequential: parts = s.layers
            default: parts = [module]
            }
            guard let conv = parts.first as? Conv2d else { preconditionFailure("[NetworkGraph] expected a convolution in \(layer)") }
            precondition(conv.stride.0 == conv.stride.1 && conv.padding.0 == conv.padding.1 && conv.dilation == (1, 1) && conv.groups == 1,
                         "[NetworkGraph] expected square strides and paddings, no dilation or groups in \(layer)")
            let bn = (parts.count > 1 ? parts[1] as? BatchNorm : nil).map { b in
                NetworkGraph.BatchNormState(gamma: floats(b.weight), beta: floats(b.bias), mean: floats(b.runningMean.value),
                                            variance: floats(b.runningVar.value), epsilon: b.epsilon)
            }
            let input = shapeOf(source)
            let (k, s, p) = (conv.weight.shape[2], conv.stride.0, conv.padding.0)
            let out = [conv.weight.shape[0], outputSize(input[1], k, s, p), outputSize(input[2], conv.weight.shape[3], s, p)]
            return add(name, .conv(weight: host(conv.weight), bias: conv.bias.map(host), batchNorm: bn, stride: s, padding: p), [source], out)
        }
        func lif(_ neuron: LIF, _ name: String, _ inputs: [String]) -> String {
            add(name, .neuron(neuron.neuron), inputs, shapeOf(inputs[0]))
        }

        var current = add("input", .input, [], config.inputShape)
        for (i, module) in layers.enumerated() {
            layer = "layers.\(i)"
            if let row = summary.first(where: { $0.index == i }) { layer += " (\(row.token))" }
            let prefix = "layer\(i)"
            switch module {
            case let block as ConvBlock:
                current = convBN(block.convBN, "\(prefix)_conv", current)
                current = lif(block.lif, "\(prefix)_lif", [current])
                if let pool = block.pool {
                    let input = shapeOf(current)
                    let c = pool.config
                    let out = [input[0], outputSize(input[1], c.kernelH, c.strideH, c.padH), outputSize(input[2], c.kernelW, c.strideW, c.padW)]
                    current = add("\(prefix)_pool", .pool(c), [current], out)
                }
            case let block as ResidualBlock:
                let x = current
                current = convBN(block.conv1, "\(prefix)_conv1", x)
                let hidden = lif(block.lif1, "\(prefix)_lif1", [current])
                var identity = x
                if let down = block.downsample {
                    if let spiking = down as? Sequential, spiking.layers.count == 2, let neuron = spiking.layers[1] as? LIF {
                        identity = convBN(spiking.layers[0], "\(prefix)_downsample", x)
                        identity = lif(neuron, "\(prefix)_downsample_lif", [identity])
                    } else {
                        identity = convBN(down, "\(prefix)_downsample", x)
                    }
                }
                let branch = convBN(block.conv2, "\(prefix)_conv2", hidden)
                let shape = shapeOf(branch)
                switch block.connect {
                case nil:
                    current = lif(block.lif2, "\(prefix)_lif2", [branch, identity])
                case .add?:
                    let out = lif(block.lif2, "\(prefix)_lif2", [branch])
                    current = add("\(prefix)_add", .sum, [out, identity], shape)
                case .and?:
                    let out = lif(block.lif2, "\(prefix)_lif2", [branch])
                    current = add("\(prefix)_and", .and, [out, identity], shape)
                case .iand?:
                    let out = lif(block.lif2, "\(prefix)_lif2", [branch])
                    current = add("\(prefix)_iand", .andNot, [out, identity], shape)
                }
                if block.poolToOne {
                    let c = Pool2dParameters(.average, kernel: (shape[1], shape[2]))
                    current = add("\(prefix)_pool", .pool(c), [current], [shape[0], 1, 1])
                }
            case is Flatten:
                current = add("layer\(i)_flatten", .flatten, [current], [shapeOf(current).reduce(1, *)])
            case let block as FCBlock:
                guard let linear = block.fc.single as? Linear else { preconditionFailure("[NetworkGraph] expected a linear layer in \(layer)") }
                current = add("\(prefix)_fc", .linear(weight: host(linear.weight), bias: linear.bias.map(host)), [current], [linear.weight.shape[0]])
                current = lif(block.lif, "\(prefix)_lif", [current])
            case let readout as SeqToANN:
                guard let linear = readout.single as? Linear else { preconditionFailure("[NetworkGraph] expected the linear readout in \(layer)") }
                current = add("\(prefix)_readout", .linear(weight: host(linear.weight), bias: linear.bias.map(host)), [current], [linear.weight.shape[0]])
            default:
                preconditionFailure("[NetworkGraph] no graph node for \(type(of: module)) in \(layer)")
            }
        }
        return NetworkGraph(nodes: nodes, timesteps: config.timesteps)
    }
}

private func host(_ t: Tensor) -> Tensor { withoutGradients { Tensor(t.toFloats(), shape: t.shape) } }
private func floats(_ t: Tensor) -> [Float] { t.toFloats() }

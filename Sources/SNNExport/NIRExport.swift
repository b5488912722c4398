import Foundation
import SNNModels
import SNNTensor

/// A layer NIR cannot express with these options; the message names the layer.
public struct NIRExportError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Maps a network's evaluation-mode graph to NIR (README, "snn export"):
///
/// - Conv2d + tdBN → one `Conv2d`, batch norm folded with its running statistics.
/// - The discrete LIF neuron `h = v/τ + x`, spike if `h > v_th`, hard reset → NIR `LIF` as the
///   exact forward-Euler step at `dt`: β = 1/τ, `tau = dt/(1 − β)`, `r = 1/(1 − β)`,
///   `v_leak = 0`; τ = 1 (no leak) → `IF` with `r = 1/dt`. Reset by subtraction has no NIR form.
/// - Max pooling of spikes → `SumPool2d` + `Threshold(0)`; average pooling → `AvgPool2d`.
/// - Flatten → `Flatten(start_dim 0)`; the readout → `Affine` → `Output`.
/// - Residual sums → edges into the same node (NIR adds fan-in); SEW AND → `Threshold(1.5)`
///   over both; SEW IAND → `Scale(−1)` on the block's output plus the shortcut into `Threshold(0.5)`.
///
/// `portable` keeps to the node types every importer maps (snnTorch's and SpikingJelly's have no
/// `Threshold`, `Scale` or `AvgPool2d`-free hardware paths): `Input`, `Output`, `Conv2d`, `Affine`,
/// `Flatten`, `LIF`/`IF` and unpadded `SumPool2d`, each replacement exact on the values it sees:
/// average pooling → `SumPool2d` with the next weights divided by the window; `Threshold(θ)` over
/// integer-valued inputs → a `LIF` with β = 2⁻¹⁰ and the threshold half-way between integers
/// (what it keeps from one step to the next is below 0.002, too little to cross it); `Scale(c)` →
/// a 1×1 `Conv2d` (or `Affine`) with weight c·I; padded `SumPool2d` → a `Conv2d` with a ones kernel
/// per channel.
public struct NIRExport {
    public struct Options {
        /// The time step the continuous-time parameters are derived for (seconds).
        public var dt: Double = 1e-4
        /// Write reset by subtraction as a hard reset to 0 (inexact) instead of refusing.
        public var allowInexact = false
        /// Only the node types every importer maps (see ``NIRExport``).
        public var portable = false
        /// Extra metadata (`source`, `topology`, ...).
        public var metadata: [(key: String, value: NIRGraph.Value)] = []
        public init() {}
    }

    /// The NIR graph of `network`.
    public static func graph(_ network: NetworkGraph, options: Options = Options()) throws -> NIRGraph {
        var builder = Builder(options: options)
        try builder.build(network)
        return builder.result(network)
    }
}

private struct Builder {
    let options: NIRExport.Options
    var nodes: [NIRGraph.Node] = []
    var edges: [(from: String, to: String)] = []
    /// The NIR nodes whose sum is each graph value (one node, or several for a residual sum).
    var sources: [String: [String]] = [:]
    /// Values that are spikes (0 or 1), so AND and max pooling have exact threshold forms.
    var binary: Set<String> = []
    /// `portable`: values that still need multiplying by a factor the next weights absorb.
    var pendingScale: [String: Double] = [:]
    /// Each graph value's shape.
    var shapes: [String: [Int]] = [:]
    var notes: [String] = []
    var inexact: [String] = []

    init(options: NIRExport.Options) { self.options = options }

    mutating func build(_ graph: NetworkGraph) throws {
        for node in graph.nodes {
            shapes[node.name] = node.shape
            let inputs = node.inputs
            switch node.operation {
            case .input:
                emit(NIRGraph.Node(node.name, "Input", [("shape", .integers(node.shape, shape: [node.shape.count]))]), from: [])
            case let .conv(weight, bias, bn, stride, padding):
                var w = weight.toFloats().map(Double.init)
                let co = weight.shape[0]
                var b = bias?.toFloats().map(Double.init) ?? [Double](repeating: 0, count: co)
                let perFilter = w.count / co
                if let bn {
                    for c in 0..<co {
                        let scale = Double(bn.gamma[c]) / (Double(bn.variance[c]) + bn.epsilon).squareRoot()
                        for i in (c * perFilter)..<((c + 1) * perFilter) { w[i] *= scale }
                        b[c] = (b[c] - Double(bn.mean[c])) * scale + Double(bn.beta[c])
                    }
                }
                // `portable`: the factor an average pooling before left for these weights.
                let input = inputs[0]
                if let factor = pendingScale[input] { w = w.map { $0 * factor } }
                emit(NIRGraph.Node(node.name, "Conv2d", conv2d(weight: w.map(Float.init), shape: weight.shape, bias: b.map(Float.init),
                                                                stride: (stride, stride), padding: (padding, padding),
                                                                inputShape: shapes[input] ?? [])), from: [input])
            case .neuron(let neuron):
                var resolvedInputs: [String] = []
                for i in inputs { resolvedInputs.append(resolved(i)) }
                try neuronNode(node, neuron, inputs: resolvedInputs)
            case .pool(let c):
                try pool(node, c)
            case .flatten:
                let input = inputs[0]
                if let f = pendingScale[input] { pendingScale[node.name] = f }
                emit(NIRGraph.Node(node.name, "Flatten", [
                    ("start_dim", .integer(0)), ("end_dim", .integer(-1)),
                    ("input_type", .integers(shapes[input] ?? [], shape: [(shapes[input] ?? []).count])),
                ]), from: [input])
            case let .linear(weight, bias):
                var w = weight.toFloats().map(Double.init)
                let input = inputs[0]
                if let factor = pendingScale[input] { w = w.map { $0 * factor } }
                let b = bias?.toFloats() ?? [Float](repeating: 0, count: weight.shape[0])
                emit(NIRGraph.Node(node.name, "Affine", [
                    ("weight", .floats(w.map(Float.init), shape: weight.shape)),
                    ("bias", .floats(b, shape: [weight.shape[0]])),
                ]), from: [input])
            case .sum:
                // No node: whoever reads the sum gets an edge from every term.
                var terms: [String] = []
                for i in inputs { terms += sources[resolved(i)] ?? [resolved(i)] }
                sources[node.name] = terms
            case .and:
                let (a, b) = (try spikes(inputs[0], node, "SEW AND"), try spikes(inputs[1], node, "SEW AND"))
                emitThreshold(node.name, 1.5, node.shape, from: [a, b])
                binary.insert(node.name)
            case .andNot:
                let (out, shortcut) = (try spikes(inputs[0], node, "SEW IAND"), try spikes(inputs[1], node, "SEW IAND"))
                let negated = "\(node.name)_negate"
                emitScale(negated, -1, node.shape, from: out)
                emitThreshold(node.name, 0.5, node.shape, from: [negated, shortcut])
                binary.insert(node.name)
            }
        }
    }

    func result(_ graph: NetworkGraph) -> NIRGraph {
        var nodes = self.nodes
        var edges = self.edges
        if let last = graph.nodes.last {
            nodes.append(NIRGraph.Node("output", "Output", [("shape", .integers(last.shape, shape: [last.shape.count]))]))
            for s in sources[last.name] ?? [last.name] { edges.append((s, "output")) }
        }
        var metadata: [(key: String, value: NIRGraph.Value)] = [
            ("producer", .string("SwiftSNN snn export")),
            ("dt", .number(options.dt)),
            ("integration", .string("forward-euler: the discrete neuron h_t = beta*v_{t-1} + x_t (beta = 1/tau_ref) is one forward-Euler step of the LIF at dt, tau = dt/(1-beta), r = 1/(1-beta), v_leak = 0; spike when v > v_threshold, then v = v_reset")),
            ("timesteps", .integer(graph.timesteps)),
            ("input", .string("one frame per timestep: a static image is fed at every step; event data one frame per step")),
            ("readout", .string("the Output node gives the readout at every step; the prediction is its average over the timesteps")),
        ]
        if !notes.isEmpty { metadata.append(("notes", .string(notes.joined(separator: "; ")))) }
        if !inexact.isEmpty { metadata.append(("inexact", .string(inexact.joined(separator: "; ")))) }
        metadata += options.metadata
        return NIRGraph(nodes: nodes, edges: edges, metadata: metadata)
    }

    private mutating func emit(_ node: NIRGraph.Node, from inputs: [String]) {
        nodes.append(node)
        for i in inputs { for s in sources[i] ?? [i] { edges.append((s, node.name)) } }
    }

    /// A `Conv2d` node's fields (no dilation, one group).
    private func conv2d(weight: [Float], shape: [Int], bias: [Float], stride: (Int, Int), padding: (Int, Int),
                        inputShape: [Int]) -> [(key: String, value: NIRGraph.Value)] {
        [("weight", .floats(weight, shape: shape)), ("bias", .floats(bias, shape: [shape[0]])),
         ("stride", .integers([stride.0, stride.1], shape: [2])), ("padding", .integers([padding.0, padding.1], shape: [2])),
         ("dilation", .integers([1, 1], shape: [2])), ("groups", .integer(1)),
         ("input_shape", .integers(Array(inputShape.suffix(2)), shape: [2]))]
    }

    /// A pooling node's fields.
    private func poolFields(_ c: Pool2dParameters) -> [(key: String, value: NIRGraph.Value)] {
        [("kernel_size", .integers([c.kernelH, c.kernelW], shape: [2])), ("stride", .integers([c.strideH, c.strideW], shape: [2])),
         ("padding", .integers([c.padH, c.padW], shape: [2]))]
    }

    /// `Threshold(θ)` over integer-valued inputs (spike counts and their differences); with
    /// `portable`, a LIF of almost no memory firing half-way between integers.
    private mutating func emitThreshold(_ name: String, _ theta: Float, _ shape: [Int], from inputs: [String]) {
        let count = shape.reduce(1, *)
        func full(_ v: Double) -> NIRGraph.Value { .floats(.init(repeating: Float(v), count: count), shape: shape) }
        guard options.portable else {
            emit(NIRGraph.Node(name, "Threshold", [("threshold", full(Double(theta)))]), from: inputs)
            return
        }
        let beta = 1.0 / 1024
        let halfway = (Double(theta) - 0.5).rounded(.up) + 0.5  // θ = 0 → 0.5; 0.5 and 1.5 stay
        emit(NIRGraph.Node(name, "LIF", [
            ("tau", full(options.dt / (1 - beta))), ("r", full(1 / (1 - beta))), ("v_leak", full(0)),
            ("v_threshold", full(halfway)), ("v_reset", full(0)),
        ]), from: inputs)
    }

    /// `Scale(c)`; with `portable`, a 1×1 `Conv2d` (or an `Affine`) with weight c·I.
    private mutating func emitScale(_ name: String, _ factor: Double, _ shape: [Int], from input: String) {
        let count = shape.reduce(1, *)
        guard options.portable else {
            emit(NIRGraph.Node(name, "Scale", [("scale", .floats(.init(repeating: Float(factor), count: count), shape: shape))]), from: [input])
            return
        }
        let c = shape[0]
        var identity = [Float](repeating: 0, count: c * c)
        for i in 0..<c { identity[i * c + i] = Float(factor) }
        if shape.count == 3 {
            emit(NIRGraph.Node(name, "Conv2d", conv2d(weight: identity, shape: [c, c, 1, 1], bias: .init(repeating: 0, count: c),
                                                       stride: (1, 1), padding: (0, 0), inputShape: shape)), from: [input])
        } else {
            emit(NIRGraph.Node(name, "Affine", [
                ("weight", .floats(identity, shape: [c, c])), ("bias", .floats(.init(repeating: 0, count: c), shape: [c])),
            ]), from: [input])
        }
    }

    /// `SumPool2d`; with `portable` and padding, a `Conv2d` with a ones kernel per channel
    /// (importers drop a sum pool's padding).
    private mutating func emitSumPool(_ name: String, _ c: Pool2dParameters, inputShape: [Int], from input: String) {
        guard options.portable && (c.padH > 0 || c.padW > 0) else {
            emit(NIRGraph.Node(name, "SumPool2d", poolFields(c)), from: [input])
            return
        }
        let channels = inputShape[0]
        let window = c.kernelH * c.kernelW
        var weight = [Float](repeating: 0, count: channels * channels * window)
        for ch in 0..<channels { for k in 0..<window { weight[(ch * channels + ch) * window + k] = 1 } }
        emit(NIRGraph.Node(name, "Conv2d", conv2d(weight: weight, shape: [channels, channels, c.kernelH, c.kernelW],
                                                   bias: .init(repeating: 0, count: channels), stride: (c.strideH, c.strideW),
                                                   padding: (c.padH, c.padW), inputShape: inputShape)), from: [input])
    }

    /// `name`, or when `portable` left a factor on it that no weights absorb, a `Scale` node
    /// applying it (made once).
    private mutating func resolved(_ name: String) -> String {
        guard let factor = pendingScale[name] else { return name }
        let scaled = "\(name)_scale"
        if !nodes.contains(where: { $0.name == scaled }) { emitScale(scaled, factor, shapes[name] ?? [], from: name) }
        return scaled
    }

    /// A single binary NIR value, for SEW AND and IAND.
    private func spikes(_ name: String, _ node: NetworkGraph.Node, _ what: String) throws -> String {
        let s = sources[name] ?? [name]
        guard s.count == 1, binary.contains(s[0]) else {
            throw NIRExportError("\(node.layer): \(what) of a value that is not a single spike train (a sum or pooled values) has no exact NIR form")
        }
        return s[0]
    }

    private mutating func neuronNode(_ node: NetworkGraph.Node, _ neuron: NeuronParameters, inputs: [String]) throws {
        let count = node.shape.reduce(1, *)
        func full(_ v: Double) -> NIRGraph.Value { .floats(.init(repeating: Float(v), count: count), shape: node.shape) }
        var reset = 0.0
        switch neuron.reset {
        case .hard(let v): reset = v
        case .soft:
            guard options.allowInexact else {
                throw NIRExportError("\(node.layer): the neuron \(node.name) resets by subtraction (--v_reset below 0), which NIR's LIF cannot express (it resets to v_reset); pass --allow-inexact to write a hard reset to 0 instead (recorded in the file's metadata)")
            }
            inexact.append("\(node.name): reset by subtraction written as a hard reset to 0")
        }
        // The network spikes when the float32 potential exceeds v_th: when it exceeds the largest
        // float32 not above v_th, which is therefore the threshold to write (0.8 rounded to the
        // nearest float32 lies above 0.8, and a potential equal to it would spike here only).
        var bound = Float(neuron.threshold)
        if Double(bound) > neuron.threshold { bound = bound.nextDown }
        let threshold = NIRGraph.Value.floats(.init(repeating: bound, count: count), shape: node.shape)
        let beta = neuron.decay
        if beta == 1 {
            emit(NIRGraph.Node(node.name, "IF", [
                ("r", full(1 / options.dt)), ("v_threshold", full(neuron.threshold)), ("v_reset", full(reset)),
            ]), from: inputs)
        } else {
            emit(NIRGraph.Node(node.name, "LIF", [
                ("tau", full(options.dt / (1 - beta))), ("r", full(1 / (1 - beta))), ("v_leak", full(0)),
                ("v_threshold", threshold), ("v_reset", full(reset)),
            ]), from: inputs)
        }
        binary.insert(node.name)
    }

    private mutating func pool(_ node: NetworkGraph.Node, _ c: Pool2dParameters) throws {
        let input = resolved(node.inputs[0])
        let inputShape = shapes[node.inputs[0]] ?? []
        switch c.kind {
        case .max:
            let source = try spikes(input, node, "max pooling")
            let sum = "\(node.name)_sum"
            emitSumPool(sum, c, inputShape: inputShape, from: source)
            emitThreshold(node.name, 0, node.shape, from: [sum])
            binary.insert(node.name)
        case .average where options.portable:
            emitSumPool(node.name, c, inputShape: inputShape, from: input)
            pendingScale[node.name] = 1 / Double(c.kernelH * c.kernelW)
        case .average:
            emit(NIRGraph.Node(node.name, "AvgPool2d", poolFields(c)), from: [input])
        }
    }
}

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
/// - Max pooling of spikes → `SumPool2d` + `Threshold(0)`; average pooling → `AvgPool2d`, or
///   with `portable` `SumPool2d` with the next layer's weights divided by the window size.
/// - Flatten → `Flatten(start_dim 0)`; the readout → `Affine` → `Output`.
/// - Residual sums → edges into the same node (NIR adds fan-in); SEW AND → `Threshold(1.5)`
///   over both; SEW IAND → `Scale(−1)` on the block's output plus the shortcut into `Threshold(0.5)`.
public struct NIRExport {
    public struct Options {
        /// The time step the continuous-time parameters are derived for (seconds).
        public var dt: Double = 1e-4
        /// Write reset by subtraction as a hard reset to 0 (inexact) instead of refusing.
        public var allowInexact = false
        /// Average pooling as `SumPool2d` with the following weights scaled, for consumers
        /// without `AvgPool2d`.
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
                let (input, factor) = try absorbScale(inputs[0], node)
                if factor != 1 { w = w.map { $0 * factor } }
                let inShape = shape(of: input, graph)
                emit(NIRGraph.Node(node.name, "Conv2d", [
                    ("weight", .floats(w.map(Float.init), shape: weight.shape)),
                    ("bias", .floats(b.map(Float.init), shape: [co])),
                    ("stride", .integers([stride, stride], shape: [2])),
                    ("padding", .integers([padding, padding], shape: [2])),
                    ("dilation", .integers([1, 1], shape: [2])),
                    ("groups", .integer(1)),
                    ("input_shape", .integers(Array(inShape.suffix(2)), shape: [2])),
                ]), from: [input])
            case .neuron(let neuron):
                var resolvedInputs: [String] = []
                for i in inputs { resolvedInputs.append(resolved(i)) }
                try neuronNode(node, neuron, inputs: resolvedInputs)
            case .pool(let c):
                try pool(node, c, graph)
            case .flatten:
                let input = inputs[0]
                if let f = pendingScale[input] { pendingScale[node.name] = f }
                emit(NIRGraph.Node(node.name, "Flatten", [
                    ("start_dim", .integer(0)), ("end_dim", .integer(-1)),
                    ("input_type", .integers(shape(of: input, graph), shape: [shape(of: input, graph).count])),
                ]), from: [input])
            case let .linear(weight, bias):
                var w = weight.toFloats().map(Double.init)
                let (input, factor) = try absorbScale(inputs[0], node)
                if factor != 1 { w = w.map { $0 * factor } }
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
                emit(thresholdNode(node.name, 1.5, node.shape), from: [a, b])
                binary.insert(node.name)
            case .andNot:
                let (out, shortcut) = (try spikes(inputs[0], node, "SEW IAND"), try spikes(inputs[1], node, "SEW IAND"))
                let negated = "\(node.name)_negate"
                emit(NIRGraph.Node(negated, "Scale", [("scale", .floats(.init(repeating: -1, count: node.shape.reduce(1, *)), shape: node.shape))]),
                     from: [out])
                emit(thresholdNode(node.name, 0.5, node.shape), from: [negated, shortcut])
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

    private func shape(of name: String, _ graph: NetworkGraph) -> [Int] { shapes[name] ?? [] }

    private func thresholdNode(_ name: String, _ value: Float, _ shape: [Int]) -> NIRGraph.Node {
        NIRGraph.Node(name, "Threshold", [("threshold", .floats(.init(repeating: value, count: shape.reduce(1, *)), shape: shape))])
    }

    /// `name`, or when `portable` left a factor on it that no weights absorb, a `Scale` node
    /// applying it (made once).
    private mutating func resolved(_ name: String) -> String {
        guard let factor = pendingScale[name] else { return name }
        let scaled = "\(name)_scale"
        if !nodes.contains(where: { $0.name == scaled }) {
            let shape = shapes[name] ?? []
            emit(NIRGraph.Node(scaled, "Scale", [("scale", .floats(.init(repeating: Float(factor), count: shape.reduce(1, *)), shape: shape))]),
                 from: [name])
        }
        return scaled
    }

    /// The input and the factor the reading layer's weights take for it (`portable`).
    private func absorbScale(_ name: String, _ node: NetworkGraph.Node) throws -> (String, Double) {
        (name, pendingScale[name] ?? 1)
    }

    /// A single binary NIR value, for SEW AND and IAND.
    private func spikes(_ name: String, _ node: NetworkGraph.Node, _ what: String) throws -> String {
        guard let s = sources[name] ?? Optional([name]), s.count == 1, binary.contains(s[0]) else {
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
        let beta = neuron.decay
        if beta == 1 {
            emit(NIRGraph.Node(node.name, "IF", [
                ("r", full(1 / options.dt)), ("v_threshold", full(neuron.threshold)), ("v_reset", full(reset)),
            ]), from: inputs)
        } else {
            emit(NIRGraph.Node(node.name, "LIF", [
                ("tau", full(options.dt / (1 - beta))), ("r", full(1 / (1 - beta))), ("v_leak", full(0)),
                ("v_threshold", full(neuron.threshold)), ("v_reset", full(reset)),
            ]), from: inputs)
        }
        binary.insert(node.name)
    }

    private mutating func pool(_ node: NetworkGraph.Node, _ c: Pool2dParameters, _ graph: NetworkGraph) throws {
        let fields: [(key: String, value: NIRGraph.Value)] = [
            ("kernel_size", .integers([c.kernelH, c.kernelW], shape: [2])),
            ("stride", .integers([c.strideH, c.strideW], shape: [2])),
            ("padding", .integers([c.padH, c.padW], shape: [2])),
        ]
        let input = resolved(node.inputs[0])
        switch c.kind {
        case .max:
            let source = try spikes(input, node, "max pooling")
            let sum = "\(node.name)_sum"
            emit(NIRGraph.Node(sum, "SumPool2d", fields), from: [source])
            emit(thresholdNode(node.name, 0, node.shape), from: [sum])
            binary.insert(node.name)
        case .average where options.portable:
            emit(NIRGraph.Node(node.name, "SumPool2d", fields), from: [input])
            pendingScale[node.name] = 1 / Double(c.kernelH * c.kernelW)
        case .average:
            emit(NIRGraph.Node(node.name, "AvgPool2d", fields), from: [input])
        }
    }
}

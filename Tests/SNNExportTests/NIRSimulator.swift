import SNNExport

/// A small, independent executor of NIR graphs with NIR's own semantics, in Double: each step,
/// nodes run after the nodes they read; a node's input is the sum of its incoming edges;
/// `LIF` integrates `tau·dv/dt = (v_leak − v) + r·I` by one forward-Euler step of `dt`, spikes
/// when `v > v_threshold` and then sets `v = v_reset`; `IF` integrates `dv/dt = r·I`.
///
/// It reads only the graph, never SwiftSNN's layers, so agreement with the network's forward
/// pass checks the export's mapping (folded batch norm, neuron parameters, pooling, fan-in).
struct NIRSimulator {
    let graph: NIRGraph
    let dt: Double
    let order: [NIRGraph.Node]
    let incoming: [String: [String]]
    let shapes: [String: [Int]]

    init(_ graph: NIRGraph, dt: Double) {
        self.graph = graph
        self.dt = dt
        order = graph.topologicalOrder()
        incoming = Dictionary(grouping: graph.edges, by: \.to).mapValues { $0.map(\.from) }
        shapes = graph.outputShapes()
    }

    /// Spikes counted over the run, per spiking node: (ones, values).
    var spikeCounts: [String: (ones: Int, total: Int)] = [:]

    /// Runs `frames` (one flattened input frame per step) from rest; returns the output per step.
    mutating func run(_ frames: [[Double]]) -> [[Double]] {
        var potentials: [String: [Double]] = [:]
        var outputs: [[Double]] = []
        for frame in frames {
            var values: [String: [Double]] = [:]
            for node in order {
                let inputs = (incoming[node.name] ?? []).map { values[$0]! }
                var x = inputs.first.map { [Double](repeating: 0, count: $0.count) } ?? []
                for v in inputs { for i in 0..<v.count { x[i] += v[i] } }
                let y: [Double]
                switch node.type {
                case "Input": y = frame
                case "Output", "Flatten": y = x
                case "Conv2d": y = conv(node, x)
                case "Affine":
                    let (w, shape) = floats(node, "weight")
                    let b = floats(node, "bias").0
                    y = (0..<shape[0]).map { o in (0..<shape[1]).reduce(b[o]) { $0 + w[o * shape[1] + $1] * x[$1] } }
                case "LIF", "IF":
                    var v = potentials[node.name] ?? [Double](repeating: 0, count: x.count)
                    let r = floats(node, "r").0, threshold = floats(node, "v_threshold").0, reset = floats(node, "v_reset").0
                    var s = [Double](repeating: 0, count: x.count)
                    for i in 0..<x.count {
                        if node.type == "LIF" {
                            let tau = floats(node, "tau").0[i], leak = floats(node, "v_leak").0[i]
                            v[i] += dt / tau * (leak - v[i] + r[i] * x[i])
                        } else {
                            v[i] += dt * r[i] * x[i]
                        }
                        if v[i] > threshold[i] { s[i] = 1; v[i] = reset[i] }
                    }
                    potentials[node.name] = v
                    let ones = s.filter { $0 == 1 }.count
                    let c = spikeCounts[node.name] ?? (0, 0)
                    spikeCounts[node.name] = (c.ones + ones, c.total + s.count)
                    y = s
                case "Threshold":
                    let t = floats(node, "threshold").0
                    y = (0..<x.count).map { x[$0] > t[$0] ? 1 : 0 }
                case "Scale":
                    let s = floats(node, "scale").0
                    y = (0..<x.count).map { x[$0] * s[$0] }
                case "SumPool2d", "AvgPool2d":
                    y = pool(node, x, average: node.type == "AvgPool2d")
                default:
                    preconditionFailure("NIRSimulator: no \(node.type)")
                }
                values[node.name] = y
            }
            outputs.append(values[graph.nodes.first { $0.type == "Output" }!.name]!)
        }
        return outputs
    }

    private func floats(_ node: NIRGraph.Node, _ key: String) -> ([Double], [Int]) {
        guard let v = node[key] else { preconditionFailure("NIRSimulator: \(node.name) has no \(key)") }
        return (v.numbers!, v.shape)
    }

    private func ints(_ node: NIRGraph.Node, _ key: String) -> [Int] { node[key]!.numbers!.map { Int($0) } }

    private func inputShape(_ node: NIRGraph.Node) -> [Int] { shapes[incoming[node.name]![0]]! }

    private func conv(_ node: NIRGraph.Node, _ x: [Double]) -> [Double] {
        let (w, ws) = floats(node, "weight")
        let b = floats(node, "bias").0
        let (s, p, d) = (ints(node, "stride"), ints(node, "padding"), ints(node, "dilation"))
        let input = inputShape(node)
        let out = shapes[node.name]!
        var y = [Double](repeating: 0, count: out.reduce(1, *))
        for o in 0..<ws[0] {
            for oy in 0..<out[1] {
                for ox in 0..<out[2] {
                    var acc = b[o]
                    for c in 0..<ws[1] {
                        for ky in 0..<ws[2] {
                            let iy = oy * s[0] - p[0] + ky * d[0]
                            guard iy >= 0 && iy < input[1] else { continue }
                            for kx in 0..<ws[3] {
                                let ix = ox * s[1] - p[1] + kx * d[1]
                                guard ix >= 0 && ix < input[2] else { continue }
                                acc += w[((o * ws[1] + c) * ws[2] + ky) * ws[3] + kx] * x[(c * input[1] + iy) * input[2] + ix]
                            }
                        }
                    }
                    y[(o * out[1] + oy) * out[2] + ox] = acc
                }
            }
        }
        return y
    }

    private func pool(_ node: NIRGraph.Node, _ x: [Double], average: Bool) -> [Double] {
        let (k, s, p) = (ints(node, "kernel_size"), ints(node, "stride"), ints(node, "padding"))
        let input = inputShape(node)
        let out = shapes[node.name]!
        var y = [Double](repeating: 0, count: out.reduce(1, *))
        for c in 0..<out[0] {
            for oy in 0..<out[1] {
                for ox in 0..<out[2] {
                    var acc = 0.0
                    for ky in 0..<k[0] {
                        let iy = oy * s[0] - p[0] + ky
                        guard iy >= 0 && iy < input[1] else { continue }
                        for kx in 0..<k[1] {
                            let ix = ox * s[1] - p[1] + kx
                            guard ix >= 0 && ix < input[2] else { continue }
                            acc += x[(c * input[1] + iy) * input[2] + ix]
                        }
                    }
                    y[(c * out[1] + oy) * out[2] + ox] = average ? acc / Double(k[0] * k[1]) : acc
                }
            }
        }
        return y
    }
}

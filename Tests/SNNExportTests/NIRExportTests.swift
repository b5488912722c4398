import Foundation
import SNNCPU
import SNNExport
import SNNLayers
import SNNModels
import SNNTensor
import Testing

@Suite("NIR export")
struct NIRExportTests {
    init() { CPUBackend.register() }

    /// A network with random weights and random batch-norm statistics (so folding shows).
    static func network(_ topology: String, input: [Int] = [2, 8, 8], timesteps: Int = 4, classes: Int = 3,
                        batchNorm: Bool = true, neuron: NeuronParameters = NeuronParameters(), seed: UInt64 = 7) throws -> SpikingNetwork {
        let config = ModelConfig(timesteps: timesteps, inputShape: input, batchNorm: batchNorm, neuron: neuron)
        let net = try SpikingNetwork(topology, classes: classes, config: config, generator: RandomGenerator(seed: seed))
        var g = SplitMix(seed: seed)
        func random(_ n: Int, _ range: ClosedRange<Float>) -> [Float] { (0..<n).map { _ in Float.random(in: range, using: &g) } }
        for (_, module) in net.namedModules() {
            // Linear layers with PyTorch's default init hardly drive an FC neuron to fire.
            if let linear = module as? Linear {
                linear.weight.assign(Tensor(random(linear.weight.count, -1.5...1.5), shape: linear.weight.shape))
            }
            guard let bn = module as? BatchNorm else { continue }
            let c = bn.weight.count
            // Shifted up so that every layer, however sparse its input, fires now and then.
            bn.weight.assign(Tensor(random(c, 0.8...1.6), shape: [c]))
            bn.bias.assign(Tensor(random(c, 0.2...0.9), shape: [c]))
            bn.runningMean.value.assign(Tensor(random(c, -0.3...0.3), shape: [c]))
            bn.runningVar.value.assign(Tensor(random(c, 0.5...1.5), shape: [c]))
        }
        net.eval()
        return net
    }

    /// The network's readout per step `[T][N][classes]`, and the simulator's on the exported,
    /// written and re-read graph; plus the simulator's spike rate of every spiking node.
    static func compare(_ net: SpikingNetwork, options: NIRExport.Options = NIRExport.Options(), staticInput: Bool = false,
                        samples: Int = 2) throws -> (maxDifference: Double, rates: [String: Double], graph: NIRGraph) {
        let (t, shape) = (net.config.timesteps, net.config.inputShape)
        let frame = shape.reduce(1, *)
        var g = SplitMix(seed: 99)
        let count = (staticInput ? 1 : t) * samples * frame
        let values = (0..<count).map { _ in Float.random(in: 0...2, using: &g) }
        let x = staticInput ? Tensor(values, shape: [samples] + shape) : Tensor(values, shape: [t, samples] + shape)
        let y = withoutGradients { net(x) }.toFloats()  // [T, N, classes]
        let classes = net.classes

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nir-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("net.nir").path
        try NIRExport.graph(net.graph(), options: options).write(to: path)
        let graph = try NIRGraph.read(path)
        var worst = 0.0
        var sim = NIRSimulator(graph, dt: options.dt)
        for n in 0..<samples {
            let frames: [[Double]] = (0..<t).map { step in
                let start = staticInput ? n * frame : (step * samples + n) * frame
                return values[start..<(start + frame)].map(Double.init)
            }
            let out = sim.run(frames)
            for step in 0..<t {
                for c in 0..<classes {
                    worst = max(worst, abs(out[step][c] - Double(y[(step * samples + n) * classes + c])))
                }
            }
        }
        let rates = sim.spikeCounts.mapValues { Double($0.ones) / Double(max($0.total, 1)) }
        // Every neuron layer both fired and stayed silent somewhere, or the comparison proves little.
        for (name, rate) in rates { #expect(rate > 0.002 && rate < 0.998, "spike rate of \(name): \(rate)") }
        return (worst, rates, graph)
    }

    static func types(_ g: NIRGraph) -> [String: String] { Dictionary(uniqueKeysWithValues: g.nodes.map { ($0.name, $0.type) }) }
    static func sources(_ g: NIRGraph, _ name: String) -> Set<String> { Set(g.edges.filter { $0.to == name }.map(\.from)) }

    @Test("a plain conv network: the exported graph computes what the network computes", arguments: [false, true])
    func plainNetwork(portable: Bool) throws {
        let net = try NIRExportTests.network("CONV-4-3-1-1_CONVAP-4-3-1-1_FC-8_L-3")
        var options = NIRExport.Options()
        options.portable = portable
        let (difference, rates, graph) = try NIRExportTests.compare(net, options: options)
        #expect(difference < 1e-4, "max |Δ| \(difference)")
        #expect(Set(rates.keys) == (portable ? ["layer0_lif", "layer0_pool", "layer1_lif", "layer3_lif"] : ["layer0_lif", "layer1_lif", "layer3_lif"]))
        let types = NIRExportTests.types(graph)
        #expect(types["layer0_conv"] == "Conv2d" && types["layer0_lif"] == "LIF")
        #expect(types["layer0_pool_sum"] == "SumPool2d" && types["layer0_pool"] == (portable ? "LIF" : "Threshold"))
        #expect(types["layer1_pool"] == (portable ? "SumPool2d" : "AvgPool2d"))
        #expect(types["layer2_flatten"] == "Flatten" && types["layer3_fc"] == "Affine" && types["layer4_readout"] == "Affine")
        #expect(types["input"] == "Input" && types["output"] == "Output")
        #expect(graph.edges.count == graph.nodes.count - 1)
    }

    @Test("residual blocks: the shortcut is an edge into the second neuron; a projection is a folded Conv2d")
    func residualBlocks() throws {
        let net = try NIRExportTests.network("CONVNP-4-3-1-1_RES-4-3=3-1=1-1=1_RES-6-3=3-2=1-1=1_L-3")
        let (difference, _, graph) = try NIRExportTests.compare(net)
        #expect(difference < 1e-4, "max |Δ| \(difference)")
        #expect(NIRExportTests.sources(graph, "layer1_lif2") == ["layer1_conv2", "layer0_lif"])
        #expect(NIRExportTests.sources(graph, "layer2_lif2") == ["layer2_conv2", "layer2_downsample"])
        #expect(NIRExportTests.types(graph)["layer2_downsample"] == "Conv2d")
        #expect(NIRExportTests.types(graph)["layer2_pool"] == "AvgPool2d")
        #expect(graph.node("layer2_downsample")?["weight"]?.shape == [6, 4, 1, 1])
    }

    @Test("SEW ADD is fan-in into whatever reads the block; AND and IAND are thresholds")
    func sewBlocks() throws {
        let add = try NIRExportTests.network("CONVNP-4-3-1-1_SEWRES~ADD-4-3=3-1=1-1=1_SEWRES~ADD-4-3=3-1=1-1=1_L-3")
        let (d1, _, g1) = try NIRExportTests.compare(add)
        #expect(d1 < 1e-4, "max |Δ| \(d1)")
        // The second block reads the first's sum: its conv gets both terms, and its own sum
        // (read by the pooling) has three.
        #expect(NIRExportTests.sources(g1, "layer2_conv1") == ["layer1_lif2", "layer0_lif"])
        #expect(NIRExportTests.sources(g1, "layer2_pool") == ["layer2_lif2", "layer1_lif2", "layer0_lif"])

        let logic = try NIRExportTests.network("CONVNP-4-3-1-1_SEWRES~AND-4-3=3-1=1-1=1_SEWRES~IAND-6-3=3-2=1-1=1_L-3")
        let (d2, _, g2) = try NIRExportTests.compare(logic)
        #expect(d2 < 1e-4, "max |Δ| \(d2)")
        let types = NIRExportTests.types(g2)
        #expect(types["layer1_and"] == "Threshold" && g2.node("layer1_and")?["threshold"]?.numbers?.allSatisfy { $0 == 1.5 } == true)
        #expect(NIRExportTests.sources(g2, "layer1_and") == ["layer1_lif2", "layer0_lif"])
        #expect(types["layer2_iand_negate"] == "Scale" && NIRExportTests.sources(g2, "layer2_iand_negate") == ["layer2_lif2"])
        #expect(NIRExportTests.sources(g2, "layer2_iand") == ["layer2_iand_negate", "layer2_downsample_lif"])
        #expect(g2.node("layer2_iand")?["threshold"]?.numbers?.allSatisfy { $0 == 0.5 } == true)
    }

    @Test("--portable: only Input, Output, Conv2d, Affine, Flatten, LIF/IF and unpadded SumPool2d, computing the same", arguments: [
        "CONV-4-3-1-1-3-2-1_CONVAP-4-3-1-1_FC-8_L-3",
        "CONVNP-4-3-1-1_SEWRES~AND-4-3=3-1=1-1=1_SEWRES~IAND-6-3=3-2=1-1=1_L-3",
        "CONVNP-4-3-1-1_SEWRES~ADD-4-3=3-1=1-1=1_RES-6-3=3-2=1-1=1_L-3",
    ])
    func portable(_ topology: String) throws {
        let net = try NIRExportTests.network(topology)
        var options = NIRExport.Options()
        options.portable = true
        let (difference, _, graph) = try NIRExportTests.compare(net, options: options)
        #expect(difference < 1e-4, "max |Δ| \(difference)")
        let allowed: Set<String> = ["Input", "Output", "Conv2d", "Affine", "Flatten", "LIF", "IF", "SumPool2d"]
        for node in graph.nodes {
            #expect(allowed.contains(node.type), "\(node.name) is \(node.type)")
            if node.type == "SumPool2d" { #expect(node["padding"]?.numbers?.allSatisfy { $0 == 0 } == true, "\(node.name)") }
        }
    }

    @Test("v_threshold is the largest float32 not above the network's threshold (what its float32 test compares with)")
    func thresholdRounding() throws {
        let net = try NIRExportTests.network("CONVNP-2-3-1-1_L-2", neuron: NeuronParameters(threshold: 0.8))
        let written = try #require(try NIRExport.graph(net.graph()).node("layer0_lif")?["v_threshold"]?.numbers?.first)
        #expect(Float(written) == Float(0.8).nextDown)  // Float(0.8) lies above 0.8
        #expect(written < 0.8 && Double(Float(written).nextUp) > 0.8)
    }

    @Test("an encoder on static images, convolutions with biases (--norm No) and IF neurons (tau 1)")
    func encoderAndIF() throws {
        let net = try NIRExportTests.network("CONVEN-4-3-1-1_CONV-4-3-1-1_L-3", batchNorm: false, neuron: NeuronParameters(tau: 1))
        let (difference, _, graph) = try NIRExportTests.compare(net, staticInput: true)
        #expect(difference < 1e-4, "max |Δ| \(difference)")
        let neuron = try #require(graph.node("layer0_lif"))
        #expect(neuron.type == "IF")
        #expect(neuron["r"]?.numbers?.allSatisfy { abs($0 - 1e4) < 1e-2 } == true)
    }

    @Test("batch norm folds by hand: W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β")
    func foldByHand() throws {
        let net = try NIRExportTests.network("CONVNP-1-1-1-0_L-2", input: [1, 2, 2])
        let conv = net.namedParameters().first { $0.key.hasSuffix("module.0.weight") }!.value
        conv.assign(Tensor([2], shape: [1, 1, 1, 1]))
        let bn = net.namedModules().compactMap { $0.value as? BatchNorm }.first!
        bn.weight.assign(Tensor([3], shape: [1]))
        bn.bias.assign(Tensor([0.5], shape: [1]))
        bn.runningMean.value.assign(Tensor([1], shape: [1]))
        bn.runningVar.value.assign(Tensor([4 - 1e-5], shape: [1]))  // √(σ² + ε) = 2
        let graph = try NIRExport.graph(net.graph())
        let folded = try #require(graph.node("layer0_conv"))
        #expect(abs((folded["weight"]?.numbers?[0] ?? 0) - 3) < 1e-6)       // 2 · 3/2
        #expect(abs((folded["bias"]?.numbers?[0] ?? 0) - -1) < 1e-6)        // (0 − 1) · 3/2 + 0.5
    }

    @Test("the LIF mapping at dt: tau = dt/(1 − 1/τ), r = 1/(1 − 1/τ), full neuron shape")
    func lifMapping() throws {
        let net = try NIRExportTests.network("CONVNP-3-3-1-1_L-2", input: [1, 4, 5], neuron: NeuronParameters(tau: 4, threshold: 0.75, reset: .hard(0.25)))
        var options = NIRExport.Options()
        options.dt = 1e-3
        let lif = try #require(try NIRExport.graph(net.graph(), options: options).node("layer0_lif"))
        #expect(lif.type == "LIF")
        for key in ["tau", "r", "v_leak", "v_threshold", "v_reset"] { #expect(lif[key]?.shape == [3, 4, 5], "\(key)") }
        #expect(lif["tau"]?.numbers?.allSatisfy { abs($0 - 1e-3 / 0.75) < 1e-9 } == true)
        #expect(lif["r"]?.numbers?.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 } == true)
        #expect(lif["v_leak"]?.numbers?.allSatisfy { $0 == 0 } == true)
        #expect(lif["v_threshold"]?.numbers?.allSatisfy { $0 == 0.75 } == true)
        #expect(lif["v_reset"]?.numbers?.allSatisfy { $0 == 0.25 } == true)
    }

    @Test("a soft reset is refused, naming the layer; --allow-inexact writes a hard reset and says so")
    func softReset() throws {
        let net = try NIRExportTests.network("CONVNP-2-3-1-1_L-2", neuron: NeuronParameters(reset: .soft))
        #expect {
            try NIRExport.graph(net.graph())
        } throws: { error in
            "\(error)".contains("layers.0 (CONVNP-2-3-1-1)") && "\(error)".contains("subtraction") && "\(error)".contains("--allow-inexact")
        }
        var options = NIRExport.Options()
        options.allowInexact = true
        let graph = try NIRExport.graph(net.graph(), options: options)
        #expect(graph.node("layer0_lif")?["v_reset"]?.numbers?.allSatisfy { $0 == 0 } == true)
        let note = graph.metadata.first { $0.key == "inexact" }?.value
        #expect(note == .string("layer0_lif: reset by subtraction written as a hard reset to 0"))
    }

    @Test("the file round-trips: types, fields, edges and metadata as written")
    func roundTrip() throws {
        let net = try NIRExportTests.network("CONV-4-3-1-1_FC-5_L-3")
        let graph = try NIRExport.graph(net.graph())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nir-\(UUID().uuidString).nir").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try graph.write(to: path)
        let back = try NIRGraph.read(path)
        #expect(back.version == NIRGraph.formatVersion)
        #expect(Set(back.nodes.map(\.name)) == Set(graph.nodes.map(\.name)))
        for node in graph.nodes {
            let read = try #require(back.node(node.name))
            #expect(read.type == node.type)
            for (key, value) in node.fields { #expect(read[key] == value, "\(node.name).\(key)") }
        }
        #expect(back.edges.map { "\($0.from)>\($0.to)" } == graph.edges.map { "\($0.from)>\($0.to)" })
        #expect(back.metadata.count == graph.metadata.count)
        #expect(back.metadata.first { $0.key == "dt" }?.value == .number(1e-4))
    }

    @Test("bad files: one message naming the file and what is wrong")
    func badFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nir-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = folder.appendingPathComponent("text.nir").path
        try Data("not hdf5".utf8).write(to: URL(fileURLWithPath: text))
        #expect { try NIRGraph.read(text) } throws: { "\($0)".contains("text.nir: not an HDF5 file") }
        #expect { try NIRGraph.read(folder.appendingPathComponent("missing.nir").path) } throws: { "\($0)".contains("missing.nir: no such file") }

        // A real file cut short.
        let net = try NIRExportTests.network("CONVNP-2-3-1-1_L-2")
        let whole = try NIRExport.graph(net.graph()).hdf5()
        let cut = folder.appendingPathComponent("cut.nir").path
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: cut))
        #expect { try NIRGraph.read(cut) } throws: { "\($0)".hasPrefix(cut) }

        // A dataset larger than the reader allows is refused by name before any allocation.
        let whole2 = folder.appendingPathComponent("whole.nir").path
        try whole.write(to: URL(fileURLWithPath: whole2))
        #expect { try HDF5Object.read(whole2, limit: 10) } throws: { "\($0)".contains("values, over the limit of 10") && "\($0)".contains("/node/nodes/") }
    }
}

/// A seeded generator, so every run draws the same weights and inputs.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

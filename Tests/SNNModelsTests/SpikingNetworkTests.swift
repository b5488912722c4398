import SNNCPU
import SNNLayers
import SNNModels
import SNNTensor
import Testing

@Suite("spiking networks")
struct SpikingNetworkTests {
    init() { CPUBackend.register() }

    private func build(_ name: String, classes: Int, input: [Int], t: Int = 4) throws -> SpikingNetwork {
        try SpikingNetwork(name, classes: classes, config: ModelConfig(timesteps: t, inputShape: input), generator: RandomGenerator(seed: 1))
    }

    @Test("parameter counts equal the reference's (TRT-SPEC.md §7)", arguments: [
        ("ResNet-19", 10, [3, 32, 32], 12_630_858),
        ("ResNet-19", 100, [3, 32, 32], 12_653_988),
        ("VGGSNN", 10, [2, 48, 48], 9_268_746),
        ("VGGSNN", 101, [2, 48, 48], 9_688_165),
        ("SEW-ResNet-34", 100, [3, 224, 224], 21_335_972),
        ("ResNet-34", 1000, [3, 224, 224], 21_797_672),
    ])
    func parameterCounts(_ c: (String, Int, [Int], Int)) throws {
        let net = try build(c.0, classes: c.1, input: c.2)
        #expect(net.parameterCount == c.3)
        #expect(net.summary.map(\.parameters).reduce(0, +) == c.3)
    }

    @Test("state-dict keys follow the reference's module names")
    func stateDictKeys() throws {
        let net = try build("CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", classes: 10, input: [2, 8, 8])
        let keys = Set(net.stateDict().keys)
        let bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
        var expected: Set<String> = ["layers.0.conv2d_layer.module.0.weight", "layers.1.conv2d_layer.module.0.weight",
                                     "layers.3.module.weight", "layers.3.module.bias"]
        for i in 0...1 { for k in bn { expected.insert("layers.\(i).conv2d_layer.module.1.\(k)") } }
        #expect(keys == expected)
    }

    @Test("residual, SEW and FC blocks use the reference's names")
    func residualKeys() throws {
        let net = try build("CONVNP-8-3-1-1_RES-16-3=3-2=1-1=1_SEWRES~ADD-16-3=3-1=1-1=1_SEWRES~IAND-32-3=3-1=1-1=1-_FC-12_L-5",
                            classes: 5, input: [3, 8, 8])
        let keys = Set(net.stateDict().keys)
        #expect(keys.contains("layers.1.conv2d_layer_1.module.0.weight"))
        #expect(keys.contains("layers.1.downsample_layer.module.1.running_var"))
        #expect(keys.contains("layers.3.downsample_layer.0.module.0.weight"))
        #expect(!keys.contains { $0.hasPrefix("layers.2.downsample_layer") })
        #expect(keys.contains("layers.5.fc.module.weight") && keys.contains("layers.6.module.bias"))
        // Spiking layers are reachable for probes (no parameters of their own).
        #expect(net.spikingLayers.map(\.key).prefix(3) == ["layers.0.lif", "layers.1.lif_1", "layers.1.lif_2"])
    }

    @Test("a forward pass gives [T, N, classes] for static and event inputs")
    func forwardShapes() throws {
        let net = try build("CONV-8-3-1-1_RES-8-3=3-1=1-1=1_FC-16_L-3", classes: 3, input: [2, 8, 8], t: 3)
        let g = RandomGenerator(seed: 2)
        #expect(net(Tensor.normal([4, 2, 8, 8], generator: g)).shape == [3, 4, 3])
        #expect(net(Tensor.normal([3, 4, 2, 8, 8], generator: g)).shape == [3, 4, 3])
    }

    @Test("bad topologies are refused with the token and the reason", arguments: [
        ("CONVX-8-3-1-1_L-2", "unknown layer 'CONVX'"),
        ("CONV-8-3-1_L-2", "expects 4 or 7 numbers"),
        ("CONV-8-3-1-1_SEWRES~OR-8-3=3-1=1-1=1_L-2", "ADD, AND, IAND"),
        ("RES-8-3=3-1=1-1=1_L-2", "cannot be the first layer"),
        ("CONV-8-3-1-1_RES-8-3=3-2=2-1=1_L-2", "equal strides above 1"),
        ("CONV-8-3-1-1_FC-10", "must end with a readout"),
        ("CONV-0-3-1-1_L-2", "channels must be an integer >= 1"),
    ])
    func badTopologies(_ c: (String, String)) {
        do {
            _ = try build(c.0, classes: 2, input: [2, 8, 8])
            Issue.record("\(c.0) was accepted")
        } catch {
            #expect("\(error)".contains(c.1), "\(error)")
        }
    }
}

import Foundation
import SNNAnalysis
import SNNCPU
import SNNData
import SNNModels
import SNNTensor
import Testing

/// Firing rates and operations on a network whose spikes are known in advance: the convolution's
/// weights are zero and batch norm (evaluation mode, mean 0, variance 1, γ = 1) adds β, so every
/// neuron integrates β each step: with τ = 2 and β = 0.6 the potential runs 0.6, 0.9, 1.05 (spike,
/// reset), 0.6: rates 0, 0, 1, 0 at t = 1...4.
@Suite("Spike activity")
struct SpikeActivityTests {
    init() { CPUBackend.register() }

    @Test("rates per layer and timestep, synaptic operations from the feeding layer's rate, energy")
    func knownSpikes() throws {
        let model = try SpikingNetwork("CONV-2-3-1-1_L-3", classes: 3, config: ModelConfig(timesteps: 4, inputShape: [1, 4, 4]),
                                       generator: RandomGenerator(seed: 1))
        var state = model.stateDict()
        for (key, value) in state {
            let count = value.count
            if key.hasSuffix("conv2d_layer.module.0.weight") { state[key] = Tensor([Float](repeating: 0, count: count), shape: value.shape) }
            if key.hasSuffix("module.1.weight") || key.hasSuffix("running_var") { state[key] = Tensor([Float](repeating: 1, count: count), shape: value.shape) }
            if key.hasSuffix("module.1.bias") { state[key] = Tensor([Float](repeating: 0.6, count: count), shape: value.shape) }
            if key.hasSuffix("running_mean") { state[key] = Tensor([Float](repeating: 0, count: count), shape: value.shape) }
        }
        try model.load(stateDict: state)
        let data = InMemoryDataset(samples: Tensor((0..<(5 * 16)).map { Float($0 % 7) }, shape: [5, 1, 4, 4]), labels: [0, 1, 2, 0, 1],
                                   isSequence: false, classes: 3)
        let activity = try SpikeActivity.measure(model: model, data: data, batches: [[0, 1, 2], [3, 4]])
        #expect(activity.samples == 5 && activity.layers.map(\.name) == ["layers.0.lif"])
        let layer = try #require(activity.layers.first)
        // BatchNorm's ε makes β/√(1+ε) a hair under 0.6: still 0, 0, 1, 0.
        #expect(layer.perTimestep.map { ($0 * 1e6).rounded() / 1e6 } == [0, 0, 1, 0] && abs(layer.rate - 0.25) < 1e-9, "\(layer)")
        #expect(model.training && !model.spikingLayers[0].value.recordsTimestepRates, "mode and flags restored")
        let macs = model.summary.map(\.macsPerTimestep)
        #expect(activity.operations.count == model.summary.count)
        #expect(activity.operations[0].macs == Double(macs[0] * 4) && activity.operations[0].synapticOperations == 0)
        let readout = try #require(activity.operations.last)
        #expect(readout.input == "layers.0.lif" && readout.inputRate == 0.25)
        #expect(readout.macs == 0 && abs(readout.synapticOperations - 0.25 * Double(macs.last! * 4)) < 1e-9)
        let (snn, ann) = activity.energy(mac: 4.6e-12, ac: 0.9e-12)
        #expect(abs(snn - (Double(macs[0] * 4) * 4.6e-12 + 0.25 * Double(macs.last! * 4) * 0.9e-12)) < 1e-20)
        #expect(abs(ann - Double(macs.reduce(0, +)) * 4.6e-12) < 1e-20)
    }
}

import SNNTensor
import SNNTestSupport
import Testing

/// The spike function has no derivative a finite difference could check (the surrogate is a
/// modelling choice), so the fused op is checked against its composite: `batchNorm` (whose
/// gradients are checked by finite differences) followed by `neuronScan` (checked against the
/// loop of single-step ops).
@Suite("fused batch norm + neuron")
struct BatchNormNeuronScanTests {
    static let neurons: [NeuronParameters] = [
        NeuronParameters(),
        NeuronParameters(tau: 1.5, threshold: 0.7, reset: .soft, surrogate: .sigmoid(alpha: 4)),
        NeuronParameters(tau: 3, threshold: 0.5, reset: .hard(-0.2), surrogate: .rectangle(width: 1)),
    ]

    /// `[T·N, C, H, W]` with T = 3, N = 2.
    static func inputs(seed: UInt64, c: Int = 3) -> [Tensor] {
        let r = RandomInputs(seed: seed)
        return [r.normal([6, c, 2, 2], mean: 0.3, std: 1.5), r.uniform([c], low: 0.5, high: 1.5), r.normal([c], mean: 0.6, std: 0.5)]
    }

    static func stats(_ c: Int) -> (Tensor, Tensor) {
        (Tensor.zeros([c], dtype: .float64, device: .reference), Tensor.ones([c], dtype: .float64, device: .reference))
    }

    @Test("equals batch norm then the neuron: spikes, gradients and running statistics", arguments: neurons)
    func equalsComposite(neuron: NeuronParameters) {
        func run(fused: Bool) -> (spikes: [Double], grads: [[Double]], running: [Double]) {
            let t = Self.inputs(seed: 82)
            for x in t { x.requiresGrad = true }
            let (m, v) = Self.stats(3)
            let spikes: Tensor
            if fused {
                spikes = batchNormNeuronScan(t[0], steps: 3, gamma: t[1], beta: t[2], runningMean: m, runningVar: v, neuron: neuron)
            } else {
                let y = batchNorm(t[0], gamma: t[1], beta: t[2], runningMean: m, runningVar: v, training: true)
                spikes = neuronScan(y.reshaped([3, -1]), neuron).reshaped(t[0].shape)
            }
            let projection = RandomInputs(seed: 83).normal(spikes.shape)
            (spikes * projection).sum().backward()
            return (spikes.toDoubles(), t.map { $0.grad?.toDoubles() ?? [] }, m.toDoubles() + v.toDoubles())
        }
        let (fused, composite) = (run(fused: true), run(fused: false))
        #expect(fused.spikes == composite.spikes)
        #expect(fused.spikes.contains(1) && fused.spikes.contains(0), "the inputs must make some neurons spike, others not")
        for (a, b) in zip(fused.grads, composite.grads) {
            // float64, the same formulas in a different order: a relative bound of 1e-9 on the
            // largest gradient.
            let scale = b.map(Swift.abs).max() ?? 0
            #expect(scale > 0)
            for (u, w) in zip(a, b) { #expect(Swift.abs(u - w) <= 1e-9 * scale) }
        }
        for (u, w) in zip(fused.running, composite.running) { #expect(Swift.abs(u - w) <= 1e-12 * Swift.max(Swift.abs(w), 1e-300)) }
    }

    @Test("with a residual: equals batch norm, the add, then the neuron; a spike residual is kept as bytes",
          arguments: [false, true])
    func residual(spikeResidual: Bool) {
        let neuron = NeuronParameters()
        func residualInput() -> Tensor {
            let r = RandomInputs(seed: 84).normal([6, 3, 2, 2], mean: 0.9, std: 1)
            return spikeResidual ? neuronScan(r.reshaped([3, -1]), neuron).reshaped([6, 3, 2, 2]) : r
        }
        func run(fused: Bool) -> (spikes: [Double], grads: [[Double]]) {
            let t = Self.inputs(seed: 85)
            let source = RandomInputs(seed: 84).normal([6, 3, 2, 2], mean: 0.9, std: 1)
            source.requiresGrad = true
            let residual = spikeResidual ? neuronScan(source.reshaped([3, -1]), neuron).reshaped([6, 3, 2, 2]) : source * 1
            if spikeResidual { #expect(residual.spikeQuantum == 1) }
            for x in t { x.requiresGrad = true }
            let (m, v) = Self.stats(3)
            let spikes: Tensor
            if fused {
                spikes = batchNormNeuronScan(t[0], steps: 3, gamma: t[1], beta: t[2], runningMean: m, runningVar: v,
                                             residual: residual, neuron: neuron)
            } else {
                let y = batchNorm(t[0], gamma: t[1], beta: t[2], runningMean: m, runningVar: v, training: true) + residual
                spikes = neuronScan(y.reshaped([3, -1]), neuron).reshaped(t[0].shape)
            }
            (spikes * RandomInputs(seed: 86).normal(spikes.shape)).sum().backward()
            return (spikes.toDoubles(), (t + [source]).map { $0.grad?.toDoubles() ?? [] })
        }
        _ = residualInput()
        let (fused, composite) = (run(fused: true), run(fused: false))
        #expect(fused.spikes == composite.spikes)
        for (a, b) in zip(fused.grads, composite.grads) {
            let scale = b.map(Swift.abs).max() ?? 0
            #expect(!a.isEmpty && a.count == b.count)
            for (u, w) in zip(a, b) { #expect(Swift.abs(u - w) <= 1e-9 * Swift.max(scale, 1e-300)) }
        }
    }
}

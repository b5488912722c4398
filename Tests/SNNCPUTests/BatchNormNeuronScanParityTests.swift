import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

@Suite("fused batch norm + neuron: CPU against the reference")
struct BatchNormNeuronScanParityTests {
    init() { CPUBackend.register() }

    /// C = 24 takes oneDNN's channel-blocked batch norm (and is not a multiple of 16); the
    /// 442,368 elements split the neuron scan across threads, with a partial last block.
    @Test("spikes, gradients and running statistics; blocked layout and multi-threaded scan",
          arguments: [NeuronParameters(), NeuronParameters(tau: 1.5, threshold: 0.7, reset: .soft, surrogate: .sigmoid(alpha: 4))])
    func parity(neuron: NeuronParameters) {
        let (steps, n, c, side) = (4, 8, 24, 24)
        let r = RandomInputs(seed: 91)
        let inputs = [r.normal([steps * n, c, side, side], mean: 0.4, std: 2, dtype: .float32),
                      r.uniform([c], low: 0.5, high: 1.5, dtype: .float32), r.normal([c], mean: 0.8, std: 0.5, dtype: .float32)]
        var running: [Device: [Double]] = [:]
        expectDevicesAgree(inputs, on: .cpu, output: .elementwise(.exact),
                           gradients: .relativeToMaxMagnitude(Tolerance.float32Accumulated)) { t in
            let d = t[0].device
            let (m, v) = (Tensor.zeros([c], device: d), Tensor.ones([c], device: d))
            let s = batchNormNeuronScan(t[0], steps: steps, gamma: t[1], beta: t[2], runningMean: m, runningVar: v, neuron: neuron)
            running[d] = m.toDoubles() + v.toDoubles()
            return s
        }
        let (cpu, ref) = (running[.cpu] ?? [], running[.reference] ?? [])
        #expect(cpu.count == 2 * c && ref.count == 2 * c)
        for (a, b) in zip(cpu, ref) { #expect(Swift.abs(a - b) <= 1e-5 * Swift.abs(b), "running statistics") }
    }
}

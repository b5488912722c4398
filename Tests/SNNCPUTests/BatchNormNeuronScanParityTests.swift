import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

@Suite("fused batch norm + neuron: CPU against the reference")
struct BatchNormNeuronScanParityTests {
    init() { CPUBackend.register() }

    /// `[T, N, C, H, W]` cases: C = 24 takes oneDNN's channel-blocked batch norm (and is not a
    /// multiple of 16); 442,368 and 244,644 elements split the scan across threads, with blocks
    /// of 512 neurons that straddle channels and a partial last block; the small odd case runs
    /// on one thread with a partial lane group.
    static let shapes: [[Int]] = [[4, 8, 24, 24, 24], [4, 3, 19, 37, 29], [3, 5, 17, 3, 7]]

    @Test("spikes, gradients and running statistics; blocked layout and multi-threaded scan",
          arguments: [NeuronParameters(), NeuronParameters(tau: 1.5, threshold: 0.7, reset: .soft, surrogate: .sigmoid(alpha: 4)),
                      NeuronParameters(tau: 3, threshold: 0.5, reset: .hard(-0.2), surrogate: .rectangle(width: 1))],
          shapes)
    func parity(neuron: NeuronParameters, shape: [Int]) {
        let (steps, n, c) = (shape[0], shape[1], shape[2])
        let r = RandomInputs(seed: 91)
        let inputs = [r.normal([steps * n, c] + shape[3...], mean: 0.4, std: 2, dtype: .float32),
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

    @Test("with a residual (spikes, kept as bytes): CPU against the reference")
    func residualParity() {
        let (steps, n, c) = (4, 3, 19)
        let r = RandomInputs(seed: 92)
        let shape = [steps * n, c, 13, 11]
        let inputs = [r.normal(shape, mean: 0.4, std: 2, dtype: .float32),
                      r.uniform([c], low: 0.5, high: 1.5, dtype: .float32), r.normal([c], mean: 0.2, std: 0.5, dtype: .float32),
                      r.normal(shape, mean: 0.8, std: 1, dtype: .float32)]
        expectDevicesAgree(inputs, on: .cpu, output: .elementwise(.exact),
                           gradients: .relativeToMaxMagnitude(Tolerance.float32Accumulated)) { t in
            let d = t[0].device
            let residual = neuronScan(t[3].reshaped([steps, -1]), NeuronParameters()).reshaped(shape)
            return batchNormNeuronScan(t[0], steps: steps, gamma: t[1], beta: t[2], runningMean: Tensor.zeros([c], device: d),
                                       runningVar: Tensor.ones([c], device: d), residual: residual, neuron: NeuronParameters())
        }
    }
}

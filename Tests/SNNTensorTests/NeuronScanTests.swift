import SNNTensor
import SNNTestSupport
import Testing

/// Every reset mode crossed with every surrogate kind, for the fused-scan contract.
enum NeuronCases {
    static let resets: [ResetMode] = [.hard(0), .hard(0.3), .soft]
    static let surrogates: [Surrogate] = [.triangle(gamma: 1), .sigmoid(alpha: 4), .rectangle(width: 1)]
    /// Shapes after the time axis.
    static let shapes: [[Int]] = [[5], [2, 3], [2, 2, 1, 3]]
}

@Suite("neuronScan")
struct NeuronScanTests {
    /// Inputs around the threshold so that each sequence mixes spikes and silence.
    private func currents(_ shape: [Int], seed: UInt64) -> Tensor {
        RandomInputs(seed: seed).normal(shape, mean: 0.7, std: 0.6)
    }

    @Test(
        "the fused scan equals the loop of single-step ops, forward and gradient (float64)",
        arguments: NeuronCases.resets, NeuronCases.surrogates)
    func scanMatchesLoop(reset: ResetMode, surrogate: Surrogate) {
        for steps in [1, 4] {
            for (s, shape) in NeuronCases.shapes.enumerated() {
                for tau in [2.0, 1.0] {
                    let neuron = NeuronParameters(tau: tau, threshold: 1, reset: reset, surrogate: surrogate)
                    let x = currents([steps] + shape, seed: UInt64(100 * steps + s))
                    let label = "T=\(steps) shape \(shape) tau \(tau) \(reset) \(surrogate)"
                    let (fused, fusedGrad) = valueAndInputGradient(x, seed: 7) { neuronScan($0, neuron) }
                    let (loop, loopGrad) = valueAndInputGradient(x, seed: 7) { neuronLoop($0, neuron) }
                    assertClose(fused, loop, .exact, "\(label) spikes")
                    // Same float64 operations in the same order, up to the reset algebra.
                    assertClose(fusedGrad, loopGrad, .float64, "\(label) gradient")
                }
            }
        }
    }

    @Test("the scan spikes at all for these inputs (the contract test is not vacuous)")
    func spikesHappen() {
        let x = currents([4, 2, 3], seed: 401)
        let s = neuronScan(x, NeuronParameters()).toDoubles()
        #expect(s.contains(1) && s.contains(0))
    }

    @Test(
        "heaviside: forward is H(u) (strictly greater) and backward is surrogate.derivative",
        arguments: NeuronCases.surrogates)
    func heavisideBackward(surrogate: Surrogate) {
        let values = [-1.7, -0.6, -0.2, -1e-3, 0, 1e-3, 0.25, 0.45, 0.55, 1.2]
        let u = Tensor(doubles: values, shape: [2, 5])
        u.requiresGrad = true
        let s = heaviside(u, surrogate: surrogate)
        assertClose(s, values.map { $0 > 0 ? 1 : 0 }, shape: [2, 5], .exact)
        let g = RandomInputs(seed: 402).normal([2, 5])
        s.backward(g)
        let expected = zip(values, g.toDoubles()).map { surrogate.derivative($0) * $1 }
        assertClose(u.grad ?? u, expected, shape: [2, 5], .float64)
    }

    @Test("forward values by hand: hard and soft reset")
    func values() {
        // τ = 2, v_th = 1, x = [0.8, 0.8, 0.8, 2.0] (one neuron).
        // Hard reset to 0: h0 = 0.8 (no spike, v0 = 0.8); h1 = 0.4 + 0.8 = 1.2 (spike, v1 = 0);
        //   h2 = 0.8 (no spike, v2 = 0.8); h3 = 0.4 + 2 = 2.4 (spike).
        // Soft reset: h0 = 0.8; h1 = 1.2 (spike, v1 = 0.2); h2 = 0.1 + 0.8 = 0.9 (no spike);
        //   h3 = 0.45 + 2 = 2.45 (spike).
        // Hard reset to 0.3: h1 = 1.2 (spike, v1 = 0.3); h2 = 0.15 + 0.8 = 0.95 (no spike); h3 spikes.
        // With x2 = 0.9 instead: hard(0.3) gives h2 = 1.05 (spike) where hard(0) gives 0.9 (none).
        let x = Tensor(doubles: [0.8, 0.8, 0.8, 2.0], shape: [4, 1])
        assertClose(neuronScan(x, NeuronParameters(reset: .hard(0))), [0, 1, 0, 1], shape: [4, 1], .exact)
        assertClose(neuronScan(x, NeuronParameters(reset: .soft)), [0, 1, 0, 1], shape: [4, 1], .exact)
        let x2 = Tensor(doubles: [0.8, 0.8, 0.9, 0], shape: [4, 1])
        assertClose(neuronScan(x2, NeuronParameters(reset: .hard(0.3))), [0, 1, 1, 0], shape: [4, 1], .exact)
        assertClose(neuronScan(x2, NeuronParameters(reset: .hard(0))), [0, 1, 0, 0], shape: [4, 1], .exact)
        // Exactly at the threshold there is no spike (H is strictly greater); τ = 1 integrates fully:
        // 0.5 + 0.5 = 1.0 is not above 1, then 1.0 + 0.25 = 1.25 is.
        let x3 = Tensor(doubles: [0.5, 0.5, 0.25], shape: [3, 1])
        assertClose(neuronScan(x3, NeuronParameters(tau: 1, reset: .hard(0))), [0, 0, 1], shape: [3, 1], .exact)
    }

    @Test("gradients by hand: T = 1 is the surrogate; T = 2 adds the path through the reset")
    func gradientValues() {
        // T = 1: ds/dx = g(x - v_th). Triangle γ = 1 at x = 1.25: (1 - 0.25) = 0.75.
        let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .hard(0), surrogate: .triangle(gamma: 1))
        let x1 = Tensor(doubles: [1.25], shape: [1, 1])
        x1.requiresGrad = true
        neuronScan(x1, neuron).sum().backward()
        assertClose(x1.grad ?? x1, [0.75], shape: [1, 1])
        // T = 2, x = [1.25, 0.5], L = s0 + s1. h0 = 1.25 (spike), v0 = 0, h1 = 0.5 (u1 = -0.5).
        // ∂L/∂x1 = g(-0.5) = 0.5. ∂L/∂x0 = g(0.25) + g(u1)·(dv0/dh0)/τ with
        // dv0/dh0 = (1 - s0) + (v_reset - h0)·g(u0) = 0 + (0 - 1.25)·0.75 = -0.9375,
        // so ∂L/∂x0 = 0.75 + 0.5·(-0.9375)/2 = 0.515625.
        let x2 = Tensor(doubles: [1.25, 0.5], shape: [2, 1])
        x2.requiresGrad = true
        neuronScan(x2, neuron).sum().backward()
        assertClose(x2.grad ?? x2, [0.515625, 0.5], shape: [2, 1])
    }

    /// `f(x)` and the gradient of `Σ f(x) ⊙ G` with respect to `x`, for a random `G` of a fixed seed.
    private func valueAndInputGradient(_ x: Tensor, seed: UInt64, _ f: (Tensor) -> Tensor) -> (Tensor, Tensor) {
        let leaf = x.leafCopy(on: x.device, requiresGrad: true)
        let y = f(leaf)
        y.backward(RandomInputs(seed: seed).normal(y.shape, dtype: y.dtype, device: y.device))
        return (y, leaf.grad ?? Tensor.zeros(x.shape, dtype: x.dtype, device: x.device))
    }
}

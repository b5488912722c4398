import SNNTensor
import SNNTestSupport
import Testing

@Suite("matmul and linear")
struct MatmulTests {
    @Test(
        "matmul gradients match finite differences",
        arguments: [([3, 4], [4, 2]), ([1, 5], [5, 1]), ([2, 3, 4], [2, 4, 2])])
    func matmulGradients(a: [Int], b: [Int]) {
        let r = RandomInputs(seed: 41)
        expectGradientsMatchFiniteDifferences([r.normal(a), r.normal(b)]) { matmul($0[0], $0[1]) }
    }

    @Test("matmul of transposed (strided) operands")
    func matmulTransposed() {
        let r = RandomInputs(seed: 42)
        expectGradientsMatchFiniteDifferences([r.normal([4, 3]), r.normal([2, 4])]) {
            matmul($0[0].transposed(), $0[1].transposed())
        }
    }

    @Test("matmul gradients to one operand only")
    func matmulOneSided() {
        let r = RandomInputs(seed: 43)
        let inputs = [r.normal([3, 4]), r.normal([4, 2])]
        expectGradientsMatchFiniteDifferences(inputs, wrt: [0]) { matmul($0[0], $0[1]) }
        expectGradientsMatchFiniteDifferences(inputs, wrt: [1]) { matmul($0[0], $0[1]) }
    }

    @Test("linear gradients match finite differences", arguments: [[3, 4], [2, 3, 4], [4]], [true, false])
    func linearGradients(x: [Int], bias: Bool) {
        let r = RandomInputs(seed: 44)
        var inputs = [r.normal(x), r.normal([5, 4])]
        if bias { inputs.append(r.normal([5])) }
        expectGradientsMatchFiniteDifferences(inputs) { linear($0[0], weight: $0[1], bias: bias ? $0[2] : nil) }
    }

    @Test("forward values by hand")
    func values() {
        // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[1·5+2·7, 1·6+2·8], [3·5+4·7, 3·6+4·8]]
        //                                     = [[19, 22], [43, 50]].
        let a = Tensor(doubles: [1, 2, 3, 4], shape: [2, 2])
        let b = Tensor(doubles: [5, 6, 7, 8], shape: [2, 2])
        assertClose(matmul(a, b), [19, 22, 43, 50], shape: [2, 2])
        // Batched: batch 1 is 2a and b, so its product is 2·[[19, 22], [43, 50]].
        assertClose(matmul(stack([a, a * 2]), stack([b, b])), [19, 22, 43, 50, 38, 44, 86, 100], shape: [2, 2, 2])
        // linear(x, W, b) = x·Wᵀ + b with x = [1, 2], W = [[1, 0], [1, 1], [0, 2]], b = [0.5, 0, -1]:
        // [1, 1+2, 4] + b = [1.5, 3, 3].
        let w = Tensor(doubles: [1, 0, 1, 1, 0, 2], shape: [3, 2])
        assertClose(
            linear(
                Tensor(doubles: [1, 2], shape: [1, 2]), weight: w, bias: Tensor(doubles: [0.5, 0, -1], shape: [3])),
            [1.5, 3, 3], shape: [1, 3])
        assertClose(linear(Tensor(doubles: [1, 2], shape: [2]), weight: w), [1, 3, 4], shape: [3])
    }

    @Test("matmul gradients by hand")
    func gradientValues() {
        // L = Σ A·B: dL/dA = 1·Bᵀ (row sums of B per column of A), dL/dB = Aᵀ·1 (column sums of A).
        let a = Tensor(doubles: [1, 2, 3, 4], shape: [2, 2])
        let b = Tensor(doubles: [5, 6, 7, 8], shape: [2, 2])
        a.requiresGrad = true
        b.requiresGrad = true
        matmul(a, b).sum().backward()
        assertClose(a.grad ?? a, [11, 15, 11, 15], shape: [2, 2])
        assertClose(b.grad ?? b, [4, 4, 6, 6], shape: [2, 2])
    }
}

import SNNTensor
import SNNTestSupport
import Testing

@Suite("pool2d")
struct Pool2dTests {
    static let cases: [PoolCase] = [Pool2dParameters.Kind.max, .average].flatMap { kind in
        [
            PoolCase(kind: kind, input: [2, 2, 4, 4], kernel: (2, 2)),
            PoolCase(kind: kind, input: [1, 2, 5, 5], kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
            PoolCase(kind: kind, input: [1, 3, 5, 4], kernel: (2, 3), stride: (1, 1)),
            PoolCase(kind: kind, input: [2, 1, 7, 7], kernel: (3, 3), stride: (2, 2)),
            PoolCase(kind: kind, input: [1, 1, 3, 5], kernel: (2, 2), stride: (1, 2), padding: (1, 1)),
        ]
    }

    @Test("pooling gradients match finite differences (distinct values, no ties)", arguments: cases)
    func gradients(c: PoolCase) {
        expectGradientsMatchFiniteDifferences([RandomInputs(seed: 61).distinct(c.input)], "\(c)") { c.apply($0[0]) }
    }

    @Test("adaptive average pooling to 1x1")
    func adaptive() {
        expectGradientsMatchFiniteDifferences([RandomInputs(seed: 62).normal([2, 3, 3, 2])]) {
            adaptiveAvgPool2dTo1($0[0])
        }
        let x = Tensor(doubles: [1, 2, 3, 4, 10, 20, 30, 40], shape: [1, 2, 2, 2])
        assertClose(adaptiveAvgPool2dTo1(x), [2.5, 25], shape: [1, 2, 1, 1])
    }

    @Test("pooling of a strided (transposed) input")
    func stridedInput() {
        let r = RandomInputs(seed: 63)
        expectGradientsMatchFiniteDifferences([r.distinct([1, 2, 4, 5])]) {
            maxPool2d($0[0].transposed(), kernel: (2, 2)) + avgPool2d($0[0].transposed(), kernel: (2, 2))
        }
    }

    @Test("forward values by hand")
    func values() {
        // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]. Max 2x2 stride 1: [[5, 6], [8, 9]].
        let x = Tensor(doubles: [1, 2, 3, 4, 5, 6, 7, 8, 9], shape: [1, 1, 3, 3])
        assertClose(maxPool2d(x, kernel: (2, 2), stride: (1, 1)), [5, 6, 8, 9], shape: [1, 1, 2, 2])
        // Average 2x2 stride 1: [[(1+2+4+5)/4, (2+3+5+6)/4], [(4+5+7+8)/4, (5+6+8+9)/4]].
        assertClose(avgPool2d(x, kernel: (2, 2), stride: (1, 1)), [3, 4, 6, 7], shape: [1, 1, 2, 2])
        // Padding 1, kernel 2, stride 2: windows at rows/cols {-1, 0}, {1, 2}. Zeros count in the
        // divisor (count_include_pad): the top-left window holds only x[0,0] = 1, so 1/4;
        // top-right holds 2 + 3 → 5/4; bottom-left 4 + 7 → 11/4; bottom-right 5+6+8+9 → 28/4.
        assertClose(avgPool2d(x, kernel: (2, 2), padding: (1, 1)), [0.25, 1.25, 2.75, 7], shape: [1, 1, 2, 2])
        // Max never picks a padded position, even when every input is negative: the same windows
        // of -x give -1, max(-2, -3), max(-4, -7), max(-5, -6, -8, -9).
        assertClose(maxPool2d(-x, kernel: (2, 2), padding: (1, 1)), [-1, -2, -4, -5], shape: [1, 1, 2, 2])
        // Odd size with the default stride = kernel: the last row and column are dropped.
        assertClose(maxPool2d(x, kernel: (2, 2)), [5], shape: [1, 1, 1, 1])
    }

    @Test("max pooling sends each window's gradient to its maximum; average spreads it")
    func gradientValues() {
        let x = Tensor(doubles: [1, 9, 2, 3, 4, 8, 5, 6, 7], shape: [1, 1, 3, 3])
        x.requiresGrad = true
        // Windows (stride 1): {1, 9, 3, 4} → 9, {9, 2, 4, 8} → 9, {3, 4, 5, 6} → 6, {4, 8, 6, 7} → 8.
        maxPool2d(x, kernel: (2, 2), stride: (1, 1)).sum().backward()
        assertClose(x.grad ?? x, [0, 2, 0, 0, 0, 1, 0, 1, 0], shape: [1, 1, 3, 3])
        x.grad = nil
        // Each of the four windows gives 1/4 to its cells: the centre is in all four.
        avgPool2d(x, kernel: (2, 2), stride: (1, 1)).sum().backward()
        assertClose(x.grad ?? x, [0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25], shape: [1, 1, 3, 3])
    }
}

import SNNTensor
import SNNTestSupport
import Testing

@Suite("conv2d")
struct Conv2dTests {
    static let cases = [
        ConvCase(input: [2, 2, 5, 5], weight: [3, 2, 3, 3]),
        ConvCase(input: [2, 2, 5, 5], weight: [3, 2, 3, 3], padding: (1, 1), bias: false),
        ConvCase(input: [1, 3, 5, 5], weight: [2, 3, 3, 3], stride: (2, 2), padding: (1, 1)),
        ConvCase(input: [1, 2, 5, 6], weight: [2, 2, 2, 3], stride: (2, 1), padding: (0, 1)),
        ConvCase(input: [1, 2, 6, 6], weight: [2, 2, 3, 3], padding: (2, 2), dilation: (2, 2)),
        ConvCase(input: [2, 4, 4, 4], weight: [4, 2, 3, 3], padding: (1, 1), groups: 2),
        ConvCase(input: [1, 4, 4, 5], weight: [4, 1, 3, 3], stride: (2, 2), padding: (1, 1), groups: 4),
        ConvCase(input: [2, 3, 4, 4], weight: [4, 3, 1, 1], bias: true),
    ]

    @Test("conv2d gradients (input, weight, bias) match finite differences", arguments: cases)
    func gradients(c: ConvCase) {
        expectGradientsMatchFiniteDifferences(c.inputs(RandomInputs(seed: 51)), "\(c)") { c.apply($0) }
    }

    @Test("conv2d of a strided (permuted) input")
    func stridedInput() {
        let r = RandomInputs(seed: 52)
        expectGradientsMatchFiniteDifferences([r.normal([2, 4, 4, 1]), r.normal([3, 2, 2, 2])]) {
            conv2d($0[0].permuted([3, 0, 1, 2]), weight: $0[1])
        }
    }

    @Test("output sizes follow (H + 2p - d(k-1) - 1)/s + 1", arguments: cases)
    func outputShape(c: ConvCase) {
        let y = c.apply(c.inputs(RandomInputs(seed: 53)))
        let h = (c.input[2] + 2 * c.padding.0 - c.dilation.0 * (c.weight[2] - 1) - 1) / c.stride.0 + 1
        let w = (c.input[3] + 2 * c.padding.1 - c.dilation.1 * (c.weight[3] - 1) - 1) / c.stride.1 + 1
        #expect(y.shape == [c.input[0], c.weight[0], h, w])
    }

    @Test("forward values by hand")
    func values() {
        // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], w = [[1, 0], [0, -1]] (cross-correlation):
        // y[i, j] = x[i, j] - x[i+1, j+1]: [[1-5, 2-6], [4-8, 5-9]] = [[-4, -4], [-4, -4]]; bias 0.5.
        let x = Tensor(doubles: [1, 2, 3, 4, 5, 6, 7, 8, 9], shape: [1, 1, 3, 3])
        let w = Tensor(doubles: [1, 0, 0, -1], shape: [1, 1, 2, 2])
        assertClose(
            conv2d(x, weight: w, bias: Tensor(doubles: [0.5], shape: [1])), [-3.5, -3.5, -3.5, -3.5],
            shape: [1, 1, 2, 2])
        // A 3x3 all-ones kernel with padding 1 sums each 3x3 neighbourhood: the corner (0, 0)
        // sees 1+2+4+5 = 12, the centre sees 45; stride 2 keeps the four corners.
        let ones = Tensor.ones([1, 1, 3, 3], dtype: .float64, device: .reference)
        assertClose(
            conv2d(x, weight: ones, padding: (1, 1)), [12, 21, 16, 27, 45, 33, 24, 39, 28], shape: [1, 1, 3, 3])
        assertClose(conv2d(x, weight: ones, stride: (2, 2), padding: (1, 1)), [12, 16, 24, 28], shape: [1, 1, 2, 2])
        // Dilation 2 with a 2x2 kernel of ones picks x[0,0] + x[0,2] + x[2,0] + x[2,2] = 1+3+7+9 = 20.
        let d = conv2d(x, weight: Tensor.ones([1, 1, 2, 2], dtype: .float64, device: .reference), dilation: (2, 2))
        assertClose(d, [20], shape: [1, 1, 1, 1])
        // Groups 2: each output channel sees only its own input channel (x and 10x, weights 1 and 2).
        let two = concat([x, x * 10], axis: 1)
        let gw = Tensor(doubles: [1, 2], shape: [2, 1, 1, 1])
        assertClose(conv2d(two, weight: gw, groups: 2).sum(axes: [2, 3]), [45, 900], shape: [1, 2])
    }
}

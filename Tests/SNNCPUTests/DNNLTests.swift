import SNNCPU
import SNNTensor
import Testing

/// The oneDNN- and OpenBLAS-backed primitives agree with the reference backend, called
/// directly at the backend level on awkward problems (strides, dilation, groups, odd sizes).
@Suite("oneDNN and OpenBLAS primitives")
struct DNNLTests {
    init() { CPUBackend.register() }

    private var cpu: any Backend { Device.cpu.backend }
    private var ref: any Backend { Device.reference.backend }

    private func random(_ shape: [Int], _ seed: UInt64) -> Tensor {
        Tensor.normal(shape, generator: RandomGenerator(seed: seed))
    }

    /// max |a - b| / max(1, max |b|).
    private func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        #expect(a.shape == b.shape)
        let x = a.toDoubles(), y = b.toDoubles()
        let scale = max(1, y.map(abs).max() ?? 0)
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    struct ConvCase: CustomStringConvertible, Sendable {
        let input: [Int], weight: [Int], stride: Int, pad: Int, dilation: Int, groups: Int, bias: Bool
        var description: String { "x\(input) w\(weight) s\(stride) p\(pad) d\(dilation) g\(groups) bias \(bias)" }
    }

    static let convCases: [ConvCase] = [
        ConvCase(input: [2, 3, 7, 6], weight: [4, 3, 3, 3], stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
        ConvCase(input: [2, 4, 9, 9], weight: [6, 2, 3, 3], stride: 2, pad: 1, dilation: 1, groups: 2, bias: false),
        ConvCase(input: [1, 3, 10, 8], weight: [5, 3, 3, 2], stride: 1, pad: 2, dilation: 2, groups: 1, bias: true),
        ConvCase(input: [3, 16, 8, 8], weight: [32, 16, 1, 1], stride: 2, pad: 0, dilation: 1, groups: 1, bias: false),
        ConvCase(input: [2, 2, 11, 11], weight: [8, 2, 7, 7], stride: 2, pad: 3, dilation: 1, groups: 1, bias: true),
        ConvCase(input: [4, 32, 6, 6], weight: [32, 32, 3, 3], stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
    ]

    @Test("conv2d forward, backward-data and backward-weights equal the reference", arguments: convCases)
    func conv(_ c: ConvCase) {
        let p = Conv2dParameters(stride: (c.stride, c.stride), padding: (c.pad, c.pad), dilation: (c.dilation, c.dilation), groups: c.groups)
        let x = random(c.input, 1), w = random(c.weight, 2), b = c.bias ? random([c.weight[0]], 3) : nil
        let y = cpu.conv2d(x, weight: w, bias: b, p)
        let yr = ref.conv2d(x, weight: w, bias: b, p)
        #expect(relativeError(y, yr) < 1e-5, "forward")
        let gy = random(y.shape, 4)
        #expect(relativeError(cpu.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p),
                              ref.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p)) < 1e-5, "backward data")
        let (gw, gb) = cpu.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: c.bias, p)
        let (gwr, gbr) = ref.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: c.bias, p)
        #expect(relativeError(gw, gwr) < 1e-5, "backward weights")
        if let gb, let gbr { #expect(relativeError(gb, gbr) < 1e-5, "backward bias") }
    }

    @Test("GEMM with every transpose combination equals the reference", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemm(_ t: (Bool, Bool)) {
        let (m, k, n) = (5, 7, 3)
        let a = random(t.0 ? [k, m] : [m, k], 5), b = random(t.1 ? [n, k] : [k, n], 6)
        #expect(relativeError(cpu.matmul(a, b, transposeA: t.0, transposeB: t.1), ref.matmul(a, b, transposeA: t.0, transposeB: t.1)) < 1e-6)
    }

    static let poolCases: [(String, [Int], Pool2dParameters)] = [
        ("max 2x2", [2, 3, 8, 8], Pool2dParameters(.max, kernel: (2, 2))),
        ("max 3x3/2 pad 1, odd", [2, 2, 9, 7], Pool2dParameters(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1))),
        ("avg 2x2, odd input", [1, 4, 7, 5], Pool2dParameters(.average, kernel: (2, 2))),
        ("avg 3x3/2 pad 1", [2, 3, 10, 9], Pool2dParameters(.average, kernel: (3, 3), stride: (2, 2), padding: (1, 1))),
    ]

    @Test("pooling forward and backward equal the reference", arguments: poolCases)
    func pool(_ c: (String, [Int], Pool2dParameters)) {
        let x = random(c.1, 7)
        let y = cpu.pool2d(x, c.2)
        #expect(relativeError(y, ref.pool2d(x, c.2)) < 1e-6, "\(c.0) forward")
        let gy = random(y.shape, 8)
        #expect(relativeError(cpu.pool2dBackward(gy, input: x, output: y, c.2), ref.pool2dBackward(gy, input: x, output: y, c.2)) < 1e-6,
                "\(c.0) backward")
    }

    @Test("max-pool gradient goes to the first maximum of a window with ties")
    func maxPoolTies() {
        // One 2x2 window of equal values, and one with the maximum twice (positions 1 and 2).
        let x = Tensor([1, 1, 0, 5, 1, 1, 5, 2], shape: [1, 1, 2, 4])
        let p = Pool2dParameters(.max, kernel: (2, 2))
        let y = cpu.pool2d(x, p)
        let g = cpu.pool2dBackward(Tensor([1, 1], shape: [1, 1, 1, 2]), input: x, output: y, p)
        #expect(g.toFloats() == ref.pool2dBackward(Tensor([1, 1], shape: [1, 1, 1, 2]), input: x, output: y, p).toFloats())
        #expect(g.toFloats() == [1, 0, 0, 1, 0, 0, 0, 0])
    }

    @Test("batch norm training, eval and backward equal the reference", arguments: [[4, 3, 5, 5], [6, 5], [2, 16, 3, 3]])
    func batchNorm(_ shape: [Int]) {
        let c = shape[1]
        let x = random(shape, 9) * 2 + 0.5, gamma = random([c], 10), beta = random([c], 11)
        let rm = random([c], 12), rv = random([c], 13).abs() + 0.5
        for training in [true, false] {
            let a = cpu.batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, epsilon: 1e-5, training: training)
            let b = ref.batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, epsilon: 1e-5, training: training)
            #expect(relativeError(a.output, b.output) < 1e-5, "output, training \(training)")
            #expect(relativeError(a.mean, b.mean) < 1e-5 && relativeError(a.variance, b.variance) < 1e-5, "statistics, training \(training)")
        }
        let stats = ref.batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, epsilon: 1e-5, training: true)
        let gy = random(shape, 14)
        let a = cpu.batchNormBackward(gy, input: x, gamma: gamma, mean: stats.mean, variance: stats.variance, epsilon: 1e-5)
        let b = ref.batchNormBackward(gy, input: x, gamma: gamma, mean: stats.mean, variance: stats.variance, epsilon: 1e-5)
        #expect(relativeError(a.input, b.input) < 1e-4 && relativeError(a.gamma, b.gamma) < 1e-4 && relativeError(a.beta, b.beta) < 1e-4)
    }
}

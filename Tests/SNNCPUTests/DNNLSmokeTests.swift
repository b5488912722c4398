@testable import SNNCPU
import SNNTensor
import Testing

/// The oneDNN- and OpenBLAS-backed methods of `CPUBackend`, called directly, agree with the
/// reference backend on small awkward problems (odd sizes, strides, padding, dilation,
/// groups, bias, 1×1 kernels, pooling ties), forward and backward, to a relative error below
/// 1e-4 (max |a − b| / max |b|: float32 accumulation error relative to the largest output).
@Suite("oneDNN smoke tests against the reference backend")
struct DNNLSmokeTests {
    init() { CPUBackend.register() }

    private let cpu = CPUBackend.shared
    private let ref = ReferenceBackend.shared
    private static let tolerance = 1e-4

    private func random(_ shape: [Int], _ seed: UInt64) -> Tensor {
        Tensor.normal(shape, generator: RandomGenerator(seed: seed))
    }

    /// Small integers (0, 1, 2), so that pooling windows hold many ties.
    private func ties(_ shape: [Int], _ seed: Int) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor((0..<n).map { Float(($0 * 7 + seed) * 13 % 11 % 3) }, shape: shape)
    }

    /// max |a − b| / max |b|. Where every expected value is 0 (nothing here, but a zero
    /// gradient would be), the error is absolute: then any difference above 1e-4 fails.
    private func relativeError(_ a: Tensor, _ b: Tensor, sourceLocation: SourceLocation = #_sourceLocation) -> Double {
        #expect(a.shape == b.shape, sourceLocation: sourceLocation)
        let x = a.toDoubles(), y = b.toDoubles()
        let largest = y.map(abs).max() ?? 0
        let scale = largest > 0 ? largest : 1
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    // MARK: Convolution

    struct ConvCase: CustomStringConvertible, Sendable {
        let input: [Int], weight: [Int]
        let stride: (Int, Int), pad: (Int, Int), dilation: (Int, Int), groups: Int, bias: Bool
        var description: String {
            "x\(input) w\(weight) s\(stride) p\(pad) d\(dilation) g\(groups)\(bias ? " bias" : "")"
        }
        var parameters: Conv2dParameters { Conv2dParameters(stride: stride, padding: pad, dilation: dilation, groups: groups) }
    }

    static let convCases: [ConvCase] = [
        ConvCase(input: [2, 3, 7, 6], weight: [4, 3, 3, 3], stride: (1, 1), pad: (1, 1), dilation: (1, 1), groups: 1, bias: true),
        ConvCase(input: [2, 4, 9, 9], weight: [6, 2, 3, 3], stride: (2, 2), pad: (1, 1), dilation: (1, 1), groups: 2, bias: true),
        ConvCase(input: [1, 3, 10, 8], weight: [5, 3, 3, 2], stride: (1, 1), pad: (2, 1), dilation: (2, 2), groups: 1, bias: true),
        ConvCase(input: [2, 4, 11, 9], weight: [4, 2, 3, 3], stride: (2, 1), pad: (2, 2), dilation: (2, 2), groups: 2, bias: false),
        ConvCase(input: [3, 16, 8, 8], weight: [32, 16, 1, 1], stride: (2, 2), pad: (0, 0), dilation: (1, 1), groups: 1, bias: false),
        ConvCase(input: [2, 5, 7, 5], weight: [3, 5, 1, 1], stride: (1, 1), pad: (0, 0), dilation: (1, 1), groups: 1, bias: true),
        ConvCase(input: [2, 2, 11, 11], weight: [8, 2, 7, 7], stride: (2, 2), pad: (3, 3), dilation: (1, 1), groups: 1, bias: true),
        ConvCase(input: [2, 32, 6, 5], weight: [32, 32, 3, 3], stride: (1, 1), pad: (1, 1), dilation: (1, 1), groups: 1, bias: false),
        ConvCase(input: [2, 32, 9, 9], weight: [64, 8, 3, 3], stride: (1, 1), pad: (1, 1), dilation: (1, 1), groups: 4, bias: true),
    ]

    private func checkConv(_ c: ConvCase, _ algorithm: ConvAlgorithm) {
        let p = c.parameters
        let x = random(c.input, 1), w = random(c.weight, 2), b = c.bias ? random([c.weight[0]], 3) : nil
        let y = cpu.conv2d(x, weight: w, bias: b, p, algorithm: algorithm)
        #expect(relativeError(y, ref.conv2d(x, weight: w, bias: b, p)) < Self.tolerance, "forward \(c)")
        let gy = random(y.shape, 4)
        let gx = cpu.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p, algorithm: algorithm)
        #expect(relativeError(gx, ref.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p)) < Self.tolerance,
                "backward data \(c)")
        let (gw, gb) = cpu.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: c.bias, p, algorithm: algorithm)
        let (gwr, gbr) = ref.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: c.bias, p)
        #expect(relativeError(gw, gwr) < Self.tolerance, "backward weights \(c)")
        #expect((gb == nil) == (gbr == nil))
        if let gb, let gbr { #expect(relativeError(gb, gbr) < Self.tolerance, "backward bias \(c)") }
    }

    @Test("conv2d in three directions equals the reference", arguments: convCases)
    func conv(_ c: ConvCase) {
        checkConv(c, .selected)
        checkConv(c, .direct)
    }

    static let winogradCases: [ConvCase] = [
        ConvCase(input: [3, 32, 10, 9], weight: [48, 32, 3, 3], stride: (1, 1), pad: (1, 1), dilation: (1, 1), groups: 1, bias: true),
        ConvCase(input: [1, 16, 5, 7], weight: [16, 16, 3, 3], stride: (1, 1), pad: (1, 1), dilation: (1, 1), groups: 1, bias: false),
        ConvCase(input: [2, 64, 13, 6], weight: [64, 64, 3, 3], stride: (1, 1), pad: (1, 1), dilation: (1, 1), groups: 1, bias: true),
        ConvCase(input: [5, 16, 6, 6], weight: [32, 16, 3, 3], stride: (1, 1), pad: (0, 0), dilation: (1, 1), groups: 1, bias: true),
    ]

    @Test("Winograd convolution, where oneDNN has it, equals the reference", arguments: winogradCases)
    func winograd(_ c: ConvCase) {
        let kernels = cpu.conv2dImplementations(inputShape: c.input, weightShape: c.weight, c.parameters, algorithm: .winograd)
        let direct = cpu.conv2dImplementations(inputShape: c.input, weightShape: c.weight, c.parameters, algorithm: .direct)
        if DNNL.channelBlock == 16 {
            // oneDNN 2.x has f32 Winograd F(4×4, 3×3) on AVX-512 for these problems (3×3,
            // stride 1, no dilation or groups, channels a multiple of 16): forward takes it.
            #expect(kernels[0].contains("wino"), "AVX-512 forward kernel \(kernels[0])")
        } else {
            // Elsewhere oneDNN 2.x has no Winograd, and the policy falls back to the direct kernels.
            #expect(kernels == direct, "no Winograd on this CPU: \(kernels) should be the direct \(direct)")
        }
        // Winograd's transforms add float32 rounding of about 3e-6 of the largest output (measured,
        // see ConvAlgorithm); checkConv's bound, 1e-4 of the largest output, leaves 30× margin.
        checkConv(c, .winograd)
    }

    @Test("repeated convolutions give bitwise equal results", arguments: [ConvAlgorithm.auto, .direct, .winograd])
    func deterministic(_ algorithm: ConvAlgorithm) {
        let p = Conv2dParameters(padding: (1, 1))
        let x = random([8, 64, 12, 12], 1), w = random([64, 64, 3, 3], 2), gy = random([8, 64, 12, 12], 3)
        func once() -> [[Float]] {
            let y = cpu.conv2d(x, weight: w, bias: nil, p, algorithm: algorithm)
            let gx = cpu.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p, algorithm: algorithm)
            let gw = cpu.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: true, p, algorithm: algorithm)
            return [y.toFloats(), gx.toFloats(), gw.weight.toFloats(), gw.bias?.toFloats() ?? []]
        }
        #expect(once() == once())
    }

    @Test("conv2d on a misaligned view (offset) with Winograd")
    func misalignedInput() {
        let c = ConvCase(input: [2, 16, 8, 8], weight: [16, 16, 3, 3], stride: (1, 1), pad: (1, 1), dilation: (1, 1), groups: 1, bias: false)
        // A contiguous tensor that starts 3 floats into its storage.
        let count = c.input.reduce(1, *)
        let base = random([count + 3], 5)
        let x = Tensor(storage: base.storage, shape: c.input, offset: 3, dtype: .float32, device: .cpu)
        let w = random(c.weight, 6)
        let y = cpu.conv2d(x, weight: w, bias: nil, c.parameters, algorithm: .winograd)
        #expect(relativeError(y, ref.conv2d(x, weight: w, bias: nil, c.parameters)) < Self.tolerance)
    }

    /// The dtype policy: float32 computes natively, integer operands take the reference loops,
    /// other floating-point dtypes stop with a message naming the op instead of running through
    /// the reference's Double loops unnoticed.
    @Test("float64, float16 and bfloat16 operands are refused with the op's name")
    func nonFloat32Refused() async {
        let results = [
            await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { DNNLSmokeTests.convolve(.float64) },
            await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { DNNLSmokeTests.convolve(.float16) },
            await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { DNNLSmokeTests.convolve(.bfloat16) },
        ]
        for (result, dtype) in zip(results, [DType.float64, .float16, .bfloat16]) {
            let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(stderr.contains("[conv2d] the cpu device computes in float32, got a \(dtype) operand"), "\(dtype)")
        }
    }

    static func convolve(_ dtype: DType) {
        CPUBackend.register()
        let x = Tensor.zeros([1, 2, 4, 4], dtype: dtype, device: .cpu), w = Tensor.zeros([3, 2, 3, 3], dtype: dtype, device: .cpu)
        _ = CPUBackend.shared.conv2d(x, weight: w, bias: nil, Conv2dParameters())
    }

    @Test("integer operands take the reference loops: the batch counter, labels")
    func integersComputed() {
        let counter = Tensor(doubles: [41], shape: [], dtype: .int64, device: .cpu)
        #expect((counter + counter.like(1)).toDoubles() == [42])
    }

    // MARK: Pooling

    struct PoolCase: CustomStringConvertible, Sendable {
        let name: String, input: [Int], p: Pool2dParameters, tied: Bool
        var description: String { name }
    }

    static let poolCases: [PoolCase] = [
        PoolCase(name: "max 2x2", input: [2, 3, 8, 8], p: Pool2dParameters(.max, kernel: (2, 2)), tied: false),
        PoolCase(name: "max 3x3/2 pad 1 odd", input: [2, 2, 9, 7], p: Pool2dParameters(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1)), tied: false),
        PoolCase(name: "max 2x2 ties", input: [2, 3, 6, 6], p: Pool2dParameters(.max, kernel: (2, 2)), tied: true),
        PoolCase(name: "max 3x3/1 pad 1 overlapping ties", input: [2, 3, 7, 6], p: Pool2dParameters(.max, kernel: (3, 3), stride: (1, 1), padding: (1, 1)), tied: true),
        PoolCase(name: "max 3x3/2 pad 1 ties", input: [1, 4, 9, 8], p: Pool2dParameters(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1)), tied: true),
        PoolCase(name: "max 3x2/(2,1) pad (1,1) ties", input: [2, 2, 7, 5], p: Pool2dParameters(.max, kernel: (3, 2), stride: (2, 1), padding: (1, 1)), tied: true),
        PoolCase(name: "avg 2x2 odd", input: [1, 4, 7, 5], p: Pool2dParameters(.average, kernel: (2, 2)), tied: false),
        PoolCase(name: "avg 3x3/2 pad 1", input: [2, 3, 10, 9], p: Pool2dParameters(.average, kernel: (3, 3), stride: (2, 2), padding: (1, 1)), tied: false),
        PoolCase(name: "avg 3x3/1 pad 1", input: [2, 3, 6, 7], p: Pool2dParameters(.average, kernel: (3, 3), stride: (1, 1), padding: (1, 1)), tied: false),
        PoolCase(name: "avg 2x2/1 pad 1", input: [1, 2, 5, 4], p: Pool2dParameters(.average, kernel: (2, 2), stride: (1, 1), padding: (1, 1)), tied: false),
        PoolCase(name: "avg 4x2/(3,2) pad (2,1)", input: [2, 2, 11, 7], p: Pool2dParameters(.average, kernel: (4, 2), stride: (3, 2), padding: (2, 1)), tied: false),
        // Non-overlapping average windows: SwiftSNN's loop (WindowPool), not oneDNN.
        PoolCase(name: "avg 2x2 even (window loop)", input: [2, 3, 8, 10], p: Pool2dParameters(.average, kernel: (2, 2)), tied: false),
        PoolCase(name: "avg 3x3 odd rest (window loop)", input: [2, 2, 11, 10], p: Pool2dParameters(.average, kernel: (3, 3)), tied: false),
        PoolCase(name: "avg 2x1 (window loop)", input: [1, 3, 7, 5], p: Pool2dParameters(.average, kernel: (2, 1)), tied: false),
        PoolCase(name: "avg 1x3 (window loop)", input: [1, 2, 4, 7], p: Pool2dParameters(.average, kernel: (1, 3)), tied: false),
        PoolCase(name: "avg 1x1 (window loop)", input: [1, 2, 3, 3], p: Pool2dParameters(.average, kernel: (1, 1)), tied: false),
    ]

    @Test("pool2d forward and backward equal the reference", arguments: poolCases)
    func pool(_ c: PoolCase) {
        let x = c.tied ? ties(c.input, 1) : random(c.input, 7)
        let y = cpu.pool2d(x, c.p)
        #expect(relativeError(y, ref.pool2d(x, c.p)) < Self.tolerance, "forward")
        let gy = random(y.shape, 8)
        let gx = cpu.pool2dBackward(gy, inputShape: x.shape, input: x, c.p)
        #expect(relativeError(gx, ref.pool2dBackward(gy, inputShape: x.shape, input: x, c.p)) < Self.tolerance, "backward")
    }

    @Test("non-overlapping average pooling takes SwiftSNN's loop; overlapping, padded or max pooling stays on oneDNN")
    func windowPoolCoverage() {
        #expect(WindowPool.covers([1, 1, 4, 4], Pool2dParameters(.average, kernel: (2, 2))))
        #expect(WindowPool.covers([1, 1, 5, 3], Pool2dParameters(.average, kernel: (3, 1))))
        #expect(!WindowPool.covers([1, 1, 4, 4], Pool2dParameters(.max, kernel: (2, 2))))
        #expect(!WindowPool.covers([1, 1, 4, 4], Pool2dParameters(.average, kernel: (2, 2), stride: (1, 1))))
        #expect(!WindowPool.covers([1, 1, 4, 4], Pool2dParameters(.average, kernel: (2, 2), padding: (1, 1))))
        #expect(!WindowPool.covers([1, 1, 1, 4], Pool2dParameters(.average, kernel: (2, 2))), "no whole window")
    }

    @Test("average pooling of spikes (2x2, 3x3) equals the reference exactly, forward and backward")
    func windowPoolOfSpikes() {
        for kernel in [2, 3] {
            // 0/1 values: every window sum and quotient by 4 is exact; by 9, correctly rounded.
            let values = (0..<(3 * 5 * 13 * 14)).map { Float(($0 * 7919 + $0 / 3) % 5 == 0 ? 1 : 0) }
            let x = Tensor(values, shape: [3, 5, 13, 14])
            let p = Pool2dParameters(.average, kernel: (kernel, kernel))
            let y = cpu.pool2d(x, p)
            #expect(y.toFloats() == ref.pool2d(x, p).toFloats(), "forward \(kernel)x\(kernel)")
            let gy = Tensor((0..<y.shape.reduce(1, *)).map { Float($0 % 11) - 5 }, shape: y.shape)
            #expect(cpu.pool2dBackward(gy, inputShape: x.shape, input: nil, p).toFloats()
                    == ref.pool2dBackward(gy, inputShape: x.shape, input: nil, p).toFloats(), "backward \(kernel)x\(kernel)")
        }
    }

    @Test("max pooling of negative values ignores padding and picks the first maximum")
    func maxPoolNegativeTies() {
        // Every value is -1: padded positions must not win, and each window's first real
        // position takes the gradient.
        let x = Tensor([Float](repeating: -1, count: 2 * 5 * 5), shape: [1, 2, 5, 5])
        let p = Pool2dParameters(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        let y = cpu.pool2d(x, p)
        #expect(y.toFloats().allSatisfy { $0 == -1 })
        let gy = Tensor.ones(y.shape)
        #expect(cpu.pool2dBackward(gy, inputShape: x.shape, input: x, p).toFloats() == ref.pool2dBackward(gy, inputShape: x.shape, input: x, p).toFloats())
    }

    // MARK: Batch norm

    @Test("batch norm training, eval and backward equal the reference",
          arguments: [[4, 3, 5, 5], [6, 5], [6, 32], [2, 16, 3, 3], [2, 20, 3, 5], [3, 4, 7], [2, 24, 2, 3, 2], [1, 8, 1, 1]])
    func batchNorm(_ shape: [Int]) {
        let c = shape[1]
        let x = random(shape, 9) * 2 + 0.5, gamma = random([c], 10), beta = random([c], 11)
        let rm = random([c], 12), rv = random([c], 13).abs() + 0.5
        for training in [true, false] {
            let a = cpu.batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, epsilon: 1e-5, training: training)
            let b = ref.batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, epsilon: 1e-5, training: training)
            #expect(relativeError(a.output, b.output) < Self.tolerance, "output, training \(training)")
            #expect(relativeError(a.mean, b.mean) < Self.tolerance, "mean, training \(training)")
            #expect(relativeError(a.variance, b.variance) < Self.tolerance, "variance, training \(training)")
        }
        let stats = cpu.batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, epsilon: 1e-5, training: true)
        let gy = random(shape, 14)
        let a = cpu.batchNormBackward(gy, input: x, gamma: gamma, mean: stats.mean, variance: stats.variance, epsilon: 1e-5)
        let b = ref.batchNormBackward(gy, input: x, gamma: gamma, mean: stats.mean, variance: stats.variance, epsilon: 1e-5)
        #expect(relativeError(a.input, b.input) < Self.tolerance, "input gradient")
        #expect(relativeError(a.gamma, b.gamma) < Self.tolerance, "gamma gradient")
        #expect(relativeError(a.beta, b.beta) < Self.tolerance, "beta gradient")
    }

    // MARK: GEMM

    @Test("GEMM with every transpose combination equals the reference",
          arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemm(_ t: (Bool, Bool)) {
        for (m, k, n) in [(5, 7, 3), (33, 17, 65), (1, 64, 1)] {
            let a = random(t.0 ? [k, m] : [m, k], 5), b = random(t.1 ? [n, k] : [k, n], 6)
            let c = cpu.matmul(a, b, transposeA: t.0, transposeB: t.1)
            #expect(relativeError(c, ref.matmul(a, b, transposeA: t.0, transposeB: t.1)) < Self.tolerance, "\(m)x\(k)x\(n)")
        }
    }

    @Test("GEMM with an empty inner dimension gives zeros")
    func gemmEmpty() {
        let c = cpu.matmul(Tensor.zeros([3, 0]), Tensor.zeros([0, 4]), transposeA: false, transposeB: false)
        #expect(c.shape == [3, 4] && c.toFloats().allSatisfy { $0 == 0 })
    }
}

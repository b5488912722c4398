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
}

import CSNNKernels
import Foundation
@testable import SNNCPU
import SNNTensor
import Testing

/// SwiftSNN's Winograd F(4×4, 3×3) convolution (`WinogradConv`): forward, data and weight gradients
/// against the reference backend on shapes with partial tiles, several runs of tiles and runs
/// that span images; the same bits on one thread as on many; and where the default policy
/// sends a convolution.
@Suite("Winograd convolution")
struct WinogradTests {
    init() { CPUBackend.register() }

    private let cpu = CPUBackend.shared
    private let ref = ReferenceBackend.shared
    private let p = Conv2dParameters(padding: (1, 1))

    private func random(_ shape: [Int], _ seed: UInt64) -> Tensor {
        Tensor.normal(shape, generator: RandomGenerator(seed: seed))
    }

    /// max |a − b| / max |b|.
    private func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        let x = a.toDoubles(), y = b.toDoubles()
        let scale = Swift.max(y.map(abs).max() ?? 0, 1e-30)
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    struct Case: CustomStringConvertible, Sendable {
        let input: [Int], outChannels: Int, bias: Bool
        var description: String { "x\(input) → \(outChannels)\(bias ? " bias" : "")" }
        /// Tiles in all: the runs of 64 they make.
        var tiles: Int { input[0] * ((input[2] + 3) / 4) * ((input[3] + 3) / 4) }
    }

    static let cases: [Case] = [
        // One partial tile in each direction, fewer tiles than a run.
        Case(input: [1, 3, 5, 7], outChannels: 2, bias: true),
        // 90 tiles: a whole run and a partial one, the second starting inside image 1.
        Case(input: [3, 5, 18, 22], outChannels: 7, bias: false),
        // More output than input channels and the reverse, 4×4-aligned and not.
        Case(input: [2, 16, 16, 16], outChannels: 40, bias: true),
        Case(input: [4, 40, 13, 9], outChannels: 16, bias: false),
        // Three rows and three columns past the last whole tile.
        Case(input: [2, 12, 11, 15], outChannels: 9, bias: true),
        // Exactly one tile per image, and 2×2 images in one tile.
        Case(input: [70, 8, 4, 4], outChannels: 8, bias: true),
        Case(input: [9, 6, 2, 2], outChannels: 5, bias: false),
        // 168 tiles: the weight gradient's products sum over two steps of tiles (128, then 40),
        // over a whole and a partial block of channels.
        Case(input: [3, 37, 30, 26], outChannels: 20, bias: false),
    ]

    @Test("forward, data and weight gradients equal the reference to 2e-5 of the largest value", arguments: cases)
    func parity(_ c: Case) {
        let x = random(c.input, 1), w = random([c.outChannels, c.input[1], 3, 3], 2)
        let b = c.bias ? random([c.outChannels], 3) : nil
        #expect(WinogradConv.covers(input: x.shape, weight: w.shape, p))
        let y = WinogradConv.forward(x, weight: w, bias: b)
        let expected = ref.conv2d(x, weight: w, bias: b, p)
        #expect(y.shape == expected.shape)
        #expect(relativeError(y, expected) < 2e-5, "forward")
        let gy = random(expected.shape, 4)
        let gx = WinogradConv.backwardData(gy, weight: w, inputShape: x.shape)
        #expect(relativeError(gx, ref.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p)) < 2e-5, "data gradient")
        let (gw, gb) = WinogradConv.backwardWeight(gy, input: x, weightShape: w.shape, withBias: c.bias)
        let (gwr, gbr) = ref.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: c.bias, p)
        #expect(relativeError(gw, gwr) < 2e-5, "weight gradient")
        #expect((gb == nil) == (gbr == nil))
        if let gb, let gbr { #expect(relativeError(gb, gbr) < 1e-6, "bias gradient") }
    }

    @Test("a strided view gives the result of its contiguous copy")
    func stridedInput() {
        let x = random([6, 2, 9, 5], 5).permuted([1, 0, 2, 3])  // [2, 6, 9, 5], not contiguous
        let w = random([4, 6, 3, 3], 6)
        #expect(!x.isContiguous)
        #expect(WinogradConv.forward(x, weight: w, bias: nil).toFloats()
            == WinogradConv.forward(x.contiguous(), weight: w, bias: nil).toFloats())
    }

    /// A partial block of 6 channels and a partial last block of tiles: of 16 (AVX2) and 32
    /// (AVX-512) tiles with 19, of 32 (AVX-512) with 40 (AVX2 gets whole blocks of 16 up to 48).
    @Test("a run's products: packed filters times transforms, zeros past the last tile whatever the workspace held",
          arguments: [(19, 32, 32), (40, 64, 48)])
    func runProducts(count: Int, ld: Int, zeroedTo: Int) {
        let (k, c) = (7, 5)
        let rows = (k + 5) / 6 * 6
        let generator = RandomGenerator(seed: 21)
        let filterValues = generator.uniform(36 * k * c), tileValues = generator.uniform(36 * c * count)
        // u[e][k][c] packed in blocks of 6 output channels ([c][6] each), zero past k.
        var u = [Float](repeating: 0, count: 36 * rows * c)
        var plain = [[Float]](repeating: [Float](repeating: 0, count: c), count: 36 * k)
        for e in 0..<36 {
            for kk in 0..<k {
                for cc in 0..<c {
                    let value = 2 * filterValues[(e * k + kk) * c + cc] - 1
                    plain[e * k + kk][cc] = value
                    u[e * rows * c + kk / 6 * 6 * c + cc * 6 + kk % 6] = value
                }
            }
        }
        // v[e][c][p], rows of `ld`: NaN past `count`, as a block reused from other work may hold.
        var v = [Float](repeating: .nan, count: 36 * c * ld)
        for row in 0..<(36 * c) {
            for p in 0..<count { v[row * ld + p] = 2 * tileValues[row * count + p] - 1 }
        }
        let original = v
        var m = [Float](repeating: .nan, count: 36 * k * ld)
        snn_winograd_multiply(u, &v, Int32(k), Int32(c), Int32(count), Int32(ld), &m)
        var worst = 0.0
        for e in 0..<36 {
            for kk in 0..<k {
                for p in 0..<count {
                    var sum = 0.0
                    for cc in 0..<c { sum += Double(plain[e * k + kk][cc]) * Double(original[(e * c + cc) * ld + p]) }
                    worst = Swift.max(worst, abs(Double(m[(e * k + kk) * ld + p]) - sum))
                }
                for p in count..<zeroedTo { #expect(m[(e * k + kk) * ld + p] == 0, "e \(e) k \(kk) tile \(p)") }
            }
        }
        #expect(worst < 1e-5)
    }

    /// A partial block of 6 output channels, a whole and a partial block of input channels (32 with
    /// AVX-512, 16 with AVX2), and a step added to sums already there.
    @Test("a step's weight-gradient products: g times v transposed, stored or added", arguments: [false, true])
    func gradientProducts(accumulate: Bool) {
        let (k, c, count) = (7, 37, 19)
        let generator = RandomGenerator(seed: 22)
        let g = generator.uniform(k * count).map { 2 * $0 - 1 }, v = generator.uniform(c * count).map { 2 * $0 - 1 }
        let before = generator.uniform(k * c)
        var m = accumulate ? before : [Float](repeating: .nan, count: k * c)
        var pack = [Float](repeating: .nan, count: Int(snn_winograd_gradient_pack_floats(Int32(count))))
        snn_winograd_multiply_gradient(g, v, Int32(k), Int32(c), Int32(count), accumulate ? 1 : 0, &m, &pack)
        var worst = 0.0
        for kk in 0..<k {
            for cc in 0..<c {
                var sum = accumulate ? Double(before[kk * c + cc]) : 0
                for p in 0..<count { sum += Double(g[kk * count + p]) * Double(v[cc * count + p]) }
                worst = Swift.max(worst, abs(Double(m[kk * c + cc]) - sum))
            }
        }
        #expect(worst < 1e-5)
    }

    /// `make test` runs the suites of SwiftSNN's C kernels again under `SNN_MAX_CPU_ISA=avx2` and
    /// `base`, so that every variant is checked on an AVX-512 host.
    @Test("SNN_MAX_CPU_ISA caps the instruction set the kernels use")
    func instructionSetCap() {
        let isa = Int(snn_kernel_isa())
        switch ProcessInfo.processInfo.environment["SNN_MAX_CPU_ISA"] {
        case "base": #expect(isa == Int(SNN_ISA_BASE))
        case "avx2": #expect(isa <= Int(SNN_ISA_AVX2))
        default: #expect((Int(SNN_ISA_BASE)...Int(SNN_ISA_AVX512)).contains(isa))
        }
    }

    @Test("runs of 128 tiles where every thread still gets its share, shorter ones where not")
    func runLengths() {
        // ResNet-19's 512-channel layer at T=4, batch 16 (256 tiles): two runs of 128 for two threads.
        #expect(WinogradConv.tilesPerRun(tiles: 256, threads: 2) == 128)
        #expect(WinogradConv.tilesPerRun(tiles: 4096, threads: 2) == 128)
        // Five runs of 128 would leave one thread three: ten of 64 split evenly.
        #expect(WinogradConv.tilesPerRun(tiles: 640, threads: 2) == 64)
        // Sixteen threads over 256 tiles: runs of 32 keep eight of them busy.
        #expect(WinogradConv.tilesPerRun(tiles: 256, threads: 16) == 32)
        #expect(WinogradConv.tilesPerRun(tiles: 1, threads: 1) == 32)
    }

    @Test("one thread gives the bits of a team (runs are independent)")
    func threadIndependent() {
        let x = random([3, 24, 18, 22], 7), w = random([20, 24, 3, 3], 8), gy = random([3, 20, 18, 22], 9)
        func all() -> [[Float]] {
            let (gw, gb) = WinogradConv.backwardWeight(gy, input: x, weightShape: w.shape, withBias: true)
            return [WinogradConv.forward(x, weight: w, bias: nil).toFloats(),
                    WinogradConv.backwardData(gy, weight: w, inputShape: x.shape).toFloats(), gw.toFloats(), gb?.toFloats() ?? []]
        }
        let team = all()
        // Inside a parallel region the nested region runs on one thread.
        var single: [[Float]] = []
        OpenMP.parallel { thread, _ in
            if thread == 0 { single = all() }
        }
        #expect(single == team)
    }

    @Test("what it covers: 3×3, stride 1, padding 1, no dilation or groups")
    func coverage() {
        let x = [2, 16, 8, 8], w = [16, 16, 3, 3]
        #expect(WinogradConv.covers(input: x, weight: w, p))
        #expect(!WinogradConv.covers(input: x, weight: w, Conv2dParameters(stride: (2, 2), padding: (1, 1))))
        #expect(!WinogradConv.covers(input: x, weight: w, Conv2dParameters(padding: (0, 0))))
        #expect(!WinogradConv.covers(input: x, weight: w, Conv2dParameters(padding: (1, 1), dilation: (2, 2))))
        #expect(!WinogradConv.covers(input: x, weight: [16, 4, 3, 3], Conv2dParameters(padding: (1, 1), groups: 4)))
        #expect(!WinogradConv.covers(input: x, weight: [16, 16, 5, 5], Conv2dParameters(padding: (1, 1))))
    }

    @Test("the default rule: at least 16 channels in and out, and tiles that waste at most half")
    func defaultRule() {
        #expect(WinogradConv.pays(input: [160, 64, 48, 48], weight: [128, 64, 3, 3]))
        #expect(WinogradConv.pays(input: [160, 512, 6, 6], weight: [512, 512, 3, 3]))  // 36 of 64
        #expect(!WinogradConv.pays(input: [160, 2, 48, 48], weight: [64, 2, 3, 3]))  // VGGSNN's input layer
        #expect(!WinogradConv.pays(input: [160, 64, 48, 48], weight: [8, 64, 3, 3]))  // 8 channels out
        #expect(!WinogradConv.pays(input: [8, 64, 5, 5], weight: [64, 64, 3, 3]))  // 25 of 64
    }

    @Test("the backend sends a covered convolution here unless the policy is direct, also where oneDNN has a Winograd of its own (AVX-512)")
    func dispatch() {
        let x = random([4, 32, 12, 12], 10), w = random([48, 32, 3, 3], 11), b = random([48], 12)
        let gy = random([4, 48, 12, 12], 13)
        let ours = WinogradConv.forward(x, weight: w, bias: b).toFloats()
        let oursData = WinogradConv.backwardData(gy, weight: w, inputShape: x.shape).toFloats()
        let oursWeight = WinogradConv.backwardWeight(gy, input: x, weightShape: w.shape, withBias: true).weight.toFloats()
        let direct = cpu.conv2d(x, weight: w, bias: b, p, algorithm: .direct).toFloats()
        #expect(ours != direct, "the two algorithms round differently, so the checks below can tell them apart")
        for algorithm in [ConvAlgorithm.auto, .winograd, .timed] {
            let y = cpu.conv2d(x, weight: w, bias: b, p, algorithm: algorithm).toFloats()
            let gx = cpu.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p, algorithm: algorithm).toFloats()
            let gw = cpu.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: true, p, algorithm: algorithm)
            if algorithm == .timed {
                // Whichever measured faster: either is right.
                #expect(relativeError(Tensor(y, shape: [4, 48, 12, 12]), Tensor(ours, shape: [4, 48, 12, 12])) < 1e-5)
            } else {
                #expect(y == ours, "\(algorithm) forward")
                #expect(gx == oursData, "\(algorithm) data gradient")
                #expect(gw.weight.toFloats() == oursWeight, "\(algorithm) weight gradient")
            }
        }
        #expect(cpu.conv2d(x, weight: w, bias: b, p, algorithm: .direct).toFloats() == direct)
        #expect(cpu.conv2dBackwardData(gy, weight: w, inputShape: x.shape, p, algorithm: .direct).toFloats() != oursData)
        #expect(cpu.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: true, p, algorithm: .direct).weight.toFloats()
            != oursWeight)
    }

    @Test("spikes with more than 20 % ones (forward) or 12 % (weight gradient) go to Winograd, sparser ones to the spike kernels")
    func spikesBesideWinograd() throws {
        let w = random([32, 24, 3, 3], 14)
        try #require(ConvAlgorithm.selected == .auto && SpikeConv.enabled, "the default policy")
        let gy = random([4, 32, 12, 12], 16)
        for (share, forwardWinograd, weightWinograd) in [(0.05, false, false), (0.16, false, true), (0.26, true, true)] {
            let x = SpikeConvTests.spikes([4, 24, 12, 12], density: share, seed: 15)
            let y = cpu.conv2d(x, weight: w, bias: nil, p).toFloats()
            let expected = forwardWinograd ? WinogradConv.forward(x, weight: w, bias: nil)
                                           : try #require(SpikeConv.forward(x, weight: w, bias: nil, p, force: true))
            #expect(y == expected.toFloats(), "forward, \(share) ones")
            let gw = cpu.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, withBias: false, p).weight.toFloats()
            let expectedWeight = weightWinograd
                ? WinogradConv.backwardWeight(gy, input: x, weightShape: w.shape, withBias: false).weight
                : try #require(SpikeConv.backwardWeight(gy, input: x, weightShape: w.shape, withBias: false, p, force: true)).weight
            #expect(gw == expectedWeight.toFloats(), "weight gradient, \(share) ones")
        }
    }
}

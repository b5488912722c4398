import CSNNKernels
@testable import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

/// The convolution of spikes (`SpikeConv`: forward from packed bits, the weight gradient from
/// lists of ones) against oneDNN's dense convolution and the reference backend, on shapes that cross its 64-channel words and blocks.
@Suite("convolution of spikes")
struct SpikeConvTests {
    init() { CPUBackend.register() }

    struct Case: CustomStringConvertible, Sendable {
        var input: [Int], weight: [Int], stride = (1, 1), padding = (0, 0), bias = true
        var description: String { "\(input) * \(weight) stride \(stride) padding \(padding)\(bias ? " + bias" : "")" }
        var parameters: Conv2dParameters {
            Conv2dParameters(stride: stride, padding: padding)
        }
    }

    static let cases = [
        // 70 channels: a full and a partial 64-bit word; 67 outputs: a full and a partial block of 64.
        Case(input: [3, 70, 9, 11], weight: [67, 70, 3, 3], padding: (1, 1)),
        Case(input: [2, 5, 8, 8], weight: [130, 5, 5, 5], stride: (2, 2), padding: (2, 2)),
        Case(input: [2, 64, 7, 6], weight: [64, 64, 1, 1], bias: false),
        Case(input: [2, 9, 9, 7], weight: [5, 9, 3, 2], stride: (2, 1), padding: (1, 0)),
        Case(input: [1, 128, 6, 6], weight: [16, 128, 3, 3], stride: (2, 2), padding: (0, 0), bias: false),
        // Stride 1 without padding (the weight gradient's border above and left) and with more
        // padding than the kernel needs (outputs beyond the input).
        Case(input: [2, 6, 7, 9], weight: [70, 6, 3, 2]),
        Case(input: [2, 3, 5, 5], weight: [8, 3, 3, 3], padding: (3, 2)),
        // 100 output rows of 30 pixels: the forward kernel's groups of 17 rows (pixelsPerGroup
        // 512) cross samples, and the last one is partial.
        Case(input: [5, 70, 20, 30], weight: [67, 70, 3, 3], padding: (1, 1)),
    ]

    /// Spikes of the given density, marked as spikes as a neuron's output is.
    static func spikes(_ shape: [Int], density: Double, seed: UInt64) -> Tensor {
        let count = shape.reduce(1, *)
        let u = RandomInputs(seed: seed).uniformValues(count)
        // A neuron with threshold 1 fires at step 1 where its input (u + density) reaches 1.
        let x = Tensor(u.map { Float($0 + density) }, shape: [1, count])
        return neuronScan(x, NeuronParameters(tau: 1, threshold: 1, reset: .hard(0))).reshaped(shape)
    }

    @Test("output against oneDNN's dense convolution and the reference backend", arguments: cases)
    func parity(c: Case) throws {
        let x = Self.spikes(c.input, density: 0.15, seed: 7)
        #expect(x.spikeQuantum == 1)
        let ones = x.toFloats().filter { $0 == 1 }.count
        #expect(ones > 0 && ones < x.count / 4, "the inputs must be sparse spikes (\(ones) of \(x.count))")
        let r = RandomInputs(seed: 8)
        let weight = r.normal(c.weight, dtype: .float32, device: .cpu)
        let bias = c.bias ? r.normal([c.weight[0]], dtype: .float32, device: .cpu) : nil
        let p = c.parameters
        let sparse = try #require(SpikeConv.forward(x, weight: weight, bias: bias, p, force: true))
        let backend = try #require(x.backend as? CPUBackend)
        let dense = backend.conv2d(x, weight: weight, bias: bias, p, algorithm: .direct)
        let reference = conv2d(x.to(.reference), weight: weight.to(.reference), bias: bias?.to(.reference), stride: c.stride,
                               padding: c.padding)
        #expect(sparse.shape == dense.shape && sparse.shape == reference.shape)
        let (a, b, e) = (sparse.toDoubles(), dense.toDoubles(), reference.toDoubles())
        let scale: Double = Swift.max(e.map { Swift.abs($0) }.max() ?? 0, 1)
        let worst: Double = zip(a, e).map { Swift.abs($0 - $1) }.max() ?? 0
        let denseWorst: Double = zip(b, e).map { Swift.abs($0 - $1) }.max() ?? 0
        // Float sums of at most a few hundred terms, in another order than oneDNN's.
        #expect(worst / scale <= 1e-6, "\(c): sparse against the reference: \(worst / scale) (oneDNN: \(denseWorst / scale))")
        // The public op takes this path, and the result does not depend on how it was reached.
        #expect(conv2d(x, weight: weight, bias: bias, stride: c.stride, padding: c.padding).toDoubles() == a)
    }

    @Test("weight and bias gradients against oneDNN's dense backward pass and the reference backend", arguments: cases)
    func weightGradientParity(c: Case) throws {
        let x = Self.spikes(c.input, density: 0.15, seed: 17)
        let p = c.parameters
        let outShape = ConvPlan.outputShape(c.input, c.weight, p)
        let gy = RandomInputs(seed: 18).normal(outShape, dtype: .float32, device: .cpu)
        let (gw, gb) = try #require(SpikeConv.backwardWeight(gy, input: x, weightShape: c.weight, withBias: c.bias, p,
                                                             force: true))
        let backend = try #require(x.backend as? CPUBackend)
        let dense = backend.conv2dBackwardWeight(gy, input: x, weightShape: c.weight, withBias: c.bias, p, algorithm: .direct)
        let reference = Device.reference.backend.conv2dBackwardWeight(gy.to(.reference), input: x.to(.reference),
                                                                      weightShape: c.weight, withBias: c.bias, p)
        #expect(gw.shape == c.weight && (gb == nil) == !c.bias)
        for (name, sparse, oneDNN, exact) in [("weight", gw, dense.weight, reference.weight)]
            + (c.bias ? [("bias", gb!, dense.bias!, reference.bias!)] : []) {
            let (a, b, e) = (sparse.toDoubles(), oneDNN.toDoubles(), exact.toDoubles())
            let scale: Double = Swift.max(e.map { Swift.abs($0) }.max() ?? 0, 1)
            let worst: Double = zip(a, e).map { Swift.abs($0 - $1) }.max() ?? 0
            let denseWorst: Double = zip(b, e).map { Swift.abs($0 - $1) }.max() ?? 0
            #expect(worst / scale <= 2e-6, "\(c) \(name): sparse against the reference: \(worst / scale) (oneDNN: \(denseWorst / scale))")
        }
        // The public op's gradient takes this path (with fewer ones than the limit beside Winograd).
        let sparse = Self.spikes(c.input, density: 0.08, seed: 20)
        let (sparseGW, _) = try #require(SpikeConv.backwardWeight(gy, input: sparse, weightShape: c.weight, withBias: c.bias, p,
                                                                  force: true))
        let w = RandomInputs(seed: 19).normal(c.weight, dtype: .float32, device: .cpu)
        w.requiresGrad = true
        let y = conv2d(sparse, weight: w, stride: c.stride, padding: c.padding)
        (y * gy).sum().backward()
        #expect(try #require(w.grad).toDoubles() == sparseGW.toDoubles())
    }

    @Test("the weight gradient does not depend on the thread count")
    func weightGradientThreadCountInvariant() throws {
        let x = Self.spikes([5, 70, 12, 12], density: 0.15, seed: 23)
        let p = Conv2dParameters(padding: (1, 1))
        let gy = RandomInputs(seed: 24).normal([5, 67, 12, 12], dtype: .float32, device: .cpu)
        let split = try #require(SpikeConv.backwardWeight(gy, input: x, weightShape: [67, 70, 3, 3], withBias: true, p,
                                                          force: true))
        let serial = try Parallel.$serialThresholdOverride.withValue(Int.max) {
            try #require(SpikeConv.backwardWeight(gy, input: x, weightShape: [67, 70, 3, 3], withBias: true, p, force: true))
        }
        #expect(split.weight.toFloats() == serial.weight.toFloats() && split.bias?.toFloats() == serial.bias?.toFloats())
    }

    @Test("the result does not depend on the thread count: one thread gives the two threads' sums bit for bit")
    func threadCountInvariant() throws {
        let x = Self.spikes([4, 70, 12, 12], density: 0.15, seed: 13)
        let weight = RandomInputs(seed: 14).normal([67, 70, 3, 3], dtype: .float32, device: .cpu)
        let p = Conv2dParameters(padding: (1, 1))
        let split = try #require(SpikeConv.forward(x, weight: weight, bias: nil, p, force: true)).toFloats()
        let serial = try Parallel.$serialThresholdOverride.withValue(Int.max) {
            try #require(SpikeConv.forward(x, weight: weight, bias: nil, p, force: true)).toFloats()
        }
        #expect(split == serial)
    }

    /// 70 channels (a full and a partial word) over 9×11 pixels (a full and a partial chunk of 64).
    @Test("spikes packed into bit masks per pixel: every bit, the count of ones, and -1 for a value not 0 or 1")
    func packing() {
        let (c, h, w) = (70, 9, 11)
        let values = RandomInputs(seed: 5).uniformValues(c * h * w).map { Float($0 < 0.2 ? 1 : 0) }
        var bits = [UInt64](repeating: 0xdead, count: h * w * 2)
        #expect(snn_pack_spikes(values, Int32(c), Int32(h), Int32(w), &bits) == values.filter { $0 == 1 }.count)
        for pixel in 0..<(h * w) {
            for channel in 0..<c {
                let bit = bits[pixel * 2 + channel / 64] >> UInt64(channel % 64) & 1
                #expect(bit == (values[channel * h * w + pixel] == 1 ? 1 : 0), "pixel \(pixel) channel \(channel)")
            }
            #expect(bits[pixel * 2 + 1] >> 6 == 0, "pixel \(pixel): bits past the last channel")
        }
        for bad in [Float(0.5), -1, .nan, 2] {
            var broken = values
            broken[69 * h * w + 98] = bad  // the last channel's last pixel: the last word's partial chunk
            #expect(snn_pack_spikes(broken, Int32(c), Int32(h), Int32(w), &bits) == -1, "\(bad)")
        }
    }

    @Test("dense spikes, plain values, groups and dilation go to oneDNN")
    func fallbacks() {
        let weight = RandomInputs(seed: 9).normal([8, 8, 3, 3], dtype: .float32, device: .cpu)
        let p = Conv2dParameters(padding: (1, 1))
        #expect(SpikeConv.forward(Self.spikes([2, 8, 6, 6], density: 0.6, seed: 10), weight: weight, bias: nil, p) == nil)
        let plain = RandomInputs(seed: 11).uniform([2, 8, 6, 6], dtype: .float32, device: .cpu)
        #expect(plain.spikeQuantum == nil && SpikeConv.forward(plain, weight: weight, bias: nil, p) == nil)
        let sparse = Self.spikes([2, 8, 6, 6], density: 0.1, seed: 12)
        #expect(SpikeConv.forward(sparse, weight: weight, bias: nil, p) != nil)
        #expect(SpikeConv.forward(sparse, weight: weight, bias: nil, Conv2dParameters(padding: (2, 2), dilation: (2, 2))) == nil)
        let gy = RandomInputs(seed: 25).normal([2, 8, 6, 6], dtype: .float32, device: .cpu)
        let shape = [8, 8, 3, 3]
        #expect(SpikeConv.backwardWeight(gy, input: Self.spikes([2, 8, 6, 6], density: 0.6, seed: 10), weightShape: shape,
                                         withBias: false, p) == nil)
        #expect(SpikeConv.backwardWeight(gy, input: plain, weightShape: shape, withBias: false, p) == nil)
        #expect(SpikeConv.backwardWeight(gy, input: sparse, weightShape: shape, withBias: false, p) != nil)
        // A strided convolution's weight gradient from spikes as dense as ResNet-19's (14–23 % ones)
        // goes to oneDNN, which was 1.6–2.7× faster on its downsampling layers; stride 1 keeps the kernel.
        let strided = Conv2dParameters(stride: (2, 2), padding: (1, 1))
        let resnetLike = Self.spikes([2, 8, 6, 6], density: 0.15, seed: 13)
        let gyStrided = RandomInputs(seed: 26).normal([2, 8, 3, 3], dtype: .float32, device: .cpu)
        #expect(SpikeConv.backwardWeight(gyStrided, input: resnetLike, weightShape: shape, withBias: false, strided,
                                         densityLimit: SpikeConv.backwardDensityLimit(strided, besideWinograd: false)) == nil)
        #expect(SpikeConv.backwardWeight(gy, input: resnetLike, weightShape: shape, withBias: false, p,
                                         densityLimit: SpikeConv.backwardDensityLimit(p, besideWinograd: false)) != nil)
        #expect(SpikeConv.backwardDensityLimit(p, besideWinograd: true) == SpikeConv.maximumBackwardDensityBesideWinograd)
    }
}

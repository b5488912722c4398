import CSNNKernels
import Foundation
import SNNTensor

/// Convolution forward of spikes: when the input is known to hold only 0 and 1
/// (``Tensor/spikeQuantum`` 1, as every spiking layer's output) and few of them are 1, the
/// output is a sum of weight rows, one per input spike, instead of a dense product.
///
/// Each sample's input is packed into one bit mask of channels per pixel; each output pixel then
/// adds, for every word of 64 input channels, kernel tap and set bit, the weight row of that
/// input channel (64 output channels in registers at a time), in the order word, tap, channel, so
/// the result does not depend on the thread count (`snn_spike_conv_rows` has the loop order and
/// layout). The sums are those of the dense product up to float rounding (the order of the terms
/// differs from oneDNN's). The dense passes keep every other convolution, the data gradient
/// (whose incoming gradient is dense), grouped or dilated ones and inputs with more ones than
/// ``maximumDensity`` (``maximumDensityBesideWinograd`` where the dense pass would be SwiftSNN's
/// Winograd). `SNN_SPIKE_CONV=0` sends every convolution to the dense passes.
enum SpikeConv {
    /// Whether spike inputs take this path (`SNN_SPIKE_CONV`, read once; on unless `0`).
    static let enabled = ProcessInfo.processInfo.environment["SNN_SPIKE_CONV"] != "0"

    /// Above this share of ones the sparse path stops paying: on the benchmark layer (64 × 128 →
    /// 128, 16×16, 3×3) a probe of the same loop ran at 2.5× oneDNN's rate with 15% ones and 1.4×
    /// with 30% (`snn bench ops` times it at 10% and 20%).
    static let maximumDensity = 0.3

    /// The same where the dense alternative is SwiftSNN's Winograd (``WinogradConv``), about twice
    /// oneDNN's direct rate. With 20 % ones the spike kernel still beat Winograd on VGGSNN's and
    /// ResNet-19's layers (`snn bench ops --conv-batch 160 --conv-channels 512 --conv-size 12`:
    /// 455 GFLOP/s-equivalent against 408; 256 channels at 24×24: 440 against 407; 64 → 128 at
    /// 48×48: 350 against 304; ResNet-19's 128 at 32×32, N=64: 372 against 367), and its time
    /// grows with the ones, so the two meet a little above 20 %.
    static let maximumDensityBesideWinograd = 0.2

    /// Output pixels per call of the rows kernel (rounded to whole rows): their sums for one block
    /// of 64 output channels (`pixelsPerGroup · 256` bytes, 32 KB) stay in a core's L2 cache
    /// between taps; 64, 128 and 256 measured alike on VGGSNN's and ResNet-19's layers.
    static let pixelsPerGroup = 128

    /// The output of `conv2d(x, weight, bias)` from the spikes of `x`, or nil when `x` is not
    /// spikes, too dense, or the convolution grouped or dilated.
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters, force: Bool = false,
                        densityLimit: Double = maximumDensity) -> Tensor? {
        guard enabled || force, x.spikeQuantum == 1, x.dtype == .float32, weight.dtype == .float32, x.rank == 4,
              p.groups == 1, p.dilationH == 1, p.dilationW == 1, x.count > 0 else { return nil }
        let (x, weight) = (x.contiguousData(), weight.contiguousData())
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let px = UnsafePointer(x.pointer(as: Float.self))
        if !force && density(px, count: x.count) > densityLimit { return nil }
        let outShape = ConvPlan.outputShape(x.shape, weight.shape, p)
        let (ho, wo) = (outShape[2], outShape[3])
        let y = Tensor.empty(outShape, device: .cpu)
        if ho == 0 || wo == 0 || o == 0 { return y }

        // Weights as [O padded to 64, in blocks of 64][kh][kw][C][64], zero beyond O.
        let padded = (o + 63) / 64 * 64
        let rows = kh * kw * c
        // Buffers from the tensor allocator (64-byte aligned), which reuses the blocks of earlier
        // steps instead of growing the heap.
        let transposedStorage = Tensor.zeros([rows * padded], device: .cpu)
        let transposed = transposedStorage.pointer(as: Float.self)
        let pw = UnsafePointer(weight.pointer(as: Float.self))
        Parallel.forEachRange(o, cost: rows) { range in
            for oc in range {
                let block = transposed + oc / 64 * rows * 64 + oc % 64
                for ci in 0..<c {
                    for t in 0..<(kh * kw) { block[(t * c + ci) * 64] = pw[(oc * c + ci) * kh * kw + t] }
                }
            }
        }
        // Every sample's spikes as bits; a value that is not 0 or 1 would break the tensor's promise.
        let words = (c + 63) / 64
        let sampleWords = h * w * words
        let bitsStorage = Tensor.empty([2 * n * sampleWords], device: .cpu)
        let bits = UnsafeMutableRawPointer(bitsStorage.pointer(as: Float.self)).assumingMemoryBound(to: UInt64.self)
        let malformed = UnsafeMutablePointer<Int>.allocate(capacity: n)
        defer { malformed.deallocate() }
        Parallel.forEachRange(n, cost: c * h * w) { range in
            for s in range {
                malformed[s] = snn_pack_spikes(px + s * c * h * w, Int32(c), Int32(h), Int32(w), bits + s * sampleWords) < 0 ? 1 : 0
            }
        }
        precondition((0..<n).allSatisfy { malformed[$0] == 0 }, "[conv2d] an input marked as spikes holds values other than 0 and 1")

        // Groups of about ``pixelsPerGroup`` output pixels (whole rows) share each weight block's
        // trip through the cache; threads take whole groups.
        let pb = bias.map { UnsafePointer($0.contiguousData().pointer(as: Float.self)) }
        let py = y.pointer(as: Float.self)
        let outRows = n * ho
        let rowsPerGroup = Swift.max(1, Swift.min(outRows, pixelsPerGroup / wo))
        let groups = (outRows + rowsPerGroup - 1) / rowsPerGroup
        Parallel.forEachRange(groups, cost: rowsPerGroup * wo * kh * kw * max(c / 8, 1) * padded / 8) { range in
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: rowsPerGroup * wo * 64 * 4, alignment: 64)
            defer { scratch.deallocate() }
            for g in range {
                let first = g * rowsPerGroup
                snn_spike_conv_rows(bits, sampleWords, Int32(c), Int32(h), Int32(w), transposed, pb, Int32(o), Int32(padded),
                                    Int32(kh), Int32(kw), Int32(p.strideH), Int32(p.strideW), Int32(p.padH), Int32(p.padW),
                                    Int32(ho), Int32(wo), first, Int32(Swift.min(rowsPerGroup, outRows - first)),
                                    scratch.assumingMemoryBound(to: Float.self), py)
            }
        }
        return withExtendedLifetime((x, weight, bias, transposedStorage, bitsStorage)) { y }
    }

    /// Above this share of ones the weight gradient from spikes stops paying: its time grows
    /// with the ones (on the benchmark layer 453–529 GFLOP/s-equivalent at 10 %, 298–318 at 20 %,
    /// so about 200 at 30 %) where oneDNN's dense pass runs at 141–151 (`snn bench ops`).
    /// Pooled spikes, about 45 % nonzero in VGGSNN, stay dense.
    static let maximumBackwardDensity = 0.3

    /// The same for strided convolutions (ResNet-19's downsampling layers), where a one reaches
    /// an output position from only some of its taps and the kernel pays for all of them: on
    /// ResNet-19's two stride-2 layers (`snn bench ops --conv-channels 128,256 --conv-size 32
    /// --conv-stride 2`, and 256,512 at 16) it ran at 170–175 GFLOP/s-equivalent with 10 % ones
    /// and 103–112 with 20 %, where oneDNN's dense pass ran at 278–281 on an AVX-512 host (on an
    /// AVX2 host its direct weight gradient ran at 138–149 on the stride-1 benchmark layer, so
    /// there too the kernel would lose at 20 %); on the 1×1 stride-2 shortcuts (`--conv-kernel 1`)
    /// 37–55 and 63–107 against 131–230. ResNet-19's spikes run at 14–23 %.
    static let maximumStridedBackwardDensity = 0.05

    /// The same where the dense alternative is SwiftSNN's Winograd weight gradient. With 20 %
    /// ones Winograd won on every layer measured (`snn bench ops --conv-channels …`: 512 channels
    /// at 12×12, 479 GFLOP/s-equivalent against the spike kernel's 447; 256 at 24×24, 422 against
    /// 298; 64 → 128 at 48×48, 324 against 223; ResNet-19's 128 at 32×32, 390 against 290); with
    /// 10 % the spike kernel won on the wider layers (744–820 against about 450 at 512 channels)
    /// and tied on the others. VGGSNN's and ResNet-19's spikes run at 14–23 %.
    static let maximumBackwardDensityBesideWinograd = 0.12

    /// The most ones the weight gradient from spikes takes for a convolution of parameters `p`
    /// whose dense weight gradient would be SwiftSNN's Winograd (`besideWinograd`) or oneDNN's.
    static func backwardDensityLimit(_ p: Conv2dParameters, besideWinograd: Bool) -> Double {
        if besideWinograd { return maximumBackwardDensityBesideWinograd }
        return p.strideH == 1 && p.strideW == 1 ? maximumBackwardDensity : maximumStridedBackwardDensity
    }

    /// The gradient of `conv2d(x, weight, bias)`'s weight (and bias) from the spikes of `x`, or
    /// nil when `x` is not spikes, too dense, or the convolution grouped or dilated.
    ///
    /// Each input one adds, for every tap, the output gradient at the position it reached
    /// (64 output channels in registers at a time) to that tap's row of the weight gradient:
    /// sums of gradient rows instead of a dense product. The output gradient is copied to blocks
    /// of 64 channels, each channels-last, a few samples at a time (about 4 MiB); threads split the input
    /// channels, each summing its rows over the samples in order, so the result does not depend
    /// on the thread count.
    static func backwardWeight(_ gradOutput: Tensor, input x: Tensor, weightShape: [Int], withBias: Bool,
                               _ p: Conv2dParameters, force: Bool = false, densityLimit: Double = maximumBackwardDensity)
        -> (weight: Tensor, bias: Tensor?)? {
        guard enabled || force, x.spikeQuantum == 1, x.dtype == .float32, gradOutput.dtype == .float32, x.rank == 4,
              p.groups == 1, p.dilationH == 1, p.dilationW == 1, x.count > 0 else { return nil }
        let (x, gy) = (x.contiguousData(), gradOutput.contiguousData())
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (weightShape[0], weightShape[2], weightShape[3])
        let (ho, wo) = (gy.shape[2], gy.shape[3])
        let px = UnsafePointer(x.pointer(as: Float.self))
        if !force && density(px, count: x.count) > densityLimit { return nil }
        let gw = Tensor.empty(weightShape, device: .cpu)
        let padded = (o + 63) / 64 * 64
        let taps = kh * kw
        let accStorage = Tensor.zeros([c * taps * padded], device: .cpu)
        let acc = accStorage.pointer(as: Float.self)
        let pgy = UnsafePointer(gy.pointer(as: Float.self))
        let outPlane = ho * wo
        if o > 0 && outPlane > 0 {
            // The output gradient in channels-last blocks of 64, a few samples (about 4 MiB) at a time, inside a
            // zero border that holds every position a tap of stride 1 reaches.
            let unit = p.strideH == 1 && p.strideW == 1
            let (top, left) = unit ? (Swift.max(0, kh - 1 - p.padH), Swift.max(0, kw - 1 - p.padW)) : (0, 0)
            let gridH = top + (unit ? Swift.max(ho, h + p.padH) : ho)
            let gridW = left + (unit ? Swift.max(wo, w + p.padW) : wo)
            let sampleFloats = gridH * gridW * padded
            let chunk = Swift.max(1, Swift.min(n, (4 << 20) / (sampleFloats * 4)))
            let bufferStorage = Tensor.empty([chunk * sampleFloats], device: .cpu)
            let buffer = bufferStorage.pointer(as: Float.self)
            let malformed = UnsafeMutablePointer<Int>.allocate(capacity: c)
            malformed.initialize(repeating: 0, count: c)
            defer { malformed.deallocate() }
            var s0 = 0
            while s0 < n {
                let count = Swift.min(chunk, n - s0)
                Parallel.forEachRange(count, cost: o * outPlane) { range in
                    for s in range {
                        snn_channel_blocks(pgy + (s0 + s) * o * outPlane, Int32(o), Int32(ho), Int32(wo), Int32(padded),
                                          Int32(top), Int32(left), Int32(gridH), Int32(gridW), buffer + s * sampleFloats)
                    }
                }
                Parallel.forEachRange(c, cost: count * h * w * taps * padded / 64) { range in
                    let lists = UnsafeMutablePointer<Int32>.allocate(capacity: range.count * (h * w + h + 1))
                    defer { lists.deallocate() }
                    for s in 0..<count {
                        let ones = snn_spike_conv_weight_grad(px + (s0 + s) * c * h * w, Int32(h), Int32(w),
                                                              buffer + s * sampleFloats, Int32(padded), Int32(ho), Int32(wo),
                                                              Int32(top), Int32(left), Int32(gridH), Int32(gridW), Int32(kh), Int32(kw),
                                                              Int32(p.strideH), Int32(p.strideW), Int32(p.padH), Int32(p.padW),
                                                              Int32(range.lowerBound), Int32(range.upperBound), lists, acc)
                        if ones < 0 { malformed[range.lowerBound] = 1 }
                    }
                }
                s0 += count
            }
            precondition((0..<c).allSatisfy { malformed[$0] == 0 }, "[conv2d] an input marked as spikes holds values other than 0 and 1")
            withExtendedLifetime(bufferStorage) {}
        }
        // [C][kh][kw][O padded] to [O][C][kh][kw].
        let pw = gw.pointer(as: Float.self)
        Parallel.forEachRange(o, cost: c * taps) { range in
            for oc in range {
                for ci in 0..<c {
                    for t in 0..<taps { pw[(oc * c + ci) * taps + t] = acc[(ci * taps + t) * padded + oc] }
                }
            }
        }
        let gb = withBias ? biasGradient(gy) : nil
        return withExtendedLifetime((x, gy, accStorage)) { (gw, gb) }
    }

    /// The bias gradient of a convolution from its contiguous output gradient `[N, O, H, W]`:
    /// each channel's sum in Double, samples and pixels in order.
    static func biasGradient(_ gy: Tensor) -> Tensor {
        let (n, o, outPlane) = (gy.shape[0], gy.shape[1], gy.shape[2] * gy.shape[3])
        let pgy = UnsafePointer(gy.pointer(as: Float.self))
        let bias = Tensor.empty([o], device: .cpu)
        let pb = bias.pointer(as: Float.self)
        Parallel.forEachRange(o, cost: n * outPlane) { range in
            for oc in range {
                var sum = 0.0
                for s in 0..<n {
                    let g = pgy + (s * o + oc) * outPlane
                    for i in 0..<outPlane { sum += Double(g[i]) }
                }
                pb[oc] = Float(sum)
            }
        }
        return withExtendedLifetime(gy) { bias }
    }

    /// The share of ones: among all values of a small tensor (where a sample would be a handful
    /// of values); of a large one, among every 61st value, or about 16,384 values evenly spread
    /// where that is fewer (enough to tell 10% from 30%: the standard error is under 0.4%). Every
    /// 61st value touched every fourth cache line of a layer's spikes, 0.9% of a ResNet-19 step.
    private static func density(_ p: UnsafePointer<Float>, count: Int) -> Double {
        let step = count > 1 << 16 ? Swift.max(61, count / 16_384 | 1) : 1
        var (ones, seen) = (0, 0)
        var i = 0
        while i < count {
            if p[i] != 0 { ones += 1 }
            seen += 1
            i += step
        }
        return Double(ones) / Double(max(seen, 1))
    }
}

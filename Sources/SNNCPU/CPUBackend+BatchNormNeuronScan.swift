import CSNNKernels
import SNNTensor

/// Training-mode batch norm fused with the LIF scan, forward and backward (see the front-end
/// op `batchNormNeuronScan`), and the batch statistics it starts from.
///
/// The neuron's input `y·a_c + b_c` is never stored: the forward pass computes it block by
/// block inside the scan, and the backward pass recomputes it and the potentials `h_t` for one
/// block of neurons at a time into a buffer of `T × 512` floats that stays in cache, then runs
/// the time loop backwards over it. Both passes compute them with the same inline code, so the
/// backward pass differentiates exactly the forward pass's spikes. The backward pass also
/// finishes batch norm's gradient itself (two per-channel sums gathered while the scan runs,
/// then one elementwise pass in place), so besides the incoming gradient and the result it
/// holds only two floats per neuron of one time step: no normalised copy, no potentials, no
/// layout reorders.
extension CPUBackend {
    public func batchNormStatistics(_ x: Tensor) -> (mean: Tensor, variance: Tensor) {
        guard computesNatively("batchNormStatistics", x) else { return reference.batchNormStatistics(x) }
        let input = x.contiguousData()
        let (frames, channels) = (x.shape[0], x.shape[1])
        let plane = x.count / max(frames * channels, 1)
        let mean = Tensor.empty([channels], device: .cpu), variance = Tensor.empty([channels], device: .cpu)
        let (px, pm, pv) = (UnsafePointer(input.pointer(as: Float.self)), mean.pointer(as: Float.self),
                            variance.pointer(as: Float.self))
        let count = Double(frames * plane)
        // One channel per work item, its planes summed in frame order: the thread count never
        // changes a result. Two passes (mean, then squared deviations) in Double.
        Parallel.forEachRange(channels, cost: frames * plane * 2) { range in
            for c in range {
                var sum = 0.0
                for f in 0..<frames { sum += planeSum(px + (f * channels + c) * plane, plane) { $0 } }
                let mu = sum / count
                let muF = Float(mu)
                var squares = 0.0
                for f in 0..<frames {
                    squares += planeSum(px + (f * channels + c) * plane, plane) { let d = $0 - muF; return d * d }
                }
                pm[c] = muF
                pv[c] = Float(squares / count)
            }
        }
        return (mean, variance)
    }

    /// The spikes, and as the saved state the input, γ, β, the statistics and the residual (as
    /// bytes when it holds spikes): the backward pass recomputes the rest block by block.
    public func batchNormNeuronScan(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                                    residual: Tensor?, steps: Int, _ neuron: NeuronParameters)
        -> (spikes: Tensor, saved: any SavedState) {
        guard computesNatively("batchNormNeuronScan", [x, gamma, beta, mean, variance] + (residual.map { [$0] } ?? [])) else {
            return reference.batchNormNeuronScan(x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon,
                                                 residual: residual, steps: steps, neuron)
        }
        let saved = SavedBatchNormNeuron(input: x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon,
                                         residual: residual, steps: steps, neuron: neuron)
        let input = x.contiguousData()
        let r = residual?.contiguousData()
        let spikes = Tensor.empty(x.shape, device: .cpu)
        let map = ChannelAffine(x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon, steps: steps,
                                neuron: neuron)
        if map.scan.neurons == 0 { return (spikes, saved) }
        let (px, ps) = (UnsafePointer(input.pointer(as: Float.self)), spikes.pointer(as: Float.self))
        let pr = r.map { UnsafePointer($0.pointer(as: Float.self)) }
        affineScanForward(map, kernelConstants(map.scan, neuron), px, pr, ps)
        return withExtendedLifetime(r) { (spikes, saved) }
    }

    public func batchNormNeuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState)
        -> (input: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor?) {
        let s = SavedBatchNormNeuron.from(saved, op: "batchNormNeuronScan")
        let (x, gamma, beta, mean, variance) = (s.input, s.gamma, s.beta, s.mean, s.variance)
        let (epsilon, steps, neuron, residual) = (s.epsilon, s.steps, s.neuron, s.residual?.value)
        guard computesNatively("batchNormNeuronScan", [gradSpikes, x, gamma, beta, mean, variance] + (residual.map { [$0] } ?? []))
        else { return reference.batchNormNeuronScanBackward(gradSpikes, saved: saved) }
        let (input, gs) = (x.contiguousData(), gradSpikes.contiguousData())
        let r = residual?.contiguousData()
        // The residual's gradient is dL/dx̂ itself, kept before batch norm's pass overwrites it.
        let gr = residual.map { Tensor.empty($0.shape, device: .cpu) }
        let channels = x.shape[1]
        let gx = Tensor.empty(x.shape, device: .cpu)
        let gGamma = Tensor.empty([channels], device: .cpu), gBeta = Tensor.empty([channels], device: .cpu)
        let map = ChannelAffine(x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon, steps: steps,
                                neuron: neuron)
        let n = map.scan.neurons
        if n == 0 { return (gx, Tensor.zeros([channels], device: .cpu), Tensor.zeros([channels], device: .cpu), gr) }
        // Per neuron of one time step: Σ_t dL/dx̂ and Σ_t dL/dx̂ · x̂ (x̂ = (y − μ)/σ, batch norm's
        // normalised value), summed per channel afterwards.
        let sums = Tensor.empty([2, n], device: .cpu)
        let py = UnsafePointer(input.pointer(as: Float.self))
        let io = AffineBackwardIO(y: py, residual: r.map { UnsafePointer($0.pointer(as: Float.self)) },
                                  gradSpikes: UnsafePointer(gs.pointer(as: Float.self)),
                                  gradInput: gx.pointer(as: Float.self), gradResidual: gr?.pointer(as: Float.self),
                                  sumGrad: sums.pointer(as: Float.self), sumGradNormalized: sums.pointer(as: Float.self) + n)
        affineScanBackward(map, kernelConstants(map.scan, neuron), io)
        // Per channel, over the N·plane neurons of a step (in a fixed order), then batch norm's
        // input gradient in place: a_c/γ_c · γ_c = γ·invstd times (g − mean g − x̂ · mean g·x̂).
        let (frames, plane) = (n / (channels * map.plane), map.plane)
        let (pg, pb) = (gGamma.pointer(as: Float.self), gBeta.pointer(as: Float.self))
        let (sumG, sumGX) = (UnsafePointer(io.sumGrad), UnsafePointer(io.sumGradNormalized))
        Parallel.forEachRange(channels, cost: 2 * frames * plane) { range in
            for c in range {
                var (a, b) = (0.0, 0.0)
                for f in 0..<frames {
                    a += planeSum(sumG + (f * channels + c) * plane, plane) { $0 }
                    b += planeSum(sumGX + (f * channels + c) * plane, plane) { $0 }
                }
                (pb[c], pg[c]) = (Float(a), Float(b))
            }
        }
        let count = Float(x.count / channels)
        let px = gx.pointer(as: Float.self)
        let totalPlanes = x.shape[0] * channels
        Parallel.forEachRange(totalPlanes, cost: plane) { range in
            for q in range {
                let c = q % channels
                let k = map.gamma[c] * map.invstd[c]
                let (m1, m2) = (pb[c] / count, pg[c] / count)
                let (mu, inv) = (map.mean[c], map.invstd[c])
                let base = q * plane
                for i in 0..<plane {
                    let xhat = (py[base + i] - mu) * inv
                    px[base + i] = k * (px[base + i] - m1 - xhat * m2)
                }
            }
        }
        return withExtendedLifetime(r) { (gx, gGamma, gBeta, gr) }
    }
}

/// `Σ f(p[i])` over `count` floats in Double, in a fixed order.
@inline(__always)
private func planeSum(_ p: UnsafePointer<Float>, _ count: Int, _ f: (Float) -> Float) -> Double {
    // Four float partial sums per run of 1024 values, added into Double: fast and accurate
    // enough for a channel mean (each float partial holds at most 256 terms).
    var total = 0.0
    var start = 0
    while start < count {
        let end = min(start + 1024, count)
        var acc = SIMD4<Float>()
        var i = start
        while i + 4 <= end {
            acc += SIMD4(f(p[i]), f(p[i + 1]), f(p[i + 2]), f(p[i + 3]))
            i += 4
        }
        var tail: Float = 0
        while i < end { tail += f(p[i]); i += 1 }
        total += Double(acc[0]) + Double(acc[1]) + Double(acc[2]) + Double(acc[3]) + Double(tail)
        start = end
    }
    return total
}

/// The scan's sizes, the per-channel constants, and where each neuron's channel is: neuron `i`
/// of a time slice (`[N, C, plane]` flattened) belongs to channel `(i / plane) % C`.
private final class ChannelAffine {
    let scan: ScanShape
    let channels: Int, plane: Int
    /// Per channel: a = γ/√(σ²+ε), b = β − μa, μ, 1/√(σ²+ε) and γ, each computed once here in
    /// float32, so the forward and backward passes use the very same values.
    let scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>
    let mean: UnsafeMutablePointer<Float>, invstd: UnsafeMutablePointer<Float>, gamma: UnsafeMutablePointer<Float>

    init(_ x: Tensor, gamma g: Tensor, beta b: Tensor, mean m: Tensor, variance v: Tensor, epsilon: Double, steps: Int,
         neuron: NeuronParameters) {
        channels = x.shape[1]
        plane = x.count / max(x.shape[0] * channels, 1)
        scan = ScanShape(steps: steps, neurons: x.count / steps, neuron: neuron)
        let storage = UnsafeMutablePointer<Float>.allocate(capacity: 5 * max(channels, 1))
        (scale, shift, mean, invstd, gamma) = (storage, storage + channels, storage + 2 * channels, storage + 3 * channels,
                                               storage + 4 * channels)
        // The backend reads its own memory here (no device-to-host transfer on the CPU).
        let (gc, bc, mc, vc) = (g.contiguousData(), b.contiguousData(), m.contiguousData(), v.contiguousData())
        let (gv, bv, mv, vv) = (gc.pointer(as: Float.self), bc.pointer(as: Float.self), mc.pointer(as: Float.self),
                                vc.pointer(as: Float.self))
        let eps = Float(epsilon)
        for c in 0..<channels {
            invstd[c] = 1 / (vv[c] + eps).squareRoot()
            scale[c] = gv[c] * invstd[c]
            shift[c] = bv[c] - mv[c] * scale[c]
            (mean[c], gamma[c]) = (mv[c], gv[c])
        }
    }

    deinit { scale.deallocate() }

    /// Runs `body(first, count, buffers)` for every block of ``neuronBlock`` neurons, split
    /// across cores. `buffers` holds the block's per-neuron scale and shift (and, for the
    /// backward pass, `statistics`: mean and 1/σ) as lanes, zero past `count`, a zeroed state
    /// vector per lane group, room for the two per-neuron sums (which the backward kernel
    /// zeroes itself), and `scratchSteps` slices of scratch.
    func forEachBlock(scratchSteps: Int, statistics: Bool, _ body: (Int, Int, BlockBuffers) -> Void) {
        let neurons = scan.neurons
        let blocks = (neurons + neuronBlock - 1) / neuronBlock
        let vectors = neuronBlock / laneWidth
        Parallel.forEachRange(blocks, cost: neuronBlock * scan.steps) { range in
            withUnsafeTemporaryAllocation(of: Lanes.self, capacity: vectors * (7 + scratchSteps)) { buffer in
                let base = buffer.baseAddress.unsafelyUnwrapped
                let b = BlockBuffers(base, vectors: vectors)
                let pairs = [(b.scale, scale), (b.shift, shift)] + (statistics ? [(b.mean, mean), (b.invstd, invstd)] : [])
                for block in range {
                    let first = block * neuronBlock
                    let m = min(neuronBlock, neurons - first)
                    // The block's neurons run through channels in runs of `plane`: one lookup per run.
                    for (lanes, source) in pairs {
                        let dst = UnsafeMutableRawPointer(lanes).assumingMemoryBound(to: Float.self)
                        var k = 0
                        while k < m {
                            let i = first + k, run = min(m - k, plane - i % plane)
                            dst.advanced(by: k).update(repeating: source[(i / plane) % channels], count: run)
                            k += run
                        }
                        dst.advanced(by: m).update(repeating: 0, count: neuronBlock - m)
                    }
                    b.state.update(repeating: Lanes(), count: vectors)
                    body(first, m, b)
                }
            }
        }
    }
}

private struct BlockBuffers {
    let scale, shift, mean, invstd, state, sumGrad, sumGradNormalized, scratch: UnsafeMutablePointer<Lanes>

    init(_ base: UnsafeMutablePointer<Lanes>, vectors: Int) {
        (scale, shift, mean, invstd) = (base, base + vectors, base + 2 * vectors, base + 3 * vectors)
        (state, sumGrad, sumGradNormalized, scratch) = (base + 4 * vectors, base + 5 * vectors, base + 6 * vectors,
                                                        base + 7 * vectors)
    }
}

private struct AffineBackwardIO {
    let y: UnsafePointer<Float>, residual: UnsafePointer<Float>?
    let gradSpikes: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>, gradResidual: UnsafeMutablePointer<Float>?
    let sumGrad: UnsafeMutablePointer<Float>, sumGradNormalized: UnsafeMutablePointer<Float>
}

/// The neuron's constants for SwiftSNN's C kernels (the same float32 values as ``ScanShape`` and
/// the surrogates of CPUBackend+NeuronScan.swift).
private func kernelConstants(_ scan: ScanShape, _ neuron: NeuronParameters) -> snn_lif {
    var lif = snn_lif()
    (lif.decay, lif.bound, lif.threshold) = (scan.decay, scan.spikeBound, scan.threshold)
    switch neuron.reset {
    case .hard(let vReset): (lif.softReset, lif.vReset) = (0, Float(vReset))
    case .soft: lif.softReset = 1
    }
    switch neuron.surrogate {
    case .triangle(let g):
        let rule = TriangleSurrogate(g)
        (lif.surrogate, lif.surrogateA, lif.surrogateB) = (Int32(SNN_SURROGATE_TRIANGLE), rule.gamma, rule.scale)
    case .sigmoid(let a):
        (lif.surrogate, lif.surrogateA) = (Int32(SNN_SURROGATE_SIGMOID), SigmoidSurrogate(a).alpha)
    case .rectangle(let w):
        let rule = RectangleSurrogate(w)
        (lif.surrogate, lif.surrogateA, lif.surrogateB) = (Int32(SNN_SURROGATE_RECTANGLE), rule.halfWidth, rule.height)
    }
    return lif
}

@inline(__always)
private func floats(_ lanes: UnsafeMutablePointer<Lanes>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(lanes).assumingMemoryBound(to: Float.self)
}

/// Spikes of the LIF scan over the normalised input plus the residual (the potentials are not
/// kept), block by block in `snn_affine_lif_forward` (AVX-512, AVX2 or SSE2 vectors; the Swift
/// loops it replaces ran on four lanes and took 1.5 % of a ResNet-19 step).
private func affineScanForward(_ map: ChannelAffine, _ lif: snn_lif, _ y: UnsafePointer<Float>,
                               _ residual: UnsafePointer<Float>?, _ spikes: UnsafeMutablePointer<Float>) {
    var lif = lif
    let (n, steps) = (map.scan.neurons, Int32(map.scan.steps))
    map.forEachBlock(scratchSteps: 0, statistics: false) { first, m, b in
        snn_affine_lif_forward(&lif, steps, n, Int32(m), floats(b.scale), floats(b.shift), floats(b.state), y + first,
                               residual.map { $0 + first }, spikes + first)
    }
}

/// Per block, `snn_affine_lif_backward`: the forward recurrence again into `scratch` (`h_t`),
/// then the backward time loop of the LIF scan from it (as `scanBackward` in
/// CPUBackend+NeuronScan.swift), writing `dL/dx̂_t` and gathering its per-neuron sums for batch
/// norm's gradient (the Swift loops it replaces, on four lanes, took 6.3 % of a ResNet-19 step).
private func affineScanBackward(_ map: ChannelAffine, _ lif: snn_lif, _ io: AffineBackwardIO) {
    var lif = lif
    let (n, steps) = (map.scan.neurons, Int32(map.scan.steps))
    map.forEachBlock(scratchSteps: map.scan.steps, statistics: true) { first, m, b in
        snn_affine_lif_backward(&lif, steps, n, Int32(m), floats(b.scale), floats(b.shift), floats(b.mean),
                                floats(b.invstd), floats(b.state), floats(b.scratch), io.y + first,
                                io.residual.map { $0 + first }, io.gradSpikes + first, io.gradInput + first,
                                io.gradResidual.map { $0 + first }, floats(b.sumGrad), floats(b.sumGradNormalized))
        (io.sumGrad + first).update(from: floats(b.sumGrad), count: m)
        (io.sumGradNormalized + first).update(from: floats(b.sumGradNormalized), count: m)
    }
}

import SNNTensor

/// Batch norm's affine map fused with the LIF scan, forward and backward (see the front-end
/// op `batchNormNeuronScan`), and the batch statistics it starts from.
///
/// The neuron's input `x̂ = y·scale_c + shift_c` is never stored: the forward pass computes it
/// block by block inside the scan, and the backward pass recomputes it and the potentials `h_t`
/// for one block of neurons at a time into a buffer of `T × 512` floats that stays in cache,
/// then runs the time loop backwards over it. Both passes compute `x̂` and `h` with the same
/// inline code, so the backward pass differentiates exactly the forward pass's spikes.
extension CPUBackend {
    public func batchNormStatistics(_ x: Tensor) -> (mean: Tensor, variance: Tensor) {
        guard x.dtype == .float32 else { return reference.batchNormStatistics(x) }
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

    public func batchNormNeuronScan(_ x: Tensor, scale: Tensor, shift: Tensor, steps: Int,
                                    _ neuron: NeuronParameters) -> Tensor {
        guard x.dtype == .float32, scale.dtype == .float32, shift.dtype == .float32 else {
            return reference.batchNormNeuronScan(x, scale: scale, shift: shift, steps: steps, neuron)
        }
        let input = x.contiguousData()
        let spikes = Tensor.empty(x.shape, device: .cpu)
        let map = ChannelAffine(x, scale: scale.contiguousData(), shift: shift.contiguousData(), steps: steps, neuron: neuron)
        if map.scan.neurons == 0 { return spikes }
        let (px, ps) = (UnsafePointer(input.pointer(as: Float.self)), spikes.pointer(as: Float.self))
        switch neuron.reset {
        case .hard(let vReset): affineScanForward(map, HardReset(vReset: Float(vReset)), px, ps)
        case .soft: affineScanForward(map, SoftReset(threshold: Float(neuron.threshold)), px, ps)
        }
        return spikes
    }

    public func batchNormNeuronScanBackward(_ gradSpikes: Tensor, input x: Tensor, scale: Tensor, shift: Tensor, steps: Int,
                                            _ neuron: NeuronParameters) -> Tensor {
        guard gradSpikes.dtype == .float32, x.dtype == .float32, scale.dtype == .float32, shift.dtype == .float32 else {
            return reference.batchNormNeuronScanBackward(gradSpikes, input: x, scale: scale, shift: shift, steps: steps, neuron)
        }
        let (input, gs) = (x.contiguousData(), gradSpikes.contiguousData())
        let gx = Tensor.empty(x.shape, device: .cpu)
        let map = ChannelAffine(x, scale: scale.contiguousData(), shift: shift.contiguousData(), steps: steps, neuron: neuron)
        if map.scan.neurons == 0 { return gx }
        let io = (UnsafePointer(input.pointer(as: Float.self)), UnsafePointer(gs.pointer(as: Float.self)),
                  gx.pointer(as: Float.self))
        switch neuron.surrogate {
        case .triangle(let gamma): affineScanBackward(map, TriangleSurrogate(gamma), neuron.reset, io)
        case .sigmoid(let alpha): affineScanBackward(map, SigmoidSurrogate(alpha), neuron.reset, io)
        case .rectangle(let width): affineScanBackward(map, RectangleSurrogate(width), neuron.reset, io)
        }
        return gx
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

/// The scan's sizes plus where each neuron's channel constants come from: neuron `i` of a
/// time slice (`[N, C, plane]` flattened) belongs to channel `(i / plane) % C`.
private struct ChannelAffine {
    let scan: ScanShape
    let channels: Int, plane: Int
    let scale: UnsafePointer<Float>, shift: UnsafePointer<Float>
    /// Keep the constant tensors alive while the pointers are used.
    private let owners: (Tensor, Tensor)

    init(_ x: Tensor, scale: Tensor, shift: Tensor, steps: Int, neuron: NeuronParameters) {
        channels = x.shape[1]
        plane = x.count / max(x.shape[0] * channels, 1)
        scan = ScanShape(steps: steps, neurons: x.count / steps, neuron: neuron)
        owners = (scale, shift)
        self.scale = UnsafePointer(scale.pointer(as: Float.self))
        self.shift = UnsafePointer(shift.pointer(as: Float.self))
    }

    /// Runs `body(first, count, buffers)` for every block of ``neuronBlock`` neurons, split
    /// across cores. `buffers` holds the block's per-neuron scale and shift (as lanes, zero
    /// past `count`), a zeroed state vector per lane group, and `T` slices of scratch.
    func forEachBlock(scratchSteps: Int, _ body: (Int, Int, BlockBuffers) -> Void) {
        let neurons = scan.neurons
        let blocks = (neurons + neuronBlock - 1) / neuronBlock
        let vectors = neuronBlock / laneWidth
        Parallel.forEachRange(blocks, cost: neuronBlock * scan.steps) { range in
            withUnsafeTemporaryAllocation(of: Lanes.self, capacity: vectors * (3 + scratchSteps)) { buffer in
                let base = buffer.baseAddress.unsafelyUnwrapped
                let b = BlockBuffers(scale: base, shift: base + vectors, state: base + 2 * vectors, scratch: base + 3 * vectors)
                for block in range {
                    let first = block * neuronBlock
                    let m = min(neuronBlock, neurons - first)
                    let (sc, sh) = (UnsafeMutableRawPointer(b.scale).assumingMemoryBound(to: Float.self),
                                    UnsafeMutableRawPointer(b.shift).assumingMemoryBound(to: Float.self))
                    for k in 0..<neuronBlock {
                        if k < m {
                            let c = ((first + k) / plane) % channels
                            (sc[k], sh[k]) = (scale[c], shift[c])
                        } else {
                            (sc[k], sh[k]) = (0, 0)
                        }
                    }
                    b.state.update(repeating: Lanes(), count: vectors)
                    body(first, m, b)
                }
            }
        }
    }
}

private struct BlockBuffers {
    let scale: UnsafeMutablePointer<Lanes>, shift: UnsafeMutablePointer<Lanes>
    let state: UnsafeMutablePointer<Lanes>, scratch: UnsafeMutablePointer<Lanes>
}

/// The neuron's input, `y·scale + shift`: the one expression both passes use.
@inline(__always)
private func normalized(_ y: Lanes, _ b: BlockBuffers, _ j: Int) -> Lanes { y * b.scale[j] + b.shift[j] }

/// Spikes of the LIF scan over the normalised input (the potentials are not kept).
private func affineScanForward<R: ResetRule>(_ map: ChannelAffine, _ reset: R, _ y: UnsafePointer<Float>,
                                             _ spikes: UnsafeMutablePointer<Float>) {
    let (n, decay, bound) = (map.scan.neurons, map.scan.decay, map.scan.spikeBound)
    map.forEachBlock(scratchSteps: 0) { first, m, b in
        let full = m / laneWidth, rest = m % laneWidth
        for t in 0..<map.scan.steps {
            let offset = t * n + first
            let yt = y + offset, st = spikes + offset
            for j in 0..<full {
                let h = b.state[j] * decay + normalized(yt.loadLanes(laneWidth * j), b, j)
                let s = Lanes().replacing(with: 1, where: h .> bound)
                StreamingStore.store(s, st + laneWidth * j, streaming: false)
                b.state[j] = reset.next(h, s)
            }
            if rest > 0 {
                let h = b.state[full] * decay + normalized(yt.loadLanes(laneWidth * full, count: rest), b, full)
                let s = Lanes().replacing(with: 1, where: h .> bound)
                (st + laneWidth * full).storeLanes(s, count: rest)
                b.state[full] = reset.next(h, s)
            }
        }
    }
}

private func affineScanBackward<G: SurrogateRule>(
    _ map: ChannelAffine, _ surrogate: G, _ mode: ResetMode,
    _ io: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>)
) {
    switch mode {
    case .hard(let vReset): affineScanBackward(map, surrogate, HardReset(vReset: Float(vReset)), io)
    case .soft: affineScanBackward(map, surrogate, SoftReset(threshold: map.scan.threshold), io)
    }
}

/// Per block: the forward recurrence again into `scratch` (`h_t`), then the backward time loop
/// of the LIF scan from it (as `scanBackward` in CPUBackend+NeuronScan.swift).
private func affineScanBackward<G: SurrogateRule, R: ResetRule>(
    _ map: ChannelAffine, _ surrogate: G, _ reset: R,
    _ io: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>)
) {
    let (y, gradSpikes, gradInput) = io
    let scan = map.scan
    let (n, decay, bound, threshold) = (scan.neurons, scan.decay, scan.spikeBound, scan.threshold)
    let vectors = neuronBlock / laneWidth
    map.forEachBlock(scratchSteps: scan.steps) { first, m, b in
        let groups = (m + laneWidth - 1) / laneWidth
        // Forward again: h_t for the block (tails load zeros past m; those lanes are never stored).
        for t in 0..<scan.steps {
            let yt = y + t * n + first, ht = b.scratch + t * vectors
            for j in 0..<groups {
                let count = min(laneWidth, m - laneWidth * j)
                let yv = count == laneWidth ? yt.loadLanes(laneWidth * j) : yt.loadLanes(laneWidth * j, count: count)
                let h = b.state[j] * decay + normalized(yv, b, j)
                ht[j] = h
                b.state[j] = reset.next(h, Lanes().replacing(with: 1, where: h .> bound))
            }
        }
        // Backward through time; `state` now holds dL/dv.
        b.state.update(repeating: Lanes(), count: vectors)
        for t in stride(from: scan.steps - 1, through: 0, by: -1) {
            let offset = t * n + first
            let gst = gradSpikes + offset, gxt = gradInput + offset, ht = b.scratch + t * vectors
            for j in 0..<groups {
                let count = min(laneWidth, m - laneWidth * j)
                let gs = count == laneWidth ? gst.loadLanes(laneWidth * j) : gst.loadLanes(laneWidth * j, count: count)
                let h = ht[j]
                let g = surrogate(h - threshold)
                let s = Lanes().replacing(with: 1, where: h .> bound)
                let gradH = gs * g + b.state[j] * reset.derivative(h, s, g)
                b.state[j] = gradH * decay
                if count == laneWidth {
                    StreamingStore.store(gradH, gxt + laneWidth * j, streaming: false)
                } else {
                    (gxt + laneWidth * j).storeLanes(gradH, count: count)
                }
            }
        }
    }
}

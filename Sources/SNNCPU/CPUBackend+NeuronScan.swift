import SNNTensor

/// The fused multi-step LIF neuron (TRT-SPEC.md §1), forward and backward, in float32.
///
/// Sequences are `[T, ...]` with `n = count / T` neurons per step. The kernels are blocked over
/// neurons: each block of ``neuronBlock`` neurons keeps its membrane potential (forward) or
/// `dL/dv` (backward) in a small buffer that stays in L1, runs the time loop outermost, and
/// streams one contiguous slice of every tensor per step through a vectorisable inner loop.
/// Blocks are split across cores, and outputs larger than the caches leave with streaming
/// stores. The surrogate and the reset mode are chosen once, outside the loops, by generic
/// specialisation, so every combination gets its own straight-line loop.
extension CPUBackend {
    /// Spikes, and the potentials `h_t` (float32) as the saved state.
    public func neuronScan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, saved: any SavedState) {
        guard computesNatively("neuronScan", x), x.rank >= 1 else { return reference.neuronScan(x, neuron) }
        let (spikes, potentials) = lifScan(x, neuron)
        return (spikes, SavedPotentials(potentials, neuron))
    }

    /// `dL/dx` of ``neuronScan(_:_:)`` from `dL/ds` and the saved potentials.
    public func neuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState) -> Tensor {
        let s = SavedPotentials.from(saved, op: "neuronScan")
        return lifScanBackward(gradSpikes, potentials: s.potentials, s.neuron)
    }

    /// Spikes and charged potentials `h_t` of the LIF neuron over `[T, ...]` (float32).
    func lifScan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, potentials: Tensor) {
        let input = x.isContiguous ? x : contiguous(x)
        let spikes = Tensor.empty(x.shape, dtype: .float32, device: .cpu)
        let potentials = Tensor.empty(x.shape, dtype: .float32, device: .cpu)
        let steps = x.shape[0], n = steps == 0 ? 0 : x.count / steps
        if n == 0 { return (spikes, potentials) }
        let scan = ScanShape(steps: steps, neurons: n, neuron: neuron)
        let (px, ps, ph) = (UnsafePointer(input.pointer(as: Float.self)), spikes.pointer(as: Float.self),
                            potentials.pointer(as: Float.self))
        switch neuron.reset {
        case .hard(let vReset): scanForward(scan, HardReset(vReset: Float(vReset)), px, ps, ph)
        case .soft: scanForward(scan, SoftReset(threshold: Float(neuron.threshold)), px, ps, ph)
        }
        return (spikes, potentials)
    }

    /// `dL/dx` of the scan from `dL/ds` and the potentials.
    func lifScanBackward(_ gradSpikes: Tensor, potentials: Tensor, _ neuron: NeuronParameters) -> Tensor {
        guard computesNatively("neuronScan", gradSpikes, potentials), potentials.rank >= 1 else {
            return reference.neuronScanBackward(gradSpikes, saved: SavedPotentials(potentials, neuron))
        }
        let gs = gradSpikes.isContiguous ? gradSpikes : contiguous(gradSpikes)
        let h = potentials.isContiguous ? potentials : contiguous(potentials)
        let gx = Tensor.empty(potentials.shape, dtype: .float32, device: .cpu)
        let steps = potentials.shape[0], n = steps == 0 ? 0 : potentials.count / steps
        if n == 0 { return gx }
        let scan = ScanShape(steps: steps, neurons: n, neuron: neuron)
        let io = BackwardIO(gradSpikes: UnsafePointer(gs.pointer(as: Float.self)),
                            potentials: UnsafePointer(h.pointer(as: Float.self)), gradInput: gx.pointer(as: Float.self))
        switch neuron.surrogate {
        case .triangle(let gamma): scanBackward(scan, TriangleSurrogate(gamma), neuron.reset, io)
        case .sigmoid(let alpha): scanBackward(scan, SigmoidSurrogate(alpha), neuron.reset, io)
        case .rectangle(let width): scanBackward(scan, RectangleSurrogate(width), neuron.reset, io)
        }
        return gx
    }

    /// The surrogate derivative `g(u)` elementwise.
    public func surrogateGradient(_ u: Tensor, _ surrogate: Surrogate) -> Tensor {
        guard computesNatively("surrogateGradient", u) else { return reference.surrogateGradient(u, surrogate) }
        let src = u.isContiguous ? u : contiguous(u)
        let out = Tensor.empty(u.shape, dtype: .float32, device: .cpu)
        let (pu, po) = (UnsafePointer(src.pointer(as: Float.self)), out.pointer(as: Float.self))
        switch surrogate {
        case .triangle(let gamma): surrogateMap(TriangleSurrogate(gamma), pu, po, u.count)
        case .sigmoid(let alpha): surrogateMap(SigmoidSurrogate(alpha), pu, po, u.count)
        case .rectangle(let width): surrogateMap(RectangleSurrogate(width), pu, po, u.count)
        }
        return out
    }
}

/// `g(u)` over `count` contiguous floats.
private func surrogateMap<G: SurrogateRule>(_ g: G, _ u: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                            _ count: Int) {
    Parallel.forEachRange((count + laneWidth - 1) / laneWidth, cost: laneWidth) { vectors in
        for j in vectors {
            let i = laneWidth * j
            if i + laneWidth <= count {
                StreamingStore.store(g(u.loadLanes(i)), out + i, streaming: false)
            } else {
                (out + i).storeLanes(g(u.loadLanes(i, count: count - i)), count: count - i)
            }
        }
    }
}

/// Neurons per block: 512 floats (2 KiB) per stream and step, so the state buffer plus the
/// slices of one step stay in L1. A multiple of the lane count. 128 to 4096 measured within
/// noise of each other on the 2-core EPYC; 512 was the most consistent.
let neuronBlock = 512

/// The sizes and float32 constants shared by both directions.
struct ScanShape {
    let steps: Int, neurons: Int
    let decay: Float
    /// The largest Float <= v_th: `h > spikeBound` is exactly the reference's `h - v_th > 0`
    /// for a float32 `h`, even when v_th is not a float.
    let spikeBound: Float
    /// v_th rounded to nearest, for the surrogate's argument `u = h - v_th`.
    let threshold: Float
    /// Whether outputs bypass the cache (see ``StreamingStore``).
    let streaming: Bool

    init(steps: Int, neurons: Int, neuron: NeuronParameters) {
        self.steps = steps
        self.neurons = neurons
        decay = Float(neuron.decay)
        threshold = Float(neuron.threshold)
        var bound = Float(neuron.threshold)
        if Double(bound) > neuron.threshold { bound = bound.nextDown }
        spikeBound = bound
        streaming = StreamingStore.enabled(forCount: steps * neurons)
    }

    /// Runs `body(firstNeuron, count, state)` for every block, blocks split across cores;
    /// `state` holds `neuronBlock / laneWidth` zeroed vectors of per-block state.
    func forEachBlock(_ body: (Int, Int, UnsafeMutablePointer<Lanes>) -> Void) {
        let blocks = (neurons + neuronBlock - 1) / neuronBlock
        Parallel.forEachRange(blocks, cost: neuronBlock * steps) { range in
            withUnsafeTemporaryAllocation(of: Lanes.self, capacity: neuronBlock / laneWidth) { buffer in
                let state = buffer.baseAddress.unsafelyUnwrapped
                for b in range {
                    let first = b * neuronBlock
                    state.update(repeating: Lanes(), count: neuronBlock / laneWidth)
                    body(first, min(neuronBlock, neurons - first), state)
                }
            }
            StreamingStore.fence()
        }
    }
}

private struct BackwardIO {
    let gradSpikes: UnsafePointer<Float>, potentials: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>
}

/// `h_t = v_{t-1} decay + x_t`, `s_t = H(h_t - v_th)`, `v_t = reset(h_t, s_t)`, with `v_{-1} = 0`.
/// A neuron spikes when `h_t - v_th > 0`, strictly (`h_t == v_th` does not spike): the kernel
/// tests `h_t > spikeBound`, the largest float <= v_th, which is the same test for float32 `h_t`.
///
/// Written on ``Lanes`` vectors (rather than left to the auto-vectoriser) so that large
/// outputs can go out with streaming stores straight from registers.
private func scanForward<R: ResetRule>(_ scan: ScanShape, _ reset: R, _ x: UnsafePointer<Float>,
                                       _ spikes: UnsafeMutablePointer<Float>,
                                       _ potentials: UnsafeMutablePointer<Float>) {
    let (n, decay, bound) = (scan.neurons, scan.decay, scan.spikeBound)
    scan.forEachBlock { first, m, v in
        let full = m / laneWidth, rest = m % laneWidth
        for t in 0..<scan.steps {
            let offset = t * n + first
            let xt = x + offset, ht = potentials + offset, st = spikes + offset
            let stream = scan.streaming && StreamingStore.aligned(ht)  // ht and st share alignment
            for j in 0..<full {
                let h = v[j] * decay + xt.loadLanes(laneWidth * j)
                let s = Lanes().replacing(with: 1, where: h .> bound)
                StreamingStore.store(h, ht + laneWidth * j, streaming: stream)
                StreamingStore.store(s, st + laneWidth * j, streaming: stream)
                v[j] = reset.next(h, s)
            }
            if rest > 0 {
                let h = v[full] * decay + xt.loadLanes(laneWidth * full, count: rest)
                let s = Lanes().replacing(with: 1, where: h .> bound)
                (ht + laneWidth * full).storeLanes(h, count: rest)
                (st + laneWidth * full).storeLanes(s, count: rest)
                v[full] = reset.next(h, s)
            }
        }
    }
}

/// Picks the reset rule, then runs the specialised backward loop.
private func scanBackward<G: SurrogateRule>(_ scan: ScanShape, _ surrogate: G, _ mode: ResetMode, _ io: BackwardIO) {
    switch mode {
    case .hard(let vReset): scanBackward(scan, surrogate, HardReset(vReset: Float(vReset)), io)
    case .soft: scanBackward(scan, surrogate, SoftReset(threshold: scan.threshold), io)
    }
}

/// From `t = T-1` down to 0 with `dL/dv_T = 0`: `g = surrogate(h - v_th)`, `s = h > spikeBound`
/// (the forward pass's strict `h - v_th > 0`),
/// `dL/dh_t = gs_t g + dL/dv_t dv/dh`, `dL/dx_t = dL/dh_t`, `dL/dv_{t-1} = dL/dh_t decay`.
private func scanBackward<G: SurrogateRule, R: ResetRule>(_ scan: ScanShape, _ surrogate: G, _ reset: R,
                                                          _ io: BackwardIO) {
    let (n, decay, bound, threshold) = (scan.neurons, scan.decay, scan.spikeBound, scan.threshold)
    scan.forEachBlock { first, m, gradV in
        let full = m / laneWidth, rest = m % laneWidth
        /// One vector of the step: returns dL/dx and updates dL/dv in place.
        @inline(__always) func step(_ j: Int, _ gs: Lanes, _ h: Lanes) -> Lanes {
            let g = surrogate(h - threshold)
            let s = Lanes().replacing(with: 1, where: h .> bound)
            let gradH = gs * g + gradV[j] * reset.derivative(h, s, g)
            gradV[j] = gradH * decay
            return gradH
        }
        for t in stride(from: scan.steps - 1, through: 0, by: -1) {
            let offset = t * n + first
            let gst = io.gradSpikes + offset, ht = io.potentials + offset, gxt = io.gradInput + offset
            let stream = scan.streaming && StreamingStore.aligned(gxt)
            for j in 0..<full {
                let i = laneWidth * j
                StreamingStore.store(step(j, gst.loadLanes(i), ht.loadLanes(i)), gxt + i, streaming: stream)
            }
            if rest > 0 {
                let i = laneWidth * full
                let gx = step(full, gst.loadLanes(i, count: rest), ht.loadLanes(i, count: rest))
                (gxt + i).storeLanes(gx, count: rest)
            }
        }
    }
}

// MARK: - Reset rules

/// How `v_t` follows from `h_t` and `s_t`, and its derivative `dv/dh` with `ds/dh = g`.
protocol ResetRule {
    func next(_ h: Lanes, _ s: Lanes) -> Lanes
    func derivative(_ h: Lanes, _ s: Lanes, _ g: Lanes) -> Lanes
}

/// `v = (1 - s) h + s v_reset`; `dv/dh = (1 - s) + (v_reset - h) g`.
struct HardReset: ResetRule {
    let vReset: Float
    @inline(__always) func next(_ h: Lanes, _ s: Lanes) -> Lanes { (1 - s) * h + s * vReset }
    @inline(__always) func derivative(_ h: Lanes, _ s: Lanes, _ g: Lanes) -> Lanes { (1 - s) + (vReset - h) * g }
}

/// `v = h - s v_th`; `dv/dh = 1 - v_th g`.
struct SoftReset: ResetRule {
    let threshold: Float
    @inline(__always) func next(_ h: Lanes, _ s: Lanes) -> Lanes { h - s * threshold }
    @inline(__always) func derivative(_ h: Lanes, _ s: Lanes, _ g: Lanes) -> Lanes { 1 - g * threshold }
}

// MARK: - Surrogates

/// A surrogate derivative `g(u)` on eight lanes, shared by the scan and ``CPUBackend/surrogateGradient(_:_:)``.
protocol SurrogateRule {
    func callAsFunction(_ u: Lanes) -> Lanes
}

/// `|u|` lane by lane (clears the sign bits).
@inline(__always)
func magnitude(_ u: Lanes) -> Lanes {
    unsafeBitCast(unsafeBitCast(u, to: LaneBits.self) & 0x7FFF_FFFF, to: Lanes.self)
}

/// `g(u) = max(γ - |u|, 0) / γ²` (the division folded into one multiplication).
struct TriangleSurrogate: SurrogateRule {
    let gamma: Float, scale: Float
    init(_ gamma: Double) {
        self.gamma = Float(gamma)
        scale = Float(1 / (gamma * gamma))
    }
    @inline(__always)
    func callAsFunction(_ u: Lanes) -> Lanes {
        let d = gamma - magnitude(u)
        return d.replacing(with: 0, where: d .< 0) * scale  // Swift.max(d, 0): NaN passes through
    }
}

/// `g(u) = α σ(αu)(1 - σ(αu)) = α e / (1 + e)²` with `e = exp(-α|u|)` (even in u), which
/// never overflows and uses the vectorised ``expNonPositive(_:)``: this one is compute bound.
struct SigmoidSurrogate: SurrogateRule {
    let alpha: Float
    init(_ alpha: Double) { self.alpha = Float(alpha) }
    @inline(__always)
    func callAsFunction(_ u: Lanes) -> Lanes {
        let e = expNonPositive(magnitude(u) * -alpha)
        let d = 1 + e
        return alpha * e / (d * d)
    }
}

/// `g(u) = 1/a` for `|u| < a/2`, else 0.
struct RectangleSurrogate: SurrogateRule {
    let halfWidth: Float, height: Float
    init(_ width: Double) {
        halfWidth = Float(width / 2)
        height = Float(1 / width)
    }
    @inline(__always)
    func callAsFunction(_ u: Lanes) -> Lanes { Lanes().replacing(with: height, where: magnitude(u) .< halfWidth) }
}

import SNNTensor

/// The TRT weight penalty (TRT-SPEC.md §3) over all timesteps in one pass, in float32.
///
/// Per element, with `a = |w| + ε` and `inv_t = 1 / (1 + c_t a)`, the penalty is
/// `λ w² Σ_t inv_t` and its derivative is `λ w (2 Σ_t inv_t - |w| Σ_t c_t inv_t²)`: the closed
/// form of TRT-SPEC.md regrouped (`W² sign(W) = W |W|`), so the timestep loop only divides
/// once and adds twice, and `sign(0) = 0` comes for free. Since `|w| c_t inv_t < 1`, the
/// bracket is at least `Σ_t inv_t`: no cancellation, so the float32 gradient keeps a small
/// relative error even for weights near zero.
///
/// Every weight is cut into fixed blocks of ``trtBlock`` elements; blocks of all weights are
/// split across cores, each block's penalty is summed in Double, and the block sums are added
/// in weight and block order, so the result depends only on the shapes, never on the thread
/// count.
extension CPUBackend {
    public func trtRegularizer(_ weights: [Tensor], lambda: Double, coefficients: [Double], epsilon: Double)
        -> (value: Tensor, gradients: [Tensor])
    {
        guard !weights.isEmpty, computesNatively("trtRegularizer", weights) else {
            return reference.trtRegularizer(weights, lambda: lambda, coefficients: coefficients, epsilon: epsilon)
        }
        let inputs = weights.map { $0.isContiguous ? $0 : contiguous($0) }
        let gradients = weights.map { Tensor.empty($0.shape, dtype: .float32, device: .cpu) }
        var blocks: [TRTBlock] = []
        for (k, w) in inputs.enumerated() {
            let source = UnsafePointer(w.pointer(as: Float.self)), target = gradients[k].pointer(as: Float.self)
            var start = 0
            while start < w.count {
                let n = min(trtBlock, w.count - start)
                blocks.append(TRTBlock(weight: source + start, gradient: target + start, count: n))
                start += n
            }
        }
        let constants = TRTConstants(lambda: lambda, coefficients: coefficients, epsilon: epsilon)
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: max(blocks.count, 1))
        defer { partials.deallocate() }
        blocks.withUnsafeBufferPointer { items in
            Parallel.forEachRange(items.count, cost: trtBlock) { range in
                for b in range { partials[b] = trtPenalty(items[b], constants) }
            }
        }
        var total = 0.0
        for b in 0..<blocks.count { total += partials[b] }
        let value = Tensor.empty([], dtype: .float32, device: .cpu)
        value.pointer(as: Float.self).pointee = Float(lambda * total)
        withExtendedLifetime(inputs) {}
        return (value, gradients)
    }
}

/// Elements per block: the unit of both the work split and the fixed summation order.
private let trtBlock = 4096

/// One block of one weight and the matching slice of its gradient.
private struct TRTBlock {
    let weight: UnsafePointer<Float>
    let gradient: UnsafeMutablePointer<Float>
    let count: Int
}

/// `λ`, `ε` and the `c_t` in float32, broadcast to lanes once.
private struct TRTConstants {
    let twiceLambda: Float, lambda: Float
    let epsilon: Float
    let coefficients: [Float]

    init(lambda: Double, coefficients: [Double], epsilon: Double) {
        self.lambda = Float(lambda)
        twiceLambda = Float(2 * lambda)
        self.epsilon = Float(epsilon)
        self.coefficients = coefficients.map { Float($0) }
    }
}

/// Writes the gradient of one block and returns `Σ w² Σ_t inv_t` over it (without `λ`,
/// which the caller applies once to the total).
private func trtPenalty(_ block: TRTBlock, _ k: TRTConstants) -> Double {
    k.coefficients.withUnsafeBufferPointer { c in
        var sum = SIMD4<Double>()
        let full = block.count / laneWidth * laneWidth
        var i = 0
        while i < full {
            let (penalty, gradient) = trtLanes(block.weight.loadLanes(i), c, k)
            UnsafeMutableRawPointer(block.gradient + i).storeBytes(of: gradient, as: Lanes.self)
            sum += SIMD4<Double>(penalty)
            i += laneWidth
        }
        if i < block.count {
            // Tail lanes load zeros, whose penalty and gradient are 0.
            let (penalty, gradient) = trtLanes(block.weight.loadLanes(i, count: block.count - i), c, k)
            (block.gradient + i).storeLanes(gradient, count: block.count - i)
            sum += SIMD4<Double>(penalty)
        }
        return (sum[0] + sum[1]) + (sum[2] + sum[3])
    }
}

/// The penalty `w² Σ_t inv_t` (without `λ`) and the gradient of four weights.
@inline(__always)
private func trtLanes(_ w: Lanes, _ c: UnsafeBufferPointer<Float>, _ k: TRTConstants) -> (Lanes, Lanes) {
    let magnitude = unsafeBitCast(unsafeBitCast(w, to: LaneBits.self) & 0x7FFF_FFFF, to: Lanes.self)
    let a = magnitude + k.epsilon
    var s1 = Lanes(), s2 = Lanes()
    for t in 0..<c.count {
        let inv = 1 / (a * c[t] + 1)
        s1 += inv
        s2 += inv * inv * c[t]
    }
    let penalty = w * w * s1
    let gradient = w * (k.twiceLambda * s1 - k.lambda * magnitude * s2)
    return (penalty, gradient)
}

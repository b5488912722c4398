import SNNTensor

/// The fused optimiser step on the CPU: one pass over the flat parameter, gradient and state
/// buffers, a vector (``Lanes``) at a time, split across cores.
///
/// The arithmetic is the composite update's (`SNNTraining`'s `Optimizer`, the same operations on
/// whole tensors) operation for operation: each scalar is computed in `Double` and rounded to
/// float once, as a tensor-times-scalar op rounds its immediate, and the float operations come in
/// the same order, so the fused step gives the composite's bits. The composite reads and writes
/// the buffers about a dozen times and allocates a temporary per operation; this reads each
/// buffer once and writes the parameters and the state once.
extension CPUBackend: FusedOptimizerBackend {
    public func optimizerStep(_ rule: FusedOptimizerRule, parameters: Tensor, gradients: Tensor, state1: Tensor, state2: Tensor?) {
        let buffers = [parameters, gradients, state1] + (state2.map { [$0] } ?? [])
        precondition(buffers.allSatisfy { $0.shape == parameters.shape && $0.isContiguous && $0.dtype == .float32 },
                     "[optimizerStep] expected contiguous float32 buffers of one shape")
        let n = parameters.count
        guard n > 0 else { return }
        let (p, g, s1) = (parameters.pointer(as: Float.self), UnsafePointer(gradients.pointer(as: Float.self)),
                          state1.pointer(as: Float.self))
        let s2 = state2?.pointer(as: Float.self)
        switch rule {
        case let .sgd(lr, weightDecay, momentum):
            let step = SGDStep(decay: weightDecay != 0 ? Float(weightDecay) : nil, momentum: Float(momentum), lr: Float(lr))
            run(n) { range in OptimizerLanes.apply(step, range, p, g, s1, nil) }
        case let .adam(lr, weightDecay, beta1, beta2, epsilon, c1, c2, decoupled):
            let step = AdamStep(decay: !decoupled && weightDecay != 0 ? Float(weightDecay) : nil,
                                shrink: decoupled && weightDecay != 0 ? Float(1 - lr * weightDecay) : nil,
                                beta1: Float(beta1), mix1: Float(1 - beta1), beta2: Float(beta2), mix2: Float(1 - beta2),
                                stepSize: Float(lr / c1), sqrtC2: Float(c2.squareRoot()), epsilon: Float(epsilon))
            guard let s2 else { preconditionFailure("[optimizerStep] Adam needs its second-moment buffer") }
            run(n) { range in OptimizerLanes.apply(step, range, p, g, s1, s2) }
        case let .rmsprop(lr, weightDecay, alpha, epsilon):
            let step = RMSpropStep(decay: weightDecay != 0 ? Float(weightDecay) : nil, alpha: Float(alpha),
                                   mix: Float(1 - alpha), lr: Float(lr), epsilon: Float(epsilon))
            run(n) { range in OptimizerLanes.apply(step, range, p, g, s1, nil) }
        }
    }

    /// Splits `0..<n` into ranges that start on a whole vector.
    private func run(_ n: Int, _ body: (Range<Int>) -> Void) {
        let vectors = (n + laneWidth - 1) / laneWidth
        Parallel.forEachRange(vectors, cost: laneWidth * 7) { range in
            body((range.lowerBound * laneWidth)..<min(range.upperBound * laneWidth, n))
        }
    }
}

/// One rule's update of a vector of parameters: `p`, `g`, `s1`, `s2` in, the new `p`, `s1`, `s2` out.
private protocol OptimizerRule {
    func update(_ p: inout Lanes, _ g: Lanes, _ s1: inout Lanes, _ s2: inout Lanes)
}

private enum OptimizerLanes {
    /// Applies `rule` over `range`, a partial last vector through zero-padded lanes.
    @inline(__always)
    static func apply<R: OptimizerRule>(_ rule: R, _ range: Range<Int>, _ p: UnsafeMutablePointer<Float>,
                                        _ g: UnsafePointer<Float>, _ s1: UnsafeMutablePointer<Float>,
                                        _ s2: UnsafeMutablePointer<Float>?) {
        let end = range.upperBound, full = range.lowerBound + (range.count / laneWidth) * laneWidth
        var i = range.lowerBound
        if let s2 {
            while i < full {
                var (pv, m, v) = (UnsafePointer(p).loadLanes(i), UnsafePointer(s1).loadLanes(i), UnsafePointer(s2).loadLanes(i))
                rule.update(&pv, g.loadLanes(i), &m, &v)
                (p + i).storeLanes(pv, count: laneWidth)
                (s1 + i).storeLanes(m, count: laneWidth)
                (s2 + i).storeLanes(v, count: laneWidth)
                i += laneWidth
            }
        } else {
            var unused = Lanes()
            while i < full {
                var (pv, m) = (UnsafePointer(p).loadLanes(i), UnsafePointer(s1).loadLanes(i))
                rule.update(&pv, g.loadLanes(i), &m, &unused)
                (p + i).storeLanes(pv, count: laneWidth)
                (s1 + i).storeLanes(m, count: laneWidth)
                i += laneWidth
            }
        }
        if i < end {
            let count = end - i
            var (pv, m) = (UnsafePointer(p).loadLanes(i, count: count), UnsafePointer(s1).loadLanes(i, count: count))
            var v = s2.map { UnsafePointer($0).loadLanes(i, count: count) } ?? Lanes()
            rule.update(&pv, g.loadLanes(i, count: count), &m, &v)
            (p + i).storeLanes(pv, count: count)
            (s1 + i).storeLanes(m, count: count)
            if let s2 { (s2 + i).storeLanes(v, count: count) }
        }
    }
}

/// `g += p·decay`; `buf = buf·momentum + g`; `p −= buf·lr`.
private struct SGDStep: OptimizerRule {
    let decay: Float?, momentum: Float, lr: Float

    @inline(__always)
    func update(_ p: inout Lanes, _ g: Lanes, _ s1: inout Lanes, _ s2: inout Lanes) {
        let grad = decay.map { g + p * $0 } ?? g
        s1 = s1 * momentum + grad
        p = p - s1 * lr
    }
}

/// Adam (`decay` on the gradient) or AdamW (`shrink = 1 − lr·decay` on the parameter first):
/// `m = m·β1 + g·(1−β1)`, `v = v·β2 + g²·(1−β2)`, `p −= m·(lr/c1) / (√v/√c2 + ε)`.
private struct AdamStep: OptimizerRule {
    let decay: Float?, shrink: Float?
    let beta1: Float, mix1: Float, beta2: Float, mix2: Float, stepSize: Float, sqrtC2: Float, epsilon: Float

    @inline(__always)
    func update(_ p: inout Lanes, _ g: Lanes, _ s1: inout Lanes, _ s2: inout Lanes) {
        let grad = decay.map { g + p * $0 } ?? g
        if let shrink { p = p * shrink }
        s1 = s1 * beta1 + grad * mix1
        s2 = s2 * beta2 + (grad * grad) * mix2
        p = p - (s1 * stepSize) / (s2.squareRoot() / sqrtC2 + epsilon)
    }
}

/// `g += p·decay`; `v = v·α + g²·(1−α)`; `p −= g·lr / (√v + ε)`.
private struct RMSpropStep: OptimizerRule {
    let decay: Float?, alpha: Float, mix: Float, lr: Float, epsilon: Float

    @inline(__always)
    func update(_ p: inout Lanes, _ g: Lanes, _ s1: inout Lanes, _ s2: inout Lanes) {
        let grad = decay.map { g + p * $0 } ?? g
        s1 = s1 * alpha + (grad * grad) * mix
        p = p - (grad * lr) / (s1.squareRoot() + epsilon)
    }
}

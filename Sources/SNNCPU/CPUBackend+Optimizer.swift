import SNNTensor

/// The fused optimiser step on the CPU: one pass over the flat parameter, gradient and state
/// buffers, eight floats at a time, split across cores.
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

    /// Splits `0..<n` into ranges that start on a multiple of eight floats.
    private func run(_ n: Int, _ body: (Range<Int>) -> Void) {
        let vectors = (n + 7) / 8
        Parallel.forEachRange(vectors, cost: 8 * 7) { range in
            body((range.lowerBound * 8)..<min(range.upperBound * 8, n))
        }
    }
}

/// One rule's update of eight parameters: `p`, `g`, `s1`, `s2` in, the new `p`, `s1`, `s2` out.
private protocol OptimizerRule {
    func update(_ p: inout SIMD8<Float>, _ g: SIMD8<Float>, _ s1: inout SIMD8<Float>, _ s2: inout SIMD8<Float>)
}

private enum OptimizerLanes {
    /// Applies `rule` over `range`, a partial last vector through zero-padded lanes.
    @inline(__always)
    static func apply<R: OptimizerRule>(_ rule: R, _ range: Range<Int>, _ p: UnsafeMutablePointer<Float>,
                                        _ g: UnsafePointer<Float>, _ s1: UnsafeMutablePointer<Float>,
                                        _ s2: UnsafeMutablePointer<Float>?) {
        var i = range.lowerBound
        while i < range.upperBound {
            let count = min(8, range.upperBound - i)
            var (pv, m) = (load(p + i, count), load(s1 + i, count))
            var v = s2.map { load($0 + i, count) } ?? SIMD8()
            rule.update(&pv, load(g + i, count), &m, &v)
            store(pv, p + i, count)
            store(m, s1 + i, count)
            if let s2 { store(v, s2 + i, count) }
            i += count
        }
    }

    @inline(__always)
    static func load(_ x: UnsafePointer<Float>, _ count: Int) -> SIMD8<Float> {
        if count == 8 { return UnsafeRawPointer(x).loadUnaligned(as: SIMD8<Float>.self) }
        var v = SIMD8<Float>()
        for k in 0..<count { v[k] = x[k] }
        return v
    }

    @inline(__always)
    static func load(_ x: UnsafeMutablePointer<Float>, _ count: Int) -> SIMD8<Float> { load(UnsafePointer(x), count) }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ x: UnsafeMutablePointer<Float>, _ count: Int) {
        if count == 8 { UnsafeMutableRawPointer(x).storeBytes(of: v, as: SIMD8<Float>.self); return }
        for k in 0..<count { x[k] = v[k] }
    }
}

/// `g += p·decay`; `buf = buf·momentum + g`; `p −= buf·lr`.
private struct SGDStep: OptimizerRule {
    let decay: Float?, momentum: Float, lr: Float

    @inline(__always)
    func update(_ p: inout SIMD8<Float>, _ g: SIMD8<Float>, _ s1: inout SIMD8<Float>, _ s2: inout SIMD8<Float>) {
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
    func update(_ p: inout SIMD8<Float>, _ g: SIMD8<Float>, _ s1: inout SIMD8<Float>, _ s2: inout SIMD8<Float>) {
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
    func update(_ p: inout SIMD8<Float>, _ g: SIMD8<Float>, _ s1: inout SIMD8<Float>, _ s2: inout SIMD8<Float>) {
        let grad = decay.map { g + p * $0 } ?? g
        s1 = s1 * alpha + (grad * grad) * mix
        p = p - (grad * lr) / (s1.squareRoot() + epsilon)
    }
}

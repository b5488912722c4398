import CDNNL
import SNNTensor

/// Batch normalisation through oneDNN over `[N, C, ...]`, viewed as `[N, C, rest, 1]` (the
/// same bytes; a 2-D `[N, C]` input is `[N, C, 1, 1]`), with separate scale and shift
/// tensors (γ, β). Activations are reordered to oneDNN's channel-blocked layout and back
/// (see `BatchNormPlan`).
///
/// oneDNN's training pass returns the batch mean and the biased variance (divided by the
/// number of elements per channel), which is what the backend protocol asks for; the
/// running statistics are the front-end's business.
extension CPUBackend {
    public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                          epsilon: Double, training: Bool) -> (output: Tensor, mean: Tensor, variance: Tensor) {
        guard computesNatively("batchNorm", x, gamma, beta) else {
            return reference.batchNorm(x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                                       epsilon: epsilon, training: training)
        }
        let (x, gamma, beta) = (x.contiguousData(), gamma.contiguousData(), beta.contiguousData())
        let c = x.shape[1]
        let y = Tensor.empty(x.shape, device: .cpu)
        // Training writes the batch statistics; eval reads the running ones (and returns them).
        let mean = training ? Tensor.empty([c], device: .cpu) : runningMean.contiguousData()
        let variance = training ? Tensor.empty([c], device: .cpu) : runningVar.contiguousData()
        DNNL.locked {
            let plan = BatchNormPlan.find(x.shape, epsilon)
            let src = plan.data.enter(DNNL.raw(x), slot: .operand0)
            let dst = plan.data.outputBuffer(DNNL.raw(y), slot: .result)
            (training ? plan.training : plan.inference).execute([
                (DNNL_ARG_SRC, plan.data.chosen, src),
                (DNNL_ARG_DST, plan.data.chosen, dst),
                (DNNL_ARG_SCALE, plan.channel, DNNL.raw(gamma)),
                (DNNL_ARG_SHIFT, plan.channel, DNNL.raw(beta)),
                (DNNL_ARG_MEAN, plan.channel, DNNL.raw(mean)),
                (DNNL_ARG_VARIANCE, plan.channel, DNNL.raw(variance)),
            ])
            plan.data.leave(dst, into: DNNL.raw(y))
        }
        return (y, mean, variance)
    }

    public func batchNormBackward(_ gradOutput: Tensor, input: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor,
                                  epsilon: Double) -> (input: Tensor, gamma: Tensor, beta: Tensor) {
        guard computesNatively("batchNorm", gradOutput, input, gamma) else {
            return reference.batchNormBackward(gradOutput, input: input, gamma: gamma, mean: mean, variance: variance, epsilon: epsilon)
        }
        let (gy, x) = (gradOutput.contiguousData(), input.contiguousData())
        let (gamma, mean, variance) = (gamma.contiguousData(), mean.contiguousData(), variance.contiguousData())
        let c = x.shape[1]
        let gx = Tensor.empty(x.shape, device: .cpu)
        let gGamma = Tensor.empty([c], device: .cpu), gBeta = Tensor.empty([c], device: .cpu)
        DNNL.locked {
            let plan = BatchNormPlan.find(x.shape, epsilon)
            let src = plan.data.enter(DNNL.raw(x), slot: .operand0)
            let diffDst = plan.data.enter(DNNL.raw(gy), slot: .operand1)
            let diffSrc = plan.data.outputBuffer(DNNL.raw(gx), slot: .result)
            plan.backward.execute([
                (DNNL_ARG_SRC, plan.data.chosen, src),
                (DNNL_ARG_DIFF_DST, plan.data.chosen, diffDst),
                (DNNL_ARG_SCALE, plan.channel, DNNL.raw(gamma)),
                // oneDNN 2.x lists the shift among a backward pass's inputs when the shift is
                // in use, although no gradient depends on it: pass zeros.
                (DNNL_ARG_SHIFT, plan.channel, plan.zeros),
                (DNNL_ARG_MEAN, plan.channel, DNNL.raw(mean)),
                (DNNL_ARG_VARIANCE, plan.channel, DNNL.raw(variance)),
                (DNNL_ARG_DIFF_SRC, plan.data.chosen, diffSrc),
                (DNNL_ARG_DIFF_SCALE, plan.channel, DNNL.raw(gGamma)),
                (DNNL_ARG_DIFF_SHIFT, plan.channel, DNNL.raw(gBeta)),
            ])
            plan.data.leave(diffSrc, into: DNNL.raw(gx))
        }
        return (gx, gGamma, gBeta)
    }
}

/// The oneDNN batch-norm primitives of one shape. Use with ``DNNL/lock`` held.
final class BatchNormPlan {
    private struct Key: Hashable { let shape: [Int], epsilon: Double }
    private static let cache = PlanCache<Key, BatchNormPlan>()

    /// The plan for a shape and ε. Call with ``DNNL/lock`` held.
    static func find(_ shape: [Int], _ epsilon: Double) -> BatchNormPlan {
        cache.plan(Key(shape: shape, epsilon: epsilon)) { BatchNormPlan(shape, epsilon) }
    }

    /// The activation layouts: plain `[N, C, rest, 1]` and the one the primitives run on.
    let data: DNNLBoundary
    let channel: dnnl_memory_desc_t
    let training: DNNLPrimitive, inference: DNNLPrimitive, backward: DNNLPrimitive
    /// `[C]` zeros standing in for the shift in the backward pass.
    private let zeroStorage: Storage
    var zeros: UnsafeMutableRawPointer { zeroStorage.data }

    private init(_ shape: [Int], _ epsilon: Double) {
        precondition(shape.count >= 2, "[batchNorm] expected a [N, C, ...] input, got \(shape)")
        let dims = [shape[0], shape[1], shape[2...].reduce(1, *), 1]
        // oneDNN's plain-layout (ncsp) kernel is generic C++; its JIT kernel needs channel
        // blocks. For [64, 128, 16, 16] on 2 AVX-512 cores, whole calls: plain 2.5 ms forward
        // and 2.9 ms backward; blocked 1.3 and 2.0 ms, of which the 8 MB reorders take about
        // 0.6 ms each. So reorder whenever there is at least one full block of channels.
        var d: dnnl_memory_desc_t
        switch DNNL.channelBlock {
        case 16 where shape[1] >= 16: d = DNNL.md(dims, dnnl_nChw16c)
        case 8 where shape[1] >= 8: d = DNNL.md(dims, dnnl_nChw8c)
        default: d = DNNL.md(dims, dnnl_nchw)
        }
        data = DNNLBoundary(plain: DNNL.md(dims, dnnl_nchw), chosen: d, inbound: true, outbound: true)
        channel = DNNL.md([shape[1]], dnnl_a)
        zeroStorage = Storage(byteCount: shape[1] * MemoryLayout<Float>.size)
        let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        func forward(_ kind: dnnl_prop_kind_t, _ flags: UInt32) -> DNNLPrimitive {
            var desc = dnnl_batch_normalization_desc_t()
            DNNL.check(dnnl_batch_normalization_forward_desc_init(&desc, kind, &d, Float(epsilon), flags),
                       "dnnl_batch_normalization_forward_desc_init")
            return withUnsafePointer(to: &desc) { DNNLPrimitive($0, "batch normalization forward") }
        }
        training = forward(dnnl_forward_training, flags)
        // Eval: global statistics are inputs, and inference needs no workspace.
        inference = forward(dnnl_forward_inference, flags | dnnl_use_global_stats.rawValue)
        var desc = dnnl_batch_normalization_desc_t()
        DNNL.check(dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &d, &d, Float(epsilon), flags),
                   "dnnl_batch_normalization_backward_desc_init")
        let hint = training
        backward = withUnsafePointer(to: &desc) { DNNLPrimitive($0, hint: hint, "batch normalization backward") }
    }
}

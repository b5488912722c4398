import CDNNL
import SNNTensor

/// Batch normalisation through oneDNN over `[N, C, ...]` (viewed as `[N, C, H·W, 1]`), with
/// separate scale and shift tensors (γ, β).
extension CPUBackend {
    public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                          epsilon: Double, training: Bool) -> (output: Tensor, mean: Tensor, variance: Tensor) {
        guard x.dtype == .float32 else {
            return reference.batchNorm(x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                                       epsilon: epsilon, training: training)
        }
        let plan = BatchNormPlan.find(x.shape, epsilon)
        let y = Tensor.empty(x.shape, device: .cpu)
        let c = x.shape[1]
        let mean = training ? Tensor.empty([c], device: .cpu) : runningMean.contiguousData()
        let variance = training ? Tensor.empty([c], device: .cpu) : runningVar.contiguousData()
        DNNL.lock.withLock {
            (training ? plan.training : plan.inference).execute([
                (Int32(DNNL_ARG_SRC), plan.data, raw(x)),
                (Int32(DNNL_ARG_DST), plan.data, raw(y)),
                (Int32(DNNL_ARG_SCALE), plan.channel, raw(gamma)),
                (Int32(DNNL_ARG_SHIFT), plan.channel, raw(beta)),
                (Int32(DNNL_ARG_MEAN), plan.channel, raw(mean)),
                (Int32(DNNL_ARG_VARIANCE), plan.channel, raw(variance)),
            ])
        }
        return (y, mean, variance)
    }

    public func batchNormBackward(_ gradOutput: Tensor, input: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor,
                                  epsilon: Double) -> (input: Tensor, gamma: Tensor, beta: Tensor) {
        guard gradOutput.dtype == .float32 else {
            return reference.batchNormBackward(gradOutput, input: input, gamma: gamma, mean: mean, variance: variance, epsilon: epsilon)
        }
        let plan = BatchNormPlan.find(input.shape, epsilon)
        let c = input.shape[1]
        let gx = Tensor.empty(input.shape, device: .cpu)
        let gGamma = Tensor.empty([c], device: .cpu), gBeta = Tensor.empty([c], device: .cpu)
        // oneDNN 2.x asks for the shift among a backward pass's inputs although the gradients
        // do not depend on it.
        let unusedShift = Tensor.zeros([c], device: .cpu)
        DNNL.lock.withLock {
            plan.backward.execute([
                (Int32(DNNL_ARG_SRC), plan.data, raw(input)),
                (Int32(DNNL_ARG_DIFF_DST), plan.data, raw(gradOutput)),
                (Int32(DNNL_ARG_SCALE), plan.channel, raw(gamma)),
                (Int32(DNNL_ARG_SHIFT), plan.channel, raw(unusedShift)),
                (Int32(DNNL_ARG_MEAN), plan.channel, raw(mean)),
                (Int32(DNNL_ARG_VARIANCE), plan.channel, raw(variance)),
                (Int32(DNNL_ARG_DIFF_SRC), plan.data, raw(gx)),
                (Int32(DNNL_ARG_DIFF_SCALE), plan.channel, raw(gGamma)),
                (Int32(DNNL_ARG_DIFF_SHIFT), plan.channel, raw(gBeta)),
            ])
        }
        return (gx, gGamma, gBeta)
    }

    /// The first element of a contiguous float32 tensor as a raw pointer for oneDNN.
    private func raw(_ t: Tensor) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(t.pointer(as: Float.self)) }
}

/// The oneDNN batch-norm primitives of one shape. Access with `DNNL.lock` held.
final class BatchNormPlan {
    struct Key: Hashable { let shape: [Int], epsilon: Double }
    private static let cache = PlanCache<Key, BatchNormPlan>()

    static func find(_ shape: [Int], _ epsilon: Double) -> BatchNormPlan {
        DNNL.lock.withLock { cache.plan(Key(shape: shape, epsilon: epsilon)) { BatchNormPlan(shape, epsilon) } }
    }

    let data: dnnl_memory_desc_t, channel: dnnl_memory_desc_t
    let training: DNNLPrimitive, inference: DNNLPrimitive, backward: DNNLPrimitive

    private init(_ shape: [Int], _ epsilon: Double) {
        // Any [N, C, ...] is [N, C, rest, 1] in memory.
        var d = DNNL.md([shape[0], shape[1], shape[2...].reduce(1, *), 1], dnnl_nchw)
        data = d
        channel = DNNL.md([shape[1]], dnnl_a)
        let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        func forward(_ kind: dnnl_prop_kind_t, _ flags: UInt32) -> DNNLPrimitive {
            var desc = dnnl_batch_normalization_desc_t()
            DNNL.check(dnnl_batch_normalization_forward_desc_init(&desc, kind, &d, Float(epsilon), flags),
                       "dnnl_batch_normalization_forward_desc_init")
            return withUnsafePointer(to: &desc) { DNNLPrimitive($0, "batch normalization forward") }
        }
        training = forward(dnnl_forward_training, flags)
        inference = forward(dnnl_forward_inference, flags | dnnl_use_global_stats.rawValue)
        var desc = dnnl_batch_normalization_desc_t()
        DNNL.check(dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &d, &d, Float(epsilon), flags),
                   "dnnl_batch_normalization_backward_desc_init")
        let hint = training
        backward = withUnsafePointer(to: &desc) { DNNLPrimitive($0, hint: hint, "batch normalization backward") }
    }
}

import CDNNL
import SNNTensor

/// Max and average pooling through oneDNN on plain NCHW tensors.
///
/// Max-pool backward needs oneDNN's workspace (the argmax of each window); rather than keep
/// it alive between forward and backward (the tape would have to carry a backend-specific
/// object), the backward pass recomputes the forward pass with a workspace — a pooling pass
/// costs a small fraction of the convolution beside it.
extension CPUBackend {
    public func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor {
        guard x.dtype == .float32 else { return reference.pool2d(x, p) }
        let plan = PoolPlan.find(x.shape, p)
        let y = Tensor.empty(plan.outputShape, device: .cpu)
        DNNL.lock.withLock {
            plan.inference.execute([
                (Int32(DNNL_ARG_SRC), plan.src, UnsafeMutableRawPointer(x.pointer(as: Float.self))),
                (Int32(DNNL_ARG_DST), plan.dst, UnsafeMutableRawPointer(y.pointer(as: Float.self))),
            ])
        }
        return y
    }

    public func pool2dBackward(_ gradOutput: Tensor, input: Tensor, output: Tensor, _ p: Pool2dParameters) -> Tensor {
        guard gradOutput.dtype == .float32 else { return reference.pool2dBackward(gradOutput, input: input, output: output, p) }
        let plan = PoolPlan.find(input.shape, p)
        let gx = Tensor.empty(input.shape, device: .cpu)
        DNNL.lock.withLock {
            var args: [(arg: Int32, md: dnnl_memory_desc_t, data: UnsafeMutableRawPointer)] = [
                (Int32(DNNL_ARG_DIFF_DST), plan.dst, UnsafeMutableRawPointer(gradOutput.pointer(as: Float.self))),
                (Int32(DNNL_ARG_DIFF_SRC), plan.src, UnsafeMutableRawPointer(gx.pointer(as: Float.self))),
            ]
            var workspace: Storage?
            if p.kind == .max {
                let ws = Storage(uninitializedByteCount: max(DNNL.size(plan.workspace), 1))
                let scratchY = Storage(uninitializedByteCount: output.count * 4)
                plan.training.execute([
                    (Int32(DNNL_ARG_SRC), plan.src, UnsafeMutableRawPointer(input.pointer(as: Float.self))),
                    (Int32(DNNL_ARG_DST), plan.dst, scratchY.data),
                    (Int32(DNNL_ARG_WORKSPACE), plan.workspace, ws.data),
                ])
                args.append((Int32(DNNL_ARG_WORKSPACE), plan.workspace, ws.data))
                workspace = ws
            }
            plan.backward.execute(args)
            withExtendedLifetime(workspace) {}
        }
        return gx
    }
}

/// The oneDNN pooling primitives of one problem. Access with `DNNL.lock` held.
final class PoolPlan {
    struct Key: Hashable { let input: [Int], p: Pool2dParameters }
    private static let cache = PlanCache<Key, PoolPlan>()

    static func find(_ input: [Int], _ p: Pool2dParameters) -> PoolPlan {
        DNNL.lock.withLock { cache.plan(Key(input: input, p: p)) { PoolPlan(input, p) } }
    }

    let outputShape: [Int]
    let src: dnnl_memory_desc_t, dst: dnnl_memory_desc_t
    let inference: DNNLPrimitive
    let training: DNNLPrimitive
    let workspace: dnnl_memory_desc_t
    let backward: DNNLPrimitive

    private init(_ input: [Int], _ p: Pool2dParameters) {
        let ho = (input[2] + 2 * p.padH - p.kernelH) / p.strideH + 1
        let wo = (input[3] + 2 * p.padW - p.kernelW) / p.strideW + 1
        outputShape = [input[0], input[1], ho, wo]
        var s = DNNL.md(input, dnnl_nchw), d = DNNL.md(outputShape, dnnl_nchw)
        (src, dst) = (s, d)
        // Padded positions never win a max and count in the average's divisor (PyTorch's
        // count_include_pad). With floor-mode output sizes a window never reaches past the
        // padded border, so equal left/right padding reproduces PyTorch's divisor.
        let alg = p.kind == .max ? dnnl_pooling_max : dnnl_pooling_avg_include_padding
        let strides = DNNL.dims([p.strideH, p.strideW]), kernel = DNNL.dims([p.kernelH, p.kernelW])
        let dilation = DNNL.dims([0, 0]), padding = DNNL.dims([p.padH, p.padW])
        func forward(_ kind: dnnl_prop_kind_t) -> DNNLPrimitive {
            var desc = dnnl_pooling_v2_desc_t()
            DNNL.check(dnnl_pooling_v2_forward_desc_init(&desc, kind, alg, &s, &d, strides, kernel, dilation, padding, padding),
                       "dnnl_pooling_v2_forward_desc_init")
            return withUnsafePointer(to: &desc) { DNNLPrimitive($0, "pooling forward") }
        }
        inference = forward(dnnl_forward_inference)
        training = forward(dnnl_forward_training)
        workspace = training.md(dnnl_query_workspace_md)
        var desc = dnnl_pooling_v2_desc_t()
        DNNL.check(dnnl_pooling_v2_backward_desc_init(&desc, alg, &s, &d, strides, kernel, dilation, padding, padding),
                   "dnnl_pooling_v2_backward_desc_init")
        let hint = training
        backward = withUnsafePointer(to: &desc) { DNNLPrimitive($0, hint: hint, "pooling backward") }
    }
}

import CDNNL
import CSNNKernels
import SNNTensor

/// Max and average pooling through oneDNN on plain NCHW tensors.
///
/// Semantics, checked against the reference backend in `DNNLSmokeTests`:
/// - Max: padded positions never win; the gradient goes to the first maximum of a window in
///   row-major order, PyTorch's rule. oneDNN's workspace (the argmax of each window) agrees
///   on ties: the smoke tests pool inputs made of 0, 1 and 2 with overlapping windows.
/// - Average: `pooling_avg_include_padding` divides by kh·kw. PyTorch (and the reference)
///   divide by the window clipped at the padded border; the two agree because
///   `Pool2dParameters` keeps padding ≤ kernel/2 and outputs use the floor formula, so no
///   window reaches past the padded border.
///
/// Max-pool backward needs oneDNN's workspace (the argmax of each window). Rather than keep
/// it alive between forward and backward (the tape would have to carry a backend-specific
/// object, or a cache keyed on the output's storage would hold memory until it is freed),
/// the backward pass recomputes the forward pass with a workspace: a memory-bound pass over
/// the input, small beside the convolution that feeds it.
///
/// Average pooling over non-overlapping windows (stride = kernel, no padding: VGGSNN's 2×2
/// pools) runs SwiftSNN's own loop (`Sources/CSNNKernels/window_pool.c`) over planes in
/// parallel: oneDNN 2.6 has only a scalar implementation for NCHW (`simple_nchw`), which ran
/// at about 1.2 GB/s.
extension CPUBackend {
    public func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor {
        guard computesNatively("pool2d", x) else { return reference.pool2d(x, p) }
        let x = x.contiguousData()
        let y = Tensor.empty(PoolPlan.outputShape(x.shape, p), device: .cpu)
        if WindowPool.covers(x.shape, p) {
            let (source, target) = (x.pointer(as: Float.self), y.pointer(as: Float.self))
            let (h, w, outPlane) = (x.shape[2], x.shape[3], y.shape[2] * y.shape[3])
            Parallel.forEachRange(x.shape[0] * x.shape[1], cost: h * w) { planes in
                snn_window_avg_pool(source + planes.lowerBound * h * w, planes.count, Int32(h), Int32(w),
                                    Int32(p.kernelH), Int32(p.kernelW), target + planes.lowerBound * outPlane)
            }
            return y
        }
        DNNL.locked {
            let plan = PoolPlan.find(x.shape, p)
            plan.inference.execute([
                (DNNL_ARG_SRC, plan.src, DNNL.raw(x)),
                (DNNL_ARG_DST, plan.dst, DNNL.raw(y)),
            ])
        }
        return y
    }

    public func pool2dBackward(_ gradOutput: Tensor, inputShape: [Int], input: Tensor?, _ p: Pool2dParameters) -> Tensor {
        guard computesNatively("pool2d", gradOutput) else {
            return reference.pool2dBackward(gradOutput, inputShape: inputShape, input: input, p)
        }
        precondition(p.kind == .average || input?.shape == inputShape, "[pool2d] expected the forward input of shape \(inputShape) for max pooling's gradient")
        let gy = gradOutput.contiguousData()
        let gx = Tensor.empty(inputShape, device: .cpu)
        if WindowPool.covers(inputShape, p) {
            let (source, target) = (gy.pointer(as: Float.self), gx.pointer(as: Float.self))
            let (h, w, outPlane) = (inputShape[2], inputShape[3], gy.shape[2] * gy.shape[3])
            Parallel.forEachRange(inputShape[0] * inputShape[1], cost: h * w) { planes in
                snn_window_avg_pool_backward(source + planes.lowerBound * outPlane, planes.count, Int32(h), Int32(w),
                                             Int32(p.kernelH), Int32(p.kernelW), target + planes.lowerBound * h * w)
            }
            return gx
        }
        DNNL.locked {
            let plan = PoolPlan.find(inputShape, p)
            var args: [DNNLArgument] = [
                (DNNL_ARG_DIFF_DST, plan.dst, DNNL.raw(gy)),
                (DNNL_ARG_DIFF_SRC, plan.src, DNNL.raw(gx)),
            ]
            if let training = plan.training, let workspace = plan.workspace, let x = input?.contiguousData() {
                let ws = DNNLArena.shared.buffer(.workspace, bytes: DNNL.size(workspace))
                let recomputed = DNNLArena.shared.buffer(.result, bytes: DNNL.size(plan.dst))
                training.execute([
                    (DNNL_ARG_SRC, plan.src, DNNL.raw(x)),
                    (DNNL_ARG_DST, plan.dst, recomputed),
                    (DNNL_ARG_WORKSPACE, workspace, ws),
                ])
                args.append((DNNL_ARG_WORKSPACE, workspace, ws))
            }
            plan.backward.execute(args)
        }
        return gx
    }
}

/// Average pooling over non-overlapping windows, SwiftSNN's loop rather than oneDNN's.
enum WindowPool {
    /// Whether `p` on an input of `shape` is average pooling with stride = kernel, no padding and
    /// at least one whole window per row and column.
    static func covers(_ shape: [Int], _ p: Pool2dParameters) -> Bool {
        p.kind == .average && p.strideH == p.kernelH && p.strideW == p.kernelW && p.padH == 0 && p.padW == 0
            && shape.count == 4 && shape[2] >= p.kernelH && shape[3] >= p.kernelW
    }
}

/// The oneDNN pooling primitives of one problem. Use with ``DNNL/lock`` held.
final class PoolPlan {
    private struct Key: Hashable { let input: [Int], p: Pool2dParameters }
    private static let cache = PlanCache<Key, PoolPlan>()

    /// The plan for a problem. Call with ``DNNL/lock`` held.
    static func find(_ input: [Int], _ p: Pool2dParameters) -> PoolPlan {
        cache.plan(Key(input: input, p: p)) { PoolPlan(input, p) }
    }

    /// `[N, C, Ho, Wo]` with the floor formula.
    static func outputShape(_ input: [Int], _ p: Pool2dParameters) -> [Int] {
        [input[0], input[1], (input[2] + 2 * p.padH - p.kernelH) / p.strideH + 1, (input[3] + 2 * p.padW - p.kernelW) / p.strideW + 1]
    }

    let src: dnnl_memory_desc_t, dst: dnnl_memory_desc_t
    let inference: DNNLPrimitive
    /// Max pooling only: the forward pass that records the workspace, and its layout.
    let training: DNNLPrimitive?, workspace: dnnl_memory_desc_t?
    let backward: DNNLPrimitive

    private init(_ input: [Int], _ p: Pool2dParameters) {
        // Pooling runs on our NCHW tensors directly: a pooling pass is memory-bound, so
        // reordering to nChw16c and back would cost more than it saves.
        var s = DNNL.md(input, dnnl_nchw), d = DNNL.md(PoolPlan.outputShape(input, p), dnnl_nchw)
        (src, dst) = (s, d)
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
        // The backward primitive needs a training forward as its hint in every case; only max
        // pooling has a workspace to record.
        let hint = forward(dnnl_forward_training)
        if p.kind == .max {
            training = hint
            workspace = hint.md(dnnl_query_workspace_md)
        } else {
            (training, workspace) = (nil, nil)
        }
        var desc = dnnl_pooling_v2_desc_t()
        DNNL.check(dnnl_pooling_v2_backward_desc_init(&desc, alg, &s, &d, strides, kernel, dilation, padding, padding),
                   "dnnl_pooling_v2_backward_desc_init")
        backward = withUnsafePointer(to: &desc) { DNNLPrimitive($0, hint: hint, "pooling backward") }
    }
}

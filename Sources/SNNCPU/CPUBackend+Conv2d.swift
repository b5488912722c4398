import CDNNL
import SNNTensor

/// Convolution through oneDNN: one plan per problem (shapes, bias, stride, padding, dilation,
/// groups) holding the forward, backward-data and backward-weights primitives and the
/// reorders between our NCHW tensors and the layouts oneDNN chose.
extension CPUBackend {
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters) -> Tensor {
        guard x.dtype == .float32 else { return reference.conv2d(x, weight: weight, bias: bias, p) }
        let plan = ConvPlan.find(x.shape, weight.shape, bias != nil, p)
        let y = Tensor.empty(plan.outputShape, device: .cpu)
        DNNL.lock.withLock {
            let (src, s1) = plan.src.enter(UnsafeMutableRawPointer(x.pointer(as: Float.self)))
            let (w, s2) = plan.weights.enter(UnsafeMutableRawPointer(weight.pointer(as: Float.self)))
            let (dst, s3) = plan.dst.outputBuffer(UnsafeMutableRawPointer(y.pointer(as: Float.self)))
            var args: [(arg: Int32, md: dnnl_memory_desc_t, data: UnsafeMutableRawPointer)] = [
                (Int32(DNNL_ARG_SRC), plan.src.chosen, src),
                (Int32(DNNL_ARG_WEIGHTS), plan.weights.chosen, w),
                (Int32(DNNL_ARG_DST), plan.dst.chosen, dst),
            ]
            if let bias { args.append((Int32(DNNL_ARG_BIAS), DNNL.md([bias.count], dnnl_a), UnsafeMutableRawPointer(bias.pointer(as: Float.self)))) }
            plan.forward.execute(args)
            plan.dst.leave(dst, into: UnsafeMutableRawPointer(y.pointer(as: Float.self)))
            withExtendedLifetime((s1, s2, s3)) {}
        }
        return y
    }

    public func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters) -> Tensor {
        guard gradOutput.dtype == .float32 else {
            return reference.conv2dBackwardData(gradOutput, weight: weight, inputShape: inputShape, p)
        }
        let plan = ConvPlan.find(inputShape, weight.shape, false, p)
        let gx = Tensor.empty(inputShape, device: .cpu)
        DNNL.lock.withLock {
            let b = plan.backwardData
            let (gy, s1) = b.diffDst.enter(UnsafeMutableRawPointer(gradOutput.pointer(as: Float.self)))
            let (w, s2) = b.weights.enter(UnsafeMutableRawPointer(weight.pointer(as: Float.self)))
            let (gs, s3) = b.diffSrc.outputBuffer(UnsafeMutableRawPointer(gx.pointer(as: Float.self)))
            b.primitive.execute([
                (Int32(DNNL_ARG_DIFF_DST), b.diffDst.chosen, gy),
                (Int32(DNNL_ARG_WEIGHTS), b.weights.chosen, w),
                (Int32(DNNL_ARG_DIFF_SRC), b.diffSrc.chosen, gs),
            ])
            b.diffSrc.leave(gs, into: UnsafeMutableRawPointer(gx.pointer(as: Float.self)))
            withExtendedLifetime((s1, s2, s3)) {}
        }
        return gx
    }

    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                                     _ p: Conv2dParameters) -> (weight: Tensor, bias: Tensor?) {
        guard gradOutput.dtype == .float32 else {
            return reference.conv2dBackwardWeight(gradOutput, input: input, weightShape: weightShape, withBias: withBias, p)
        }
        let plan = ConvPlan.find(input.shape, weightShape, withBias, p)
        let gw = Tensor.empty(weightShape, device: .cpu)
        let gb = withBias ? Tensor.empty([weightShape[0]], device: .cpu) : nil
        DNNL.lock.withLock {
            let b = plan.backwardWeights
            let (src, s1) = b.src.enter(UnsafeMutableRawPointer(input.pointer(as: Float.self)))
            let (gy, s2) = b.diffDst.enter(UnsafeMutableRawPointer(gradOutput.pointer(as: Float.self)))
            let (dw, s3) = b.diffWeights.outputBuffer(UnsafeMutableRawPointer(gw.pointer(as: Float.self)))
            var args: [(arg: Int32, md: dnnl_memory_desc_t, data: UnsafeMutableRawPointer)] = [
                (Int32(DNNL_ARG_SRC), b.src.chosen, src),
                (Int32(DNNL_ARG_DIFF_DST), b.diffDst.chosen, gy),
                (Int32(DNNL_ARG_DIFF_WEIGHTS), b.diffWeights.chosen, dw),
            ]
            if let gb { args.append((Int32(DNNL_ARG_DIFF_BIAS), DNNL.md([gb.count], dnnl_a), UnsafeMutableRawPointer(gb.pointer(as: Float.self)))) }
            b.primitive.execute(args)
            b.diffWeights.leave(dw, into: UnsafeMutableRawPointer(gw.pointer(as: Float.self)))
            withExtendedLifetime((s1, s2, s3)) {}
        }
        return (gw, gb)
    }
}

/// The oneDNN primitives of one convolution problem. Backward primitives are built on first
/// use (inference never needs them). Access with `DNNL.lock` held.
final class ConvPlan {
    struct Key: Hashable {
        let input: [Int], weight: [Int], bias: Bool, p: Conv2dParameters
    }

    private static let cache = PlanCache<Key, ConvPlan>()

    /// The plan for a problem, created on first use.
    static func find(_ input: [Int], _ weight: [Int], _ bias: Bool, _ p: Conv2dParameters) -> ConvPlan {
        DNNL.lock.withLock { cache.plan(Key(input: input, weight: weight, bias: bias, p: p)) { ConvPlan(input, weight, bias, p) } }
    }

    let outputShape: [Int]
    let forward: DNNLPrimitive
    let src: DNNLBoundary, weights: DNNLBoundary, dst: DNNLBoundary
    private let userSrc: dnnl_memory_desc_t, userWeights: dnnl_memory_desc_t, userDst: dnnl_memory_desc_t
    private let strides: [Int64], dilates: [Int64], padding: [Int64]
    private let bias: Bool

    private init(_ input: [Int], _ weight: [Int], _ bias: Bool, _ p: Conv2dParameters) {
        let ho = Conv2dParameters.outputSize(input[2], kernel: weight[2], stride: p.strideH, padding: p.padH, dilation: p.dilationH)
        let wo = Conv2dParameters.outputSize(input[3], kernel: weight[3], stride: p.strideW, padding: p.padW, dilation: p.dilationW)
        outputShape = [input[0], weight[0], ho, wo]
        // Grouped weights are [g, O/g, C/g, kh, kw] in oneDNN (goihw); same bytes as ours.
        let wDims = p.groups == 1 ? weight : [p.groups, weight[0] / p.groups] + weight[1...]
        userSrc = DNNL.md(input, dnnl_nchw)
        userWeights = DNNL.md(wDims, p.groups == 1 ? dnnl_oihw : dnnl_goihw)
        userDst = DNNL.md(outputShape, dnnl_nchw)
        strides = DNNL.dims([p.strideH, p.strideW])
        dilates = DNNL.dims([p.dilationH - 1, p.dilationW - 1])  // oneDNN counts dilation from 0
        // With equal padding on both sides oneDNN's output-size formula is PyTorch's.
        padding = DNNL.dims([p.padH, p.padW])
        self.bias = bias

        var anySrc = DNNL.md(input, dnnl_format_tag_any), anyW = DNNL.md(wDims, dnnl_format_tag_any)
        var anyDst = DNNL.md(outputShape, dnnl_format_tag_any), biasMD = DNNL.md([weight[0]], dnnl_a)
        var desc = dnnl_convolution_desc_t()
        let (strides, dilates, padding) = (self.strides, self.dilates, self.padding)
        let status = withUnsafePointer(to: &biasMD) { biasPointer in
            dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct,
                                                       &anySrc, &anyW, bias ? biasPointer : nil, &anyDst,
                                                       strides, dilates, padding, padding)
        }
        DNNL.check(status, "dnnl_dilated_convolution_forward_desc_init")
        forward = withUnsafePointer(to: &desc) { DNNLPrimitive($0, "convolution forward") }
        src = DNNLBoundary(plain: userSrc, chosen: forward.md(dnnl_query_src_md), inbound: true, outbound: false)
        weights = DNNLBoundary(plain: userWeights, chosen: forward.md(dnnl_query_weights_md), inbound: true, outbound: false)
        dst = DNNLBoundary(plain: userDst, chosen: forward.md(dnnl_query_dst_md), inbound: false, outbound: true)
    }

    struct BackwardData {
        let primitive: DNNLPrimitive
        let diffDst: DNNLBoundary, weights: DNNLBoundary, diffSrc: DNNLBoundary
    }

    struct BackwardWeights {
        let primitive: DNNLPrimitive
        let src: DNNLBoundary, diffDst: DNNLBoundary, diffWeights: DNNLBoundary
    }

    private(set) lazy var backwardData: BackwardData = {
        var anySrc = DNNL.md(userSrc.dims(), dnnl_format_tag_any), anyW = DNNL.md(userWeights.dims(), dnnl_format_tag_any)
        var anyDst = DNNL.md(userDst.dims(), dnnl_format_tag_any)
        var desc = dnnl_convolution_desc_t()
        DNNL.check(dnnl_dilated_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &anySrc, &anyW, &anyDst,
                                                                    strides, dilates, padding, padding),
                   "dnnl_dilated_convolution_backward_data_desc_init")
        let prim = withUnsafePointer(to: &desc) { DNNLPrimitive($0, hint: forward, "convolution backward data") }
        return BackwardData(
            primitive: prim,
            diffDst: DNNLBoundary(plain: userDst, chosen: prim.md(dnnl_query_diff_dst_md), inbound: true, outbound: false),
            weights: DNNLBoundary(plain: userWeights, chosen: prim.md(dnnl_query_weights_md), inbound: true, outbound: false),
            diffSrc: DNNLBoundary(plain: userSrc, chosen: prim.md(dnnl_query_diff_src_md), inbound: false, outbound: true))
    }()

    private(set) lazy var backwardWeights: BackwardWeights = {
        var anySrc = DNNL.md(userSrc.dims(), dnnl_format_tag_any), anyW = DNNL.md(userWeights.dims(), dnnl_format_tag_any)
        var anyDst = DNNL.md(userDst.dims(), dnnl_format_tag_any), biasMD = DNNL.md([outputShape[1]], dnnl_a)
        var desc = dnnl_convolution_desc_t()
        let status = withUnsafePointer(to: &biasMD) { [bias, strides, dilates, padding] biasPointer in
            dnnl_dilated_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &anySrc, &anyW,
                                                                bias ? biasPointer : nil, &anyDst,
                                                                strides, dilates, padding, padding)
        }
        DNNL.check(status, "dnnl_dilated_convolution_backward_weights_desc_init")
        let prim = withUnsafePointer(to: &desc) { DNNLPrimitive($0, hint: forward, "convolution backward weights") }
        return BackwardWeights(
            primitive: prim,
            src: DNNLBoundary(plain: userSrc, chosen: prim.md(dnnl_query_src_md), inbound: true, outbound: false),
            diffDst: DNNLBoundary(plain: userDst, chosen: prim.md(dnnl_query_diff_dst_md), inbound: true, outbound: false),
            diffWeights: DNNLBoundary(plain: userWeights, chosen: prim.md(dnnl_query_diff_weights_md), inbound: false, outbound: true))
    }()
}

extension dnnl_memory_desc_t {
    /// The logical dimensions.
    func dims() -> [Int] {
        withUnsafeBytes(of: self.dims) { raw in (0..<Int(ndims)).map { Int(raw.load(fromByteOffset: $0 * 8, as: Int64.self)) } }
    }
}

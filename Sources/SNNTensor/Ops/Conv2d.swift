/// 2-D convolution (cross-correlation, as PyTorch).
///
/// - Parameters:
///   - x: `[N, C, H, W]`.
///   - weight: `[O, C/groups, kh, kw]`.
///   - bias: `[O]` or `nil`.
/// - Returns: `[N, O, Ho, Wo]` with `Ho = (H + 2p - d(kh-1) - 1)/s + 1`.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                   padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) -> Tensor {
    let p = Conv2dParameters(stride: stride, padding: padding, dilation: dilation, groups: groups)
    precondition(x.rank == 4, "[conv2d] expected a [N, C, H, W] input, got \(ShapeUtil.describe(x.shape))")
    precondition(weight.rank == 4, "[conv2d] expected a [O, C/g, kh, kw] weight, got \(ShapeUtil.describe(weight.shape))")
    precondition(x.shape[1] == weight.shape[1] * groups && weight.shape[0] % groups == 0,
                 "[conv2d] expected input channels \(weight.shape[1] * groups) (weight \(ShapeUtil.describe(weight.shape)), groups \(groups)), got \(ShapeUtil.describe(x.shape))")
    precondition(x.device == weight.device && x.dtype == weight.dtype, "[conv2d] expected input and weight on one device and dtype")
    if let bias {
        precondition(bias.shape == [weight.shape[0]], "[conv2d] expected a bias of shape [\(weight.shape[0])], got \(ShapeUtil.describe(bias.shape))")
    }
    let ho = Conv2dParameters.outputSize(x.shape[2], kernel: weight.shape[2], stride: p.strideH, padding: p.padH, dilation: p.dilationH)
    let wo = Conv2dParameters.outputSize(x.shape[3], kernel: weight.shape[3], stride: p.strideW, padding: p.padW, dilation: p.dilationW)
    precondition(ho > 0 && wo > 0, "[conv2d] expected a kernel that fits the padded input, got input \(ShapeUtil.describe(x.shape)) and weight \(ShapeUtil.describe(weight.shape))")
    let (cx, cw) = (x.contiguousData(), weight.contiguousData())
    let backend = x.backend
    let out = backend.conv2d(cx, weight: cw, bias: bias?.contiguousData(), p)
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    let hasBias = bias != nil
    // Saved for the rule: the weight for dL/dx, the input (as bytes when it holds spikes) for
    // dL/dW; only what a requested gradient uses.
    let savedWeight = x.requiresGrad ? cw : nil
    let savedInput = weight.requiresGrad || (bias?.requiresGrad ?? false) ? SavedActivation(cx) : nil
    let inputShape = cx.shape, weightShape = cw.shape
    return record("conv2d", out, inputs) { g in
        let gc = g.contiguousData()
        let gx = savedWeight.map { backend.conv2dBackwardData(gc, weight: $0, inputShape: inputShape, p) }
        var gw: Tensor?, gb: Tensor?
        if let savedInput {
            (gw, gb) = backend.conv2dBackwardWeight(gc, input: savedInput.value, weightShape: weightShape, withBias: hasBias, p)
        }
        return hasBias ? [gx, gw, gb] : [gx, gw]
    }
}

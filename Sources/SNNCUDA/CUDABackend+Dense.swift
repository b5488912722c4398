import SNNTensor

/// Matrix product, convolution, pooling and batch norm (`dense.cu`), on contiguous float32.
extension CUDABackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        guard let pa = packed(a), let pb = packed(b) else {
            return onHost([a, b]) { $0.matmul($1[0], $1[1], transposeA: transposeA, transposeB: transposeB) }
        }
        let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let n = transposeB ? b.shape[0] : b.shape[1]
        let out = output([m, n])
        if out.count == 0 { return out }
        if k == 0 {
            fill(out, with: 0)
            return out
        }
        if usesCUBLAS {
            multiply(pa, pb, into: out, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
            return out
        }
        // Element (i, j) of op(A) sits at i·row + j·col.
        let (aRow, aCol) = transposeA ? (1, m) : (k, 1)
        let (bRow, bCol) = transposeB ? (1, k) : (n, 1)
        let tilesN = (n + 15) / 16
        launch("snn_matmul", blocks: ((m + 15) / 16) * tilesN,
               [arg(pa), arg(pb), arg(out), .int32(Int32(m)), .int32(Int32(n)), .int32(Int32(k)), .int64(Int64(aRow)),
                .int64(Int64(aCol)), .int64(Int64(bRow)), .int64(Int64(bCol)), .int32(Int32(tilesN))])
        return out
    }

    /// `SnnConv` of `dense.cu`: sixteen ints.
    private func geometry(input: [Int], weight: [Int], _ p: Conv2dParameters) -> (KernelArgument, output: [Int]) {
        let oh = Conv2dParameters.outputSize(input[2], kernel: weight[2], stride: p.strideH, padding: p.padH, dilation: p.dilationH)
        let ow = Conv2dParameters.outputSize(input[3], kernel: weight[3], stride: p.strideW, padding: p.padW, dilation: p.dilationW)
        let fields = [input[0], input[1], input[2], input[3], weight[0], weight[2], weight[3], oh, ow, p.strideH, p.strideW,
                      p.padH, p.padW, p.dilationH, p.dilationW, p.groups].map { Int32($0) }
        return (.bytes(fields.withUnsafeBytes { Array($0) }), [input[0], weight[0], oh, ow])
    }

    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters) -> Tensor {
        guard let px = packed(x), let pw = packed(weight), bias.map({ $0.dtype == .float32 }) ?? true else {
            return onHost([x, weight] + (bias.map { [$0] } ?? [])) {
                $0.conv2d($1[0], weight: $1[1], bias: $1.count > 2 ? $1[2] : nil, p)
            }
        }
        let (g, shape) = geometry(input: x.shape, weight: weight.shape, p)
        let out = output(shape)
        if out.count == 0 { return out }
        if let (dnn, plan) = cudnnPlan(x.shape, weight.shape, shape, p) {
            convolve(.forward, dnn, plan, x: px, w: pw, y: out)
            return bias.map { addingBias(out, packed($0)!) } ?? out
        }
        if let plan = unfolding(x.shape, weight.shape, shape, p) {
            unfoldedForward(px, pw, into: out, plan, g)
            return bias.map { addingBias(out, packed($0)!) } ?? out
        }
        launch("snn_conv2d_forward", elements: out.count, [arg(px), arg(pw), arg(bias.map { packed($0)! }), arg(out), g])
        return out
    }

    /// `y + b` with `b` per output channel of `y` (`[N, O, H, W]`).
    private func addingBias(_ y: Tensor, _ b: Tensor) -> Tensor {
        let (n, o, plane) = (y.shape[0], y.shape[1], y.shape[2] * y.shape[3])
        return binary(.add, y.reshaped([n, o, plane]), Tensor(storage: b.storage, shape: [n, o, plane], strides: [0, 1, 0], offset: b.offset,
                                                          dtype: .float32, device: device)).reshaped(y.shape)
    }

    public func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters) -> Tensor {
        guard let pg = packed(gradOutput), let pw = packed(weight) else {
            return onHost([gradOutput, weight]) { $0.conv2dBackwardData($1[0], weight: $1[1], inputShape: inputShape, p) }
        }
        let (g, outputShape) = geometry(input: inputShape, weight: weight.shape, p)
        let out = output(inputShape)
        if out.count == 0 { return out }
        if let (dnn, plan) = cudnnPlan(inputShape, weight.shape, outputShape, p) {
            convolve(.backwardData, dnn, plan, x: out, w: pw, y: pg)
            return out
        }
        if let plan = unfolding(inputShape, weight.shape, outputShape, p) {
            unfoldedBackwardData(pg, pw, into: out, plan, g)
            return out
        }
        launch("snn_conv2d_backward_data", elements: out.count, [arg(pg), arg(pw), arg(out), g])
        return out
    }

    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                                     _ p: Conv2dParameters) -> (weight: Tensor, bias: Tensor?) {
        guard let pg = packed(gradOutput), let px = packed(input) else {
            let host = ReferenceBackend.shared.conv2dBackwardWeight(hostCopy(of: gradOutput), input: hostCopy(of: input),
                                                                    weightShape: weightShape, withBias: withBias, p)
            return (deviceCopy(of: host.weight), host.bias.map(deviceCopy))
        }
        let (g, outputShape) = geometry(input: input.shape, weight: weightShape, p)
        let gw = output(weightShape)
        if gw.count > 0 {
            if let (dnn, plan) = cudnnPlan(input.shape, weightShape, outputShape, p) {
                convolve(.backwardWeights, dnn, plan, x: px, w: gw, y: pg)
            } else if let plan = unfolding(input.shape, weightShape, outputShape, p) {
                unfoldedBackwardWeight(pg, px, into: gw, plan, g)
            } else {
                launch("snn_conv2d_backward_weight", blocks: gw.count, [arg(pg), arg(px), arg(gw), g])
            }
        }
        var gb: Tensor?
        if withBias {
            let b = output([weightShape[0]])
            if b.count > 0 { launch("snn_conv2d_backward_bias", blocks: b.count, [arg(pg), arg(b), g]) }
            gb = b
        }
        return (gw, gb)
    }

    /// `SnnPool` of `dense.cu`: twelve ints.
    private func geometry(_ input: [Int], _ p: Pool2dParameters) -> (KernelArgument, output: [Int]) {
        let oh = (input[2] + 2 * p.padH - p.kernelH) / p.strideH + 1, ow = (input[3] + 2 * p.padW - p.kernelW) / p.strideW + 1
        let fields = [input[0] * input[1], input[2], input[3], oh, ow, p.kernelH, p.kernelW, p.strideH, p.strideW, p.padH, p.padW,
                      p.kind == .max ? 0 : 1].map { Int32($0) }
        return (.bytes(fields.withUnsafeBytes { Array($0) }), [input[0], input[1], oh, ow])
    }

    public func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor {
        guard let px = packed(x) else { return onHost([x]) { $0.pool2d($1[0], p) } }
        let (g, shape) = geometry(x.shape, p)
        let out = output(shape)
        if out.count > 0 { launch("snn_pool2d_forward", elements: out.count, [arg(px), arg(out), g]) }
        return out
    }

    public func pool2dBackward(_ gradOutput: Tensor, inputShape: [Int], input: Tensor?, _ p: Pool2dParameters) -> Tensor {
        precondition(p.kind == .average || input?.shape == inputShape,
                     "[pool2d] expected the forward input of shape \(inputShape) for max pooling's gradient")
        guard let pg = packed(gradOutput), input.map({ $0.dtype == .float32 }) ?? true else {
            return onHost([gradOutput] + (input.map { [$0] } ?? [])) {
                $0.pool2dBackward($1[0], inputShape: inputShape, input: $1.count > 1 ? $1[1] : nil, p)
            }
        }
        let (g, _) = geometry(inputShape, p)
        let out = output(inputShape)
        let px = p.kind == .max ? input.flatMap(packed) : nil
        if out.count > 0 { launch("snn_pool2d_backward", elements: out.count, [arg(pg), arg(px), arg(out), g]) }
        return out
    }

    /// Channels and the elements per channel and frame of `[N, C, ...]`.
    private func planes(_ shape: [Int]) -> (frames: Int, channels: Int, plane: Int) {
        let (frames, channels) = (shape[0], shape.count > 1 ? shape[1] : 1)
        return (frames, channels, ShapeUtil.count(shape) / max(frames * channels, 1))
    }

    public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                          epsilon: Double, training: Bool) -> (output: Tensor, mean: Tensor, variance: Tensor) {
        let all = [x, gamma, beta, runningMean, runningVar]
        guard all.allSatisfy({ $0.dtype == .float32 }) else {
            let hosts = all.map { hostCopy(of: $0) }
            let r = ReferenceBackend.shared.batchNorm(hosts[0], gamma: hosts[1], beta: hosts[2], runningMean: hosts[3],
                                                      runningVar: hosts[4], epsilon: epsilon, training: training)
            return (deviceCopy(of: r.output), deviceCopy(of: r.mean), deviceCopy(of: r.variance))
        }
        let px = packed(x)!
        let (_, channels, plane) = planes(x.shape)
        let (mean, variance) = training ? batchNormStatistics(px) : (contiguous(runningMean), contiguous(runningVar))
        let out = output(x.shape)
        if out.count > 0 {
            launch("snn_bn_apply", elements: out.count,
                   [arg(px), arg(packed(gamma)), arg(packed(beta)), arg(mean), arg(variance), .float(Float(epsilon)), arg(out),
                    .int64(Int64(out.count)), .int32(Int32(channels)), .int64(Int64(plane))])
        }
        return (out, mean, variance)
    }

    public func batchNormBackward(_ gradOutput: Tensor, input: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor,
                                  epsilon: Double) -> (input: Tensor, gamma: Tensor, beta: Tensor) {
        let all = [gradOutput, input, gamma, mean, variance]
        guard all.allSatisfy({ $0.dtype == .float32 }) else {
            let h = all.map { hostCopy(of: $0) }
            let r = ReferenceBackend.shared.batchNormBackward(h[0], input: h[1], gamma: h[2], mean: h[3], variance: h[4],
                                                              epsilon: epsilon)
            return (deviceCopy(of: r.input), deviceCopy(of: r.gamma), deviceCopy(of: r.beta))
        }
        let (pg, px, pgamma, pmean, pvar) = (packed(gradOutput)!, packed(input)!, packed(gamma)!, packed(mean)!, packed(variance)!)
        let (frames, channels, plane) = planes(input.shape)
        let (gradGamma, gradBeta) = (output([channels]), output([channels]))
        if channels > 0 {
            // Parts of about `reductionChunk` inputs over the whole GPU, as the forward statistics.
            let (span, splits) = channelParts(frames: frames, plane: plane)
            let partials = splits > 1 ? output([channels * splits * 2], .float64) : nil
            launch("snn_bn_backward_sums", blocks: channels * splits,
                   [arg(pg), arg(px), arg(pmean), arg(pvar), .float(Float(epsilon)), arg(gradBeta), arg(gradGamma), arg(partials),
                    .int32(Int32(frames)), .int32(Int32(channels)), .int64(Int64(plane)), .int32(Int32(span)), .int32(Int32(splits))])
            if splits > 1 {
                launch("snn_channel_pair_sums", elements: channels,
                       [arg(partials), arg(gradBeta), arg(gradGamma), .int32(Int32(channels)), .int32(Int32(splits))])
            }
        }
        let gradInput = contiguous(pg)
        inputGradient(px, gradInput, gamma: pgamma, mean: pmean, variance: pvar, epsilon: epsilon, gradGamma: gradGamma,
                      gradBeta: gradBeta, frames: frames, channels: channels, plane: plane)
        return (gradInput, gradGamma, gradBeta)
    }

    /// Batch norm's input gradient in place: `grad ← γ/σ (grad − Σgrad/m − x̂ Σ(grad·x̂)/m)`, with
    /// `x` float32 (`form` 0), or bfloat16 (3) or half (4) as `--amp` keeps it.
    func inputGradient(_ x: Tensor, form: Int32 = 0, _ grad: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                       gradGamma: Tensor, gradBeta: Tensor, frames: Int, channels: Int, plane: Int) {
        guard grad.count > 0 else { return }
        launch("snn_bn_input_gradient", elements: grad.count,
               [arg(x), .int32(form), arg(grad), arg(gamma), arg(mean), arg(variance), .float(Float(epsilon)), arg(gradGamma), arg(gradBeta),
                .float(Float(frames * plane)), .int64(Int64(grad.count)), .int32(Int32(channels)), .int64(Int64(plane))])
    }

    // MARK: Convolution with cuDNN

    /// cuDNN's plan for a convolution of these shapes, or `nil` where cuDNN is not used (not
    /// found or turned off, or sizes beyond its 32-bit ints). Under `--amp` its operands are of
    /// the 16-bit type. Only called with every size positive.
    private func cudnnPlan(_ input: [Int], _ weight: [Int], _ output: [Int], _ p: Conv2dParameters) -> (CUDNN, CUDNN.Plan)? {
        guard usesCUDNN, let dnn, CUDNN.accepts(input: input, weight: weight, output: output) else { return nil }
        let key = CUDNN.Key(input: input, weight: weight, parameters: p, tf32: allowsTF32, type: mixedPrecision?.cudnnType ?? .float)
        do {
            return (dnn, try dnn.plan(key, output: output))
        } catch {
            fail("conv2d (cuDNN)", error)
        }
    }

    /// Runs one direction of a convolution through cuDNN on contiguous float32 operands named as
    /// the forward names them (`x` input, `w` weight, `y` output); the direction's result is
    /// written over its operand. A plan of 16-bit operands (`--amp`) gets the two inputs rounded
    /// to its type and writes its result in that type, widened into the float32 operand, as
    /// PyTorch's autocast does. The first call of a shape and direction times cuDNN's
    /// algorithms with as much workspace as can be had up to ``convolutionWorkspaceBytes``.
    private func convolve(_ direction: CUDNN.Direction, _ dnn: CUDNN, _ plan: CUDNN.Plan, x: Tensor, w: Tensor, y: Tensor) {
        let half = plan.type.halfDType
        let written = direction.written(x: x, w: w, y: y)
        // The operands as cuDNN sees them: the inputs rounded, the result in the 16-bit type.
        let operand = { (t: Tensor) -> Tensor in
            guard let half else { return t }
            return t === written ? self.output(t.shape, half) : self.cast(t, to: half)
        }
        let (cx, cw, cy) = (operand(x), operand(w), operand(y))
        let op = "conv2d \(direction.rawValue) (cuDNN\(half.map { ", \($0)" } ?? ""))"
        run(op) {
            let choice: CUDNN.Choice
            if let chosen = dnn.choice(plan, direction) {
                choice = chosen
            } else {
                let scratch = searchWorkspace(limit: convolutionWorkspaceBytes)
                choice = try dnn.choose(plan, direction, x: address(cx), w: address(cw), y: address(cy),
                                        scratch: scratch.map(address) ?? 0, workspace: scratch?.count ?? 0)
            }
            let scratch = choice.workspaceBytes > 0 ? output([choice.workspaceBytes], .uint8) : nil
            try dnn.run(plan, direction, choice, x: address(cx), w: address(cw), y: address(cy), scratch: scratch.map(address) ?? 0)
        }
        if half != nil {
            copy(direction.written(x: cx, w: cw, y: cy), into: written)   // widened to float32 by the cast kernel
        }
    }

    /// The largest workspace for an algorithm search, from `limit` down by quarters while the
    /// device is short of memory (`nil`: none; the search then keeps to algorithms without one).
    private func searchWorkspace(limit: Int) -> Tensor? {
        var bytes = limit
        while bytes >= 1 << 20 {
            if let scratch = try? allocate([bytes], dtype: .uint8) { return scratch }
            bytes /= 4
        }
        return nil
    }

    // MARK: Convolution as matrix products (with cuBLAS)

    /// How a convolution runs as matrix products over unfolded inputs: images per chunk (the
    /// unfolded chunk `[C·kh·kw, images·oh·ow]` within ``convolutionWorkspaceBytes``), or `nil`
    /// where it runs on the direct kernels (no cuBLAS, grouped convolutions, sizes beyond
    /// cuBLAS's 32-bit ones).
    struct Unfolding {
        let images: Int, channels: Int, outputs: Int, taps: Int, plane: Int, chunk: Int
    }

    private func unfolding(_ input: [Int], _ weight: [Int], _ output: [Int], _ p: Conv2dParameters) -> Unfolding? {
        guard usesCUBLAS, p.groups == 1 else { return nil }
        let taps = input[1] * weight[2] * weight[3], plane = output[2] * output[3]
        let perImage = taps * plane * 4
        guard perImage > 0, taps <= Int(Int32.max), weight[0] <= Int(Int32.max) else { return nil }
        let chunk = max(1, min(input[0], convolutionWorkspaceBytes / perImage))
        guard chunk * plane <= Int(Int32.max) else { return nil }
        return Unfolding(images: input[0], channels: input[1], outputs: weight[0], taps: taps, plane: plane, chunk: chunk)
    }

    /// Calls `body` with each chunk's first image, its image count and its unfolded input.
    private func forEachChunk(_ x: Tensor, _ plan: Unfolding, _ g: KernelArgument, _ body: (Int, Int, Tensor) -> Void) {
        for first in stride(from: 0, to: plan.images, by: plan.chunk) {
            let images = min(plan.chunk, plan.images - first)
            let col = output([plan.taps, images * plan.plane])
            launch("snn_im2col", elements: col.count, [arg(x), arg(col), g, .int32(Int32(first)), .int32(Int32(images))])
            body(first, images, col)
        }
    }

    /// `[images, O, plane]` of `y` from image `first` on, viewed as `[O, images, plane]`.
    private func channelsFirst(_ y: Tensor, first: Int, images: Int, _ plan: Unfolding) -> Tensor {
        Tensor(storage: y.storage, shape: [plan.outputs, images, plan.plane], strides: [plan.plane, plan.outputs * plan.plane, 1],
               offset: y.offset + first * plan.outputs * plan.plane, dtype: .float32, device: device)
    }

    /// `y = W · col` per chunk, written through the `[O, images, plane]` view of its images.
    private func unfoldedForward(_ x: Tensor, _ w: Tensor, into y: Tensor, _ plan: Unfolding, _ g: KernelArgument) {
        forEachChunk(x, plan, g) { first, images, col in
            let product = output([plan.outputs, images * plan.plane])
            multiply(w, col, into: product, m: plan.outputs, n: images * plan.plane, k: plan.taps)
            copy(product.reshaped([plan.outputs, images, plan.plane]), into: channelsFirst(y, first: first, images: images, plan))
        }
    }

    /// `gcol = Wᵀ · G` per chunk, folded back onto the input by `snn_col2im`.
    private func unfoldedBackwardData(_ gy: Tensor, _ w: Tensor, into gx: Tensor, _ plan: Unfolding, _ g: KernelArgument) {
        for first in stride(from: 0, to: plan.images, by: plan.chunk) {
            let images = min(plan.chunk, plan.images - first)
            let gradient = contiguous(channelsFirst(gy, first: first, images: images, plan))
            let gcol = output([plan.taps, images * plan.plane])
            multiply(w, gradient, into: gcol, m: plan.taps, n: images * plan.plane, k: plan.outputs, transposeA: true)
            launch("snn_col2im", elements: images * (gx.count / plan.images),
                   [arg(gcol), arg(gx), g, .int32(Int32(first)), .int32(Int32(images))])
        }
    }

    /// `gW = Σ_chunks G · colᵀ`.
    private func unfoldedBackwardWeight(_ gy: Tensor, _ x: Tensor, into gw: Tensor, _ plan: Unfolding, _ g: KernelArgument) {
        var accumulate = false
        forEachChunk(x, plan, g) { first, images, col in
            let gradient = contiguous(channelsFirst(gy, first: first, images: images, plan))
            multiply(gradient, col, into: gw, m: plan.outputs, n: plan.taps, k: images * plan.plane, transposeB: true,
                     accumulate: accumulate)
            accumulate = true
        }
    }

    /// cuBLAS's product of contiguous device tensors (see ``CUBLAS/multiply``).
    private func multiply(_ a: Tensor, _ b: Tensor, into c: Tensor, m: Int, n: Int, k: Int, transposeA: Bool = false,
                          transposeB: Bool = false, accumulate: Bool = false) {
        guard let blas else { preconditionFailure("[CUDA] a product through cuBLAS without cuBLAS") }
        if let half = mixedPrecision {
            let (ha, hb) = (cast(a, to: half.dtype), cast(b, to: half.dtype))
            run("matmul (cuBLAS, \(half.rawValue))") {
                try blas.multiply(address(ha), address(hb), of: half.cublasType, into: address(c), m: m, n: n, k: k,
                                  transposeA: transposeA, transposeB: transposeB, accumulate: accumulate)
            }
            return
        }
        run("matmul (cuBLAS)") {
            try blas.multiply(address(a), address(b), into: address(c), m: m, n: n, k: k, transposeA: transposeA,
                              transposeB: transposeB, accumulate: accumulate)
        }
    }
}

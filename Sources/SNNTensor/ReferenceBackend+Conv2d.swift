/// Direct-loop convolution: forward, backward-data and backward-weight on the reference backend.
extension ReferenceBackend {
    /// Visits every (n, o, oh, ow, c, kh, kw) term of the convolution sum that lands inside
    /// the input, with flat indices into x, w and y.
    private func forEachTerm(_ xs: [Int], _ ws: [Int], _ p: Conv2dParameters, _ body: (Int, Int, Int) -> Void) {
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3])
        let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
        let ho = Conv2dParameters.outputSize(h, kernel: kh, stride: p.strideH, padding: p.padH, dilation: p.dilationH)
        let wo = Conv2dParameters.outputSize(w, kernel: kw, stride: p.strideW, padding: p.padW, dilation: p.dilationW)
        let og = o / p.groups
        for b in 0..<n {
            for oc in 0..<o {
                let g = oc / og
                for y in 0..<ho {
                    for x in 0..<wo {
                        let yi = ((b * o + oc) * ho + y) * wo + x
                        for ci in 0..<cg {
                            let ic = g * cg + ci
                            for i in 0..<kh {
                                let ih = y * p.strideH - p.padH + i * p.dilationH
                                if ih < 0 || ih >= h { continue }
                                for j in 0..<kw {
                                    let iw = x * p.strideW - p.padW + j * p.dilationW
                                    if iw < 0 || iw >= w { continue }
                                    body(((b * c + ic) * h + ih) * w + iw, ((oc * cg + ci) * kh + i) * kw + j, yi)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private func outputShape(_ xs: [Int], _ ws: [Int], _ p: Conv2dParameters) -> [Int] {
        [xs[0], ws[0],
         Conv2dParameters.outputSize(xs[2], kernel: ws[2], stride: p.strideH, padding: p.padH, dilation: p.dilationH),
         Conv2dParameters.outputSize(xs[3], kernel: ws[3], stride: p.strideW, padding: p.padW, dilation: p.dilationW)]
    }

    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters) -> Tensor {
        let vx = read(x), vw = read(weight)
        let shape = outputShape(x.shape, weight.shape, p)
        var y = [Double](repeating: 0, count: ShapeUtil.count(shape))
        forEachTerm(x.shape, weight.shape, p) { xi, wi, yi in y[yi] += vx[xi] * vw[wi] }
        if let bias {
            let vb = read(bias), plane = shape[2] * shape[3]
            for i in 0..<y.count { y[i] += vb[(i / plane) % shape[1]] }
        }
        return make(y, shape, x.dtype, x.device)
    }

    public func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters) -> Tensor {
        let gy = read(gradOutput), vw = read(weight)
        var gx = [Double](repeating: 0, count: ShapeUtil.count(inputShape))
        forEachTerm(inputShape, weight.shape, p) { xi, wi, yi in gx[xi] += gy[yi] * vw[wi] }
        return make(gx, inputShape, gradOutput.dtype, gradOutput.device)
    }

    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                                     _ p: Conv2dParameters) -> (weight: Tensor, bias: Tensor?) {
        let gy = read(gradOutput), vx = read(input)
        var gw = [Double](repeating: 0, count: ShapeUtil.count(weightShape))
        forEachTerm(input.shape, weightShape, p) { xi, wi, yi in gw[wi] += gy[yi] * vx[xi] }
        var gb: Tensor?
        if withBias {
            let s = gradOutput.shape, plane = s[2] * s[3]
            var b = [Double](repeating: 0, count: s[1])
            for i in 0..<gy.count { b[(i / plane) % s[1]] += gy[i] }
            gb = make(b, [s[1]], gradOutput.dtype, gradOutput.device)
        }
        return (make(gw, weightShape, gradOutput.dtype, gradOutput.device), gb)
    }
}

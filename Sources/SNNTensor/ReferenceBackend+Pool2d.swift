/// Direct-loop pooling on the reference backend.
extension ReferenceBackend {
    /// Visits each output element with the flat input indices of its window (row-major; padded
    /// positions are skipped) and the window size counting padding.
    private func forEachWindow(_ xs: [Int], _ p: Pool2dParameters, _ body: (Int, [Int], Int) -> Void) -> [Int] {
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3])
        let ho = (h + 2 * p.padH - p.kernelH) / p.strideH + 1
        let wo = (w + 2 * p.padW - p.kernelW) / p.strideW + 1
        for plane in 0..<(n * c) {
            for y in 0..<ho {
                for x in 0..<wo {
                    var window: [Int] = []
                    for i in 0..<p.kernelH {
                        let ih = y * p.strideH - p.padH + i
                        guard ih >= 0 && ih < h else { continue }
                        for j in 0..<p.kernelW {
                            let iw = x * p.strideW - p.padW + j
                            guard iw >= 0 && iw < w else { continue }
                            window.append((plane * h + ih) * w + iw)
                        }
                    }
                    // PyTorch clips the divisor window at the padded border, not at the kernel.
                    let hEnd = Swift.min(y * p.strideH - p.padH + p.kernelH, h + p.padH)
                    let wEnd = Swift.min(x * p.strideW - p.padW + p.kernelW, w + p.padW)
                    let divisor = (hEnd - (y * p.strideH - p.padH)) * (wEnd - (x * p.strideW - p.padW))
                    body((plane * ho + y) * wo + x, window, divisor)
                }
            }
        }
        return [n, c, ho, wo]
    }

    public func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor {
        let v = read(x)
        var out: [Double] = []
        let shape = forEachWindow(x.shape, p) { _, window, divisor in
            switch p.kind {
            case .max: out.append(window.map { v[$0] }.max() ?? -.infinity)
            case .average: out.append(window.map { v[$0] }.reduce(0, +) / Double(divisor))
            }
        }
        return make(out, shape, x.dtype, x.device)
    }

    public func pool2dBackward(_ gradOutput: Tensor, inputShape: [Int], input: Tensor?, _ p: Pool2dParameters) -> Tensor {
        precondition(p.kind == .average || input?.shape == inputShape, "[pool2d] expected the forward input of shape \(inputShape) for max pooling's gradient")
        let v = input.map(read) ?? [], g = read(gradOutput)
        var gx = [Double](repeating: 0, count: ShapeUtil.count(inputShape))
        _ = forEachWindow(inputShape, p) { o, window, divisor in
            switch p.kind {
            case .max:
                // The first maximum in row-major window order takes the gradient.
                var best = window[0]
                for i in window where v[i] > v[best] { best = i }
                gx[best] += g[o]
            case .average:
                for i in window { gx[i] += g[o] / Double(divisor) }
            }
        }
        return make(gx, inputShape, gradOutput.dtype, gradOutput.device)
    }
}

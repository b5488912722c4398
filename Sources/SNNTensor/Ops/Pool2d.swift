/// 2-D max and average pooling over `[N, C, H, W]`.

/// Max pooling; the gradient goes to the first maximum of each window (row-major order).
public func maxPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) -> Tensor {
    pool2d(x, Pool2dParameters(.max, kernel: kernel, stride: stride, padding: padding))
}

/// Average pooling; padded zeros count in the divisor (PyTorch's default).
public func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) -> Tensor {
    pool2d(x, Pool2dParameters(.average, kernel: kernel, stride: stride, padding: padding))
}

/// Average pooling to 1×1 (`[N, C, H, W] -> [N, C, 1, 1]`).
public func adaptiveAvgPool2dTo1(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "[adaptiveAvgPool2d] expected a [N, C, H, W] input, got \(ShapeUtil.describe(x.shape))")
    return x.mean(axes: [2, 3], keepDims: true)
}

/// Pooling with explicit parameters.
public func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor {
    precondition(x.rank == 4, "[pool2d] expected a [N, C, H, W] input, got \(ShapeUtil.describe(x.shape))")
    let ho = (x.shape[2] + 2 * p.padH - p.kernelH) / p.strideH + 1
    let wo = (x.shape[3] + 2 * p.padW - p.kernelW) / p.strideW + 1
    precondition(ho > 0 && wo > 0, "[pool2d] expected a window that fits the padded input, got kernel (\(p.kernelH), \(p.kernelW)) for \(ShapeUtil.describe(x.shape))")
    let cx = x.contiguousData()
    let out = x.backend.pool2d(cx, p), value = out.detached()  // detached: no cycle through the rule
    return record("pool2d", out, [x]) { g in
        [x.backend.pool2dBackward(g.contiguousData(), input: cx, output: value, p)]
    }
}

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
    let backend = x.backend
    let out = backend.pool2d(cx, p)
    // Average pooling's gradient needs only the input's shape; max pooling's needs the input
    // (as bytes when it holds spikes).
    let saved = p.kind == .max ? SavedActivation(cx) : nil
    let inputShape = cx.shape
    return spikeQuantum(record("pool2d", out, [x]) { g in
        [backend.pool2dBackward(g.contiguousData(), inputShape: inputShape, input: saved?.value, p)]
    }, pooled: x, p)
}

/// Marks a pooling output as spikes when its input was: max pooling keeps the quantum, average
/// pooling divides it by the window size while that stays a power of two (so the codes stay
/// exact in float32).
private func spikeQuantum(_ out: Tensor, pooled x: Tensor, _ p: Pool2dParameters) -> Tensor {
    guard let q = x.spikeQuantum else { return out }
    switch p.kind {
    case .max: out.spikeQuantum = q
    case .average:
        let window = p.kernelH * p.kernelW
        if window & (window - 1) == 0 && Double(window) / q <= 255 { out.spikeQuantum = q / Double(window) }
    }
    return out
}

/// Matrix products and the linear layer's function.

/// `[M, K] · [K, N] -> [M, N]`, or batched `[B, M, K] · [B, K, N] -> [B, M, N]`.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    if a.rank == 3 && b.rank == 3 {
        precondition(a.shape[0] == b.shape[0], "[matmul] expected equal batch sizes, got \(ShapeUtil.describe(a.shape)) and \(ShapeUtil.describe(b.shape))")
        return stack((0..<a.shape[0]).map { matmul(a.selected(axis: 0, $0), b.selected(axis: 0, $0)) })
    }
    return matmul2d(a, b, transposeA: false, transposeB: false)
}

/// `op(A) · op(B)` for 2-D tensors, with the transposes folded into the GEMM call.
func matmul2d(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
    precondition(a.rank == 2 && b.rank == 2, "[matmul] expected 2-D operands, got \(ShapeUtil.describe(a.shape)) and \(ShapeUtil.describe(b.shape))")
    precondition(a.device == b.device && a.dtype == b.dtype, "[matmul] expected operands of one device and dtype, got \(a.device)/\(a.dtype) and \(b.device)/\(b.dtype)")
    let k1 = transposeA ? a.shape[0] : a.shape[1]
    let k2 = transposeB ? b.shape[1] : b.shape[0]
    precondition(k1 == k2, "[matmul] expected inner dimensions to agree, got \(ShapeUtil.describe(a.shape))\(transposeA ? "ᵀ" : "") and \(ShapeUtil.describe(b.shape))\(transposeB ? "ᵀ" : "")")
    let (ca, cb) = (a.contiguousData(), b.contiguousData())
    let out = a.backend.matmul(ca, cb, transposeA: transposeA, transposeB: transposeB)
    // dA needs B and dB needs A: save only what a requested gradient uses.
    let (savedB, savedA) = (a.requiresGrad ? cb : nil, b.requiresGrad ? ca : nil)
    return record("matmul", out, [a, b]) { g in
        // C = op(A) op(B): dA = g op(B)ᵀ (transposed back if A was), dB likewise.
        let da = savedB.map { cb in
            transposeA ? matmul2d(cb, g, transposeA: transposeB, transposeB: true)
                       : matmul2d(g, cb, transposeA: false, transposeB: !transposeB)
        }
        let db = savedA.map { ca in
            transposeB ? matmul2d(g, ca, transposeA: true, transposeB: transposeA)
                       : matmul2d(ca, g, transposeA: !transposeA, transposeB: false)
        }
        return [da, db]
    }
}

/// `x · Wᵀ + b`: `[..., in] × [out, in] (+ [out]) -> [..., out]`, as PyTorch's `Linear`.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    precondition(weight.rank == 2, "[linear] expected a [out, in] weight, got \(ShapeUtil.describe(weight.shape))")
    precondition(x.shape.last == weight.shape[1], "[linear] expected input features \(weight.shape[1]), got \(ShapeUtil.describe(x.shape))")
    let lead = Array(x.shape.dropLast())
    var y = matmul2d(x.reshaped([-1, weight.shape[1]]), weight, transposeA: false, transposeB: true)
    if let bias {
        precondition(bias.shape == [weight.shape[0]], "[linear] expected a bias of shape [\(weight.shape[0])], got \(ShapeUtil.describe(bias.shape))")
        y = y + bias
    }
    return y.reshaped(lead + [weight.shape[0]])
}

import Foundation

/// The weight penalty of temporal regularisation training (TRT), summed over all timesteps,
/// as one fused op.
///
/// `Σ_{t=0}^{T-1} R_t` with `R_t = Σ_W Σ_elements λ W² / (1 + c_t(|W| + ε))` and
/// `c_t = e^{d t} - 1` (TRT-SPEC.md §3; "Enhancing Generalization of Spiking Neural Networks
/// Through Temporal Regularization", arXiv 2506.19256). `R_0` is a plain L2 term of strength
/// λ; later timesteps are weaker, and weights with a larger `|W|` decay more slowly. The
/// gradient runs through `|W|` too:
/// `dR_t/dW = λ [2W (1 + c_t(|W|+ε)) - W² c_t sign(W)] / (1 + c_t(|W|+ε))²`, `sign(0) = 0`.
///
/// The value and the gradient of every weight come from one backend pass over the weights
/// (the inner loop runs over the timesteps), and the tape records a single node whose rule
/// scales the saved gradients by the output gradient: the composite formulation
/// (``trtRegularizationComposite(_:lambda:decay:steps:epsilon:)``) records about six
/// weight-sized tensors per weight and timestep.
///
/// - Parameters:
///   - weights: the regularised tensors (any shapes), of one floating-point dtype on one device.
///   - lambda: the strength `λ` (`--loss_lambda`).
///   - decay: `d` (`--loss_decay`).
///   - steps: the number of timesteps `T`, at least 1.
///   - epsilon: `ε` (`--loss_epsilon`).
/// - Returns: a 0-d tensor of the weights' dtype on their device. The TRT loss divides it by `T`.
public func trtRegularization(_ weights: [Tensor], lambda: Double, decay: Double, steps: Int, epsilon: Double) -> Tensor {
    validateTRTArguments(weights, lambda: lambda, decay: decay, steps: steps, epsilon: epsilon, op: "trtRegularization")
    let coefficients = trtCoefficients(decay: decay, steps: steps)
    let (value, gradients) = weights[0].backend.trtRegularizer(
        weights, lambda: lambda, coefficients: coefficients, epsilon: epsilon)
    // The rule captures the gradients and flags only (neither `value` nor the weights), so no
    // cycle keeps the tape alive and no tensor beyond the gradients is held.
    let needed = weights.map(\.requiresGrad)
    return record("trtRegularization", value, weights) { g in
        zip(needed, gradients).map { need, gradient in need ? g * gradient : nil }
    }
}

/// The same penalty as ``trtRegularization(_:lambda:decay:steps:epsilon:)`` built from
/// elementwise ops and sums, timestep by timestep: the composite reference the fused op is
/// tested against (it records about six weight-sized tensors per weight and timestep).
///
/// - Parameters: as for ``trtRegularization(_:lambda:decay:steps:epsilon:)``.
/// - Returns: `Σ_t R_t`, a 0-d tensor.
public func trtRegularizationComposite(_ weights: [Tensor], lambda: Double, decay: Double, steps: Int,
                                       epsilon: Double) -> Tensor {
    validateTRTArguments(weights, lambda: lambda, decay: decay, steps: steps, epsilon: epsilon,
                         op: "trtRegularizationComposite")
    var total = weights[0].like(0)
    for c in trtCoefficients(decay: decay, steps: steps) {
        let penalties = weights.map { w in (w.square() / ((w.abs() + epsilon) * c + 1)).sum() }
        total = total + penalties.reduce(weights[0].like(0), +) * lambda
    }
    return total
}

/// `c_t = e^{d t} - 1` for `t = 0..<steps` (written as in the reference, not with `expm1`, so
/// the fused op and the composite use the very same constants).
private func trtCoefficients(decay: Double, steps: Int) -> [Double] {
    (0..<steps).map { Foundation.exp(decay * Double($0)) - 1 }
}

private func validateTRTArguments(_ weights: [Tensor], lambda: Double, decay: Double, steps: Int, epsilon: Double,
                                  op: String) {
    precondition(!weights.isEmpty, "[\(op)] expected at least one weight, got none")
    let first = weights[0]
    precondition(first.dtype.isFloatingPoint, "[\(op)] expected floating-point weights, got \(first.dtype)")
    for (i, w) in weights.enumerated() {
        precondition(w.dtype == first.dtype, "[\(op)] expected weights of one dtype \(first.dtype), got \(w.dtype) at index \(i)")
        precondition(w.device == first.device,
                     "[\(op)] expected weights on one device \(first.device), got \(w.device) at index \(i)")
    }
    precondition(steps >= 1, "[\(op)] expected steps >= 1, got \(steps)")
    precondition(lambda.isFinite, "[\(op)] expected a finite lambda, got \(lambda)")
    precondition(decay.isFinite, "[\(op)] expected a finite decay, got \(decay)")
    precondition(epsilon.isFinite, "[\(op)] expected a finite epsilon, got \(epsilon)")
}

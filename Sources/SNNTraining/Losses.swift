import Foundation
import SNNTensor

/// The criterion applied to outputs: cross-entropy on logits or MSE against one-hot targets.
public enum Criterion: String, Sendable, Codable, CaseIterable {
    case crossEntropy = "CE"
    case mse = "MSE"

    /// `criterion(o, y)` for outputs `[N, K]` and labels `[N]`.
    public func callAsFunction(_ outputs: Tensor, _ labels: Tensor) -> Tensor {
        switch self {
        case .crossEntropy: return SNNTensor.crossEntropy(logits: outputs, labels: labels)
        case .mse: return SNNTensor.mse(outputs, oneHot(labels.to(outputs.device), classes: outputs.shape[1], dtype: outputs.dtype))
        }
    }
}

/// The training objectives of the paper, on time-major outputs `o` of shape `[T, N, K]`.
///
/// See TRT-SPEC.md §3.
public enum TrainingLoss: Sendable, Codable, Hashable {
    /// Standard direct training: `criterion(mean_t o_t, y)`.
    case sdt(Criterion)
    /// Temporal efficient training (Deng et al. 2022): `(1-λ)·(1/T)Σ_t CE(o_t, y) + λ·MSE(o, φ)`.
    /// `criterion` replaces CE per timestep (`nil`: CE); the reference's TET_Loss applies
    /// train.py's `--criterion`, so `--trtloss 0 --tetloss 1 --criterion MSE` uses MSE against
    /// one-hot targets.
    case tet(lambda: Double, means: Double, criterion: Criterion? = nil)
    /// Temporal regularisation training:
    /// `(1/T) Σ_t [(1-η) CE(o_t, y) + η MSE(o_t, Y) + R_t]`,
    /// `R_t = Σ_W Σ λ W² / (1 + (e^{d t} - 1)(|W| + ε))` over the weights `P` (every parameter
    /// whose name does not contain "bias": conv and linear weights and BN γ).
    case trt(lambda: Double, decay: Double, epsilon: Double, eta: Double)

    /// The run-directory name of the method (`SDT`, `TET`, `TRT`).
    public var methodName: String {
        switch self {
        case .sdt: return "SDT"
        case .tet: return "TET"
        case .trt: return "TRT"
        }
    }

    /// The loss of one batch.
    ///
    /// - Parameters:
    ///   - outputs: `[T, N, K]`.
    ///   - labels: `[N]` integers.
    ///   - parameters: named trainable parameters; TRT regularises those without "bias" in the name.
    public func callAsFunction(_ outputs: Tensor, labels: Tensor, parameters: [(key: String, value: Tensor)]) -> Tensor {
        precondition(outputs.rank == 3, "[loss] expected [T, N, K] outputs, got \(ShapeUtil.describe(outputs.shape))")
        let steps = outputs.shape[0]
        switch self {
        case .sdt(let criterion):
            return criterion(outputs.mean(axes: [0]), labels)
        case let .tet(lambda, means, criterion):
            let perStep = criterion ?? .crossEntropy
            let ce = (0..<steps).map { perStep(outputs.selected(axis: 0, $0), labels) }
                .reduce(outputs.like(0), +) / Double(steps)
            let reg = mse(outputs, outputs.like(means))
            return (1 - lambda) * ce + lambda * reg
        case let .trt(lambda, decay, epsilon, eta):
            let target = oneHot(labels.to(outputs.device), classes: outputs.shape[2], dtype: outputs.dtype)
            var total = outputs.like(0)
            for t in 0..<steps {
                let o = outputs.selected(axis: 0, t)
                total = total + (1 - eta) * crossEntropy(logits: o, labels: labels) + eta * mse(o, target)
            }
            // Σ_t R_t in one fused op: one pass over the weights and one tape node.
            let weights = parameters.filter { !$0.key.contains("bias") }.map(\.value)
            if !weights.isEmpty {
                total = total + trtRegularization(weights, lambda: lambda, decay: decay, steps: steps, epsilon: epsilon)
            }
            return total / Double(steps)
        }
    }
}

extension TrainingLoss {
    /// The training objective of one batch: the loss plus the `--l1`/`--l2` penalties on all
    /// parameters, which go with SDT only. The reference's train.py adds `l2 Σp²` to the SDT
    /// criterion and nothing to TET or TRT (whose regulariser is their own); `--l1` is ours and
    /// follows `--l2`.
    public func total(_ outputs: Tensor, labels: Tensor, parameters: [(key: String, value: Tensor)], l1: Double, l2: Double) -> Tensor {
        let loss = self(outputs, labels: labels, parameters: parameters)
        guard case .sdt = self, let penalty = parameterPenalty(parameters.map(\.value), l1: l1, l2: l2) else { return loss }
        return loss + penalty
    }
}

/// Penalties on all parameters added to any loss: `l1 Σ|p| + l2 Σp²`.
public func parameterPenalty(_ parameters: [Tensor], l1: Double, l2: Double) -> Tensor? {
    guard (l1 != 0 || l2 != 0), let first = parameters.first else { return nil }
    var total = first.like(0)
    for p in parameters {
        if l1 != 0 { total = total + p.abs().sum() * l1 }
        if l2 != 0 { total = total + p.square().sum() * l2 }
    }
    return total
}

extension TrainingLoss {
    /// The criterion `Trainer.evaluate()` applies to the time-averaged test output, as the
    /// reference's test loop applies train.py's `--criterion`: SDT's criterion, TET's per-step
    /// criterion (CE when `nil`), CE for TRT.
    public var evaluationCriterion: Criterion {
        switch self {
        case .sdt(let criterion): return criterion
        case .tet(_, _, let criterion): return criterion ?? .crossEntropy
        case .trt: return .crossEntropy
        }
    }
}

import Foundation
import SNNTensor

/// The optimisers of the reference (PyTorch's update rules), keyed by parameter name.
///
/// An optimiser keeps per-parameter state (moments, momentum buffers) by name, so its state
/// is checkpointed as named tensors; ``step(_:gradients:)`` updates parameters in place.
public final class Optimizer {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case sgd = "SGD", adam = "Adam", adamW = "AdamW", rmsprop = "RMSprop"
    }

    public let kind: Kind
    /// The current learning rate (the schedule sets it each epoch).
    public var learningRate: Double
    public let weightDecay: Double
    /// Updates taken so far (Adam's bias correction uses it).
    public private(set) var steps = 0
    /// Per-parameter state tensors, keyed `name.exp_avg`, `name.exp_avg_sq`, `name.momentum_buffer`, `name.square_avg`.
    public private(set) var state: [String: Tensor] = [:]

    // PyTorch's defaults.
    let beta1 = 0.9, beta2 = 0.999, adamEpsilon = 1e-8
    let momentum = 0.9
    let rmsAlpha = 0.99, rmsEpsilon = 1e-8

    public init(_ kind: Kind, learningRate: Double, weightDecay: Double = 0) {
        precondition(learningRate >= 0 && weightDecay >= 0, "[Optimizer] expected non-negative learning rate and weight decay")
        (self.kind, self.learningRate, self.weightDecay) = (kind, learningRate, weightDecay)
    }

    /// Applies one update to every parameter that has a gradient.
    public func step(_ parameters: [(key: String, value: Tensor)], gradients: [String: Tensor]) {
        steps += 1
        withoutGradients {
            for (name, p) in parameters {
                guard let g0 = gradients[name] else { continue }
                update(name, p, g0)
            }
        }
    }

    private func buffer(_ key: String, like p: Tensor) -> Tensor {
        if let b = state[key] { return b }
        let b = Tensor.zeros(p.shape, dtype: p.dtype, device: p.device)
        state[key] = b
        return b
    }

    private func update(_ name: String, _ p: Tensor, _ g0: Tensor) {
        let lr = learningRate
        var g = g0
        if weightDecay != 0 && kind != .adamW { g = g + p * weightDecay }
        switch kind {
        case .sgd:
            let key = "\(name).momentum_buffer"
            let buf = state[key].map { $0 * momentum + g } ?? g
            state[key] = buf.contiguous()
            p.assign(p - buf * lr)
        case .adam, .adamW:
            if kind == .adamW && weightDecay != 0 { p.assign(p * (1 - lr * weightDecay)) }
            let m = buffer("\(name).exp_avg", like: p) * beta1 + g * (1 - beta1)
            let v = buffer("\(name).exp_avg_sq", like: p) * beta2 + g.square() * (1 - beta2)
            state["\(name).exp_avg"] = m
            state["\(name).exp_avg_sq"] = v
            let c1 = 1 - Foundation.pow(beta1, Double(steps)), c2 = 1 - Foundation.pow(beta2, Double(steps))
            // PyTorch: p -= lr/c1 · m / (√v / √c2 + ε)
            p.assign(p - m * (lr / c1) / (v.sqrt() / c2.squareRoot() + adamEpsilon))
        case .rmsprop:
            let v = buffer("\(name).square_avg", like: p) * rmsAlpha + g.square() * (1 - rmsAlpha)
            state["\(name).square_avg"] = v
            p.assign(p - g * lr / (v.sqrt() + rmsEpsilon))
        }
    }

    /// Restores state saved from ``state`` and ``steps``.
    public func restore(state: [String: Tensor], steps: Int) {
        self.state = state
        self.steps = steps
    }
}

/// Cosine annealing from the base rate to 0 over `epochs`, stepped once per epoch
/// (PyTorch's `CosineAnnealingLR(T_max=epochs)`); a constant rate when disabled.
public struct CosineSchedule: Sendable, Codable {
    public let baseRate: Double
    public let epochs: Int
    public let enabled: Bool

    public init(baseRate: Double, epochs: Int, enabled: Bool = true) {
        (self.baseRate, self.epochs, self.enabled) = (baseRate, max(epochs, 1), enabled)
    }

    /// The learning rate during epoch `epoch` (0-based).
    public func rate(epoch: Int) -> Double {
        guard enabled else { return baseRate }
        return baseRate * (1 + Foundation.cos(Double.pi * Double(epoch) / Double(epochs))) / 2
    }
}

/// Scales gradients so their global L2 norm is at most `maxNorm`; returns the norm before.
@discardableResult
public func clipGradients(_ gradients: inout [String: Tensor], maxNorm: Double) -> Double {
    let norm = withoutGradients { gradients.values.map { $0.square().sum().item() }.reduce(0, +).squareRoot() }
    if norm > maxNorm && norm > 0 {
        let scale = maxNorm / (norm + 1e-6)
        withoutGradients { for (k, g) in gradients { gradients[k] = g * scale } }
    }
    return norm
}

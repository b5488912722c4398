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
    /// Per-parameter state tensors, keyed `name.exp_avg`, `name.exp_avg_sq`, `name.momentum_buffer`, `name.square_avg`;
    /// from the first step on, views into one flat buffer per kind in parameter order.
    public private(set) var state: [String: Tensor] = [:]
    /// The flat buffer of each state kind (`exp_avg`, ...), once allocated.
    public private(set) var flatState: [String: Tensor] = [:]

    // PyTorch's defaults (public for backends that fuse the update).
    public let beta1 = 0.9, beta2 = 0.999, adamEpsilon = 1e-8
    public let momentum = 0.9
    public let rmsAlpha = 0.99, rmsEpsilon = 1e-8

    public init(_ kind: Kind, learningRate: Double, weightDecay: Double = 0) {
        precondition(learningRate >= 0 && weightDecay >= 0, "[Optimizer] expected non-negative learning rate and weight decay")
        (self.kind, self.learningRate, self.weightDecay) = (kind, learningRate, weightDecay)
    }

    /// Applies one update to every parameter that has a gradient.
    public func step(_ parameters: [(key: String, value: Tensor)], gradients: [String: Tensor]) {
        steps += 1
        withoutGradients {
            allocateState(for: parameters)
            for (name, p) in parameters {
                guard let g0 = gradients[name] else { continue }
                update(name, p, g0)
            }
        }
    }

    /// Applies one update to every parameter at once over flat buffers: `parameters` is the
    /// flat buffer ``Tensor/flattenParameters(_:)`` made of `named` (in that order) and
    /// `gradients` the matching flat gradient buffer (``GradientBuffer/flat``). The arithmetic
    /// per element is that of ``step(_:gradients:)``.
    public func step(flat parameters: Tensor, gradients: Tensor, named: [(key: String, value: Tensor)]) {
        precondition(parameters.shape == gradients.shape && parameters.count == named.map(\.value.count).reduce(0, +),
                     "[Optimizer] expected flat parameter and gradient buffers of the parameters' total size")
        steps += 1
        withoutGradients {
            allocateState(for: named)
            if let fused = parameters.backend as? any FusedOptimizerBackend, fused.fusesOptimizerSteps,
               fusedStep(fused, parameters, gradients) { return }
            update(parameters, gradients) { kind in
                guard let b = flatState[kind] else { preconditionFailure("[Optimizer] no flat \(kind) state") }
                return b
            }
        }
    }

    /// The step as one fused update on a backend that has it (contiguous float32 buffers);
    /// false when it does not apply.
    private func fusedStep(_ backend: any FusedOptimizerBackend, _ p: Tensor, _ g: Tensor) -> Bool {
        let buffers = stateKinds.compactMap { flatState[$0] }
        guard ([p, g] + buffers).allSatisfy({ $0.dtype == .float32 && $0.isContiguous && $0.device == p.device }) else { return false }
        let rule: FusedOptimizerRule
        switch kind {
        case .sgd: rule = .sgd(learningRate: learningRate, weightDecay: weightDecay, momentum: momentum)
        case .adam, .adamW:
            rule = .adam(learningRate: learningRate, weightDecay: weightDecay, beta1: beta1, beta2: beta2, epsilon: adamEpsilon,
                         c1: 1 - Foundation.pow(beta1, Double(steps)), c2: 1 - Foundation.pow(beta2, Double(steps)),
                         decoupled: kind == .adamW)
        case .rmsprop: rule = .rmsprop(learningRate: learningRate, weightDecay: weightDecay, alpha: rmsAlpha, epsilon: rmsEpsilon)
        }
        backend.optimizerStep(rule, parameters: p, gradients: g, state1: buffers[0], state2: buffers.count > 1 ? buffers[1] : nil)
        return true
    }

    /// The state kinds this optimiser keeps per parameter.
    private var stateKinds: [String] {
        switch kind {
        case .sgd: return ["momentum_buffer"]
        case .adam, .adamW: return ["exp_avg", "exp_avg_sq"]
        case .rmsprop: return ["square_avg"]
        }
    }

    /// Makes every state kind one flat, zero-initialised buffer in parameter order with a view
    /// per parameter (restored state is copied in), once.
    private func allocateState(for parameters: [(key: String, value: Tensor)]) {
        guard flatState.isEmpty, !parameters.isEmpty else { return }
        for kind in stateKinds {
            let (flat, views) = Tensor.flatZeros(like: parameters.map(\.value))
            for ((name, _), view) in zip(parameters, views) {
                if let restored = state["\(name).\(kind)"] { view.assign(restored) }
                state["\(name).\(kind)"] = view
            }
            flatState[kind] = flat
        }
    }

    private func update(_ name: String, _ p: Tensor, _ g0: Tensor) {
        update(p, g0) { kind in
            guard let b = state["\(name).\(kind)"] else { preconditionFailure("[Optimizer] no \(kind) state for \(name)") }
            return b
        }
    }

    /// PyTorch's update of `p` from `g0` with the state tensors `buffer(kind)` (one parameter,
    /// or all of them as flat buffers).
    private func update(_ p: Tensor, _ g0: Tensor, buffer: (String) -> Tensor) {
        let lr = learningRate
        var g = g0
        if weightDecay != 0 && kind != .adamW { g = g + p * weightDecay }
        switch kind {
        case .sgd:
            // A zero buffer makes the first step's buffer g exactly, as PyTorch's clone.
            let buf = buffer("momentum_buffer")
            buf.assign(buf * momentum + g)
            p.assign(p - buf * lr)
        case .adam, .adamW:
            if kind == .adamW && weightDecay != 0 { p.assign(p * (1 - lr * weightDecay)) }
            let (m, v) = (buffer("exp_avg"), buffer("exp_avg_sq"))
            m.assign(m * beta1 + g * (1 - beta1))
            v.assign(v * beta2 + g.square() * (1 - beta2))
            let c1 = 1 - Foundation.pow(beta1, Double(steps)), c2 = 1 - Foundation.pow(beta2, Double(steps))
            // PyTorch: p -= lr/c1 · m / (√v / √c2 + ε)
            p.assign(p - m * (lr / c1) / (v.sqrt() / c2.squareRoot() + adamEpsilon))
        case .rmsprop:
            let v = buffer("square_avg")
            v.assign(v * rmsAlpha + g.square() * (1 - rmsAlpha))
            p.assign(p - g * lr / (v.sqrt() + rmsEpsilon))
        }
    }

    /// Restores state saved from ``state`` and ``steps``.
    public func restore(state: [String: Tensor], steps: Int) {
        if flatState.isEmpty {
            self.state = state
        } else {
            for (k, v) in state { self.state[k]?.assign(v) }
        }
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
///
/// The squares are summed parameter by parameter in the sorted order of their names, so the
/// result does not depend on the dictionary's order (which Swift seeds per process).
@discardableResult
public func clipGradients(_ gradients: inout [String: Tensor], maxNorm: Double) -> Double {
    let norm = withoutGradients { gradients.keys.sorted().map { gradients[$0]?.square().sum().item() ?? 0 }.reduce(0, +).squareRoot() }
    if norm > maxNorm && norm > 0 {
        let scale = maxNorm / (norm + 1e-6)
        withoutGradients { for (k, g) in gradients { gradients[k] = g * scale } }
    }
    return norm
}

/// Scales the gradients in `buffer` in place so their global L2 norm is at most `maxNorm`
/// (PyTorch's `clip_grad_norm_`: times `min(maxNorm / (norm + 1e-6), 1)`); returns the norm
/// before, a `[]` tensor on the buffer's device. One reduction over the flat buffer, the same
/// bits on every run and in every process, and nothing read back: a GPU's step never waits for
/// it (reading the norm does).
@discardableResult
public func clipGradients(_ buffer: GradientBuffer, maxNorm: Double) -> Tensor {
    withoutGradients {
        let norm = buffer.flat.square().sum().sqrt()
        buffer.flat.assign(buffer.flat * minimum(maxNorm / (norm + 1e-6), 1))
        return norm
    }
}

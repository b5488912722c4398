import Foundation

/// Whether ops record tape nodes. Recording is on by default; evaluation code turns it off
/// with ``withoutGradients(_:)``. The flag is per thread.
public enum GradMode {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether the current thread records gradients.
    public static var isEnabled: Bool {
        get { pthread_getspecific(key) == nil }
        set { pthread_setspecific(key, newValue ? nil : UnsafeRawPointer(bitPattern: 1)) }
    }
}

/// Runs `body` without recording gradients (evaluation, optimiser updates).
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    let previous = GradMode.isEnabled
    GradMode.isEnabled = false
    defer { GradMode.isEnabled = previous }
    return try body()
}

/// One recorded op: its inputs and the rule mapping the output gradient to input gradients.
///
/// The closure captures only what the rule needs (the tape's memory is exactly that).
package final class GradNode {
    let inputs: [Tensor]
    let rule: (Tensor) -> [Tensor?]
    let name: String

    init(name: String, inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.rule = rule
    }
}

/// Whether an op with these inputs must be recorded.
@inline(__always)
func needsGrad(_ inputs: [Tensor]) -> Bool {
    GradMode.isEnabled && inputs.contains { $0.requiresGrad }
}

/// Attaches a tape node to `output` when any of `inputs` requires a gradient.
///
/// `rule` receives the gradient of `output` and returns one gradient (or `nil` for none) per
/// input, each of the input's shape. It runs with recording off.
func record(_ name: String, _ output: Tensor, _ inputs: [Tensor], _ rule: @escaping (Tensor) -> [Tensor?]) -> Tensor {
    guard needsGrad(inputs) else { return output }
    output.requiresGrad = true
    output.node = GradNode(name: name, inputs: inputs, rule: rule)
    return output
}

/// `record` for the common one-input case.
func recordUnary(_ output: Tensor, _ input: Tensor, _ rule: @escaping (Tensor) -> [Tensor?]) -> Tensor {
    record("unary", output, [input], rule)
}

extension Tensor {
    /// Back-propagates from this tensor, adding into the `.grad` of every leaf that requires a
    /// gradient. Calling it for several losses before reading `.grad` accumulates them.
    ///
    /// - Parameter seed: the gradient of this tensor; defaults to ones for a one-element tensor.
    public func backward(_ seed: Tensor? = nil) {
        let leaves = gradients(seed: seed)
        withoutGradients {
            for (leaf, g) in leaves {
                leaf.grad = leaf.grad.map { $0 + g } ?? g
            }
        }
    }

    /// The gradients of this tensor with respect to every leaf that requires one, without
    /// touching `.grad`.
    public func gradients(seed: Tensor? = nil) -> [(Tensor, Tensor)] {
        precondition(requiresGrad, "[backward] expected a tensor that requires a gradient, got one with no history")
        let start = seed ?? {
            precondition(count == 1, "[backward] expected a one-element tensor or an explicit seed, got shape \(ShapeUtil.describe(shape))")
            return Tensor.ones(shape, dtype: dtype, device: device)
        }()
        precondition(start.shape == shape, "[backward] expected a seed of shape \(ShapeUtil.describe(shape)), got \(ShapeUtil.describe(start.shape))")

        // Reverse topological order of the recorded graph, iteratively (graphs can be deep).
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if !visited.insert(ObjectIdentifier(t)).inserted { continue }
            stack.append((t, true))
            for input in t.node?.inputs ?? [] where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }

        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): start]
        var leaves: [(Tensor, Tensor)] = []
        withoutGradients {
            for t in order.reversed() {
                guard let g = pending.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                guard let node = t.node else {
                    leaves.append((t, g))
                    continue
                }
                let inputGrads = node.rule(g)
                precondition(inputGrads.count == node.inputs.count, "[backward] rule \(node.name) returned \(inputGrads.count) gradients for \(node.inputs.count) inputs")
                for (input, ig) in zip(node.inputs, inputGrads) where input.requiresGrad {
                    guard let ig else { continue }
                    precondition(ig.shape == input.shape, "[backward] rule \(node.name) expected gradient shape \(ShapeUtil.describe(input.shape)), got \(ShapeUtil.describe(ig.shape))")
                    let key = ObjectIdentifier(input)
                    pending[key] = pending[key].map { $0 + ig } ?? ig
                }
            }
        }
        return leaves
    }
}

/// The value of `f` and its gradients with respect to named parameters, keyed like the
/// parameter tree (`"layers.0.weight"`).
///
/// The parameters' `requiresGrad` is set for the call and restored after it; `.grad` is left
/// untouched.
public func valueAndGradients(of parameters: [String: Tensor], _ f: () -> Tensor) -> (value: Tensor, gradients: [String: Tensor]) {
    let previous = parameters.mapValues(\.requiresGrad)
    for p in parameters.values { p.requiresGrad = true }
    defer { for (k, p) in parameters { p.requiresGrad = previous[k] ?? false } }
    let value = f()
    guard value.requiresGrad else {
        return (value, parameters.mapValues { Tensor.zeros($0.shape, dtype: $0.dtype, device: $0.device) })
    }
    let leaves = value.gradients()
    var byID: [ObjectIdentifier: Tensor] = [:]
    for (leaf, g) in leaves { byID[ObjectIdentifier(leaf)] = g }
    let grads = parameters.mapValues { p in
        byID[ObjectIdentifier(p)] ?? Tensor.zeros(p.shape, dtype: p.dtype, device: p.device)
    }
    return (value, grads)
}

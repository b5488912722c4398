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

/// One recorded op: the nodes of its inputs and the rule mapping the output gradient to input
/// gradients.
///
/// A node references its parents' nodes, never their tensors: an intermediate tensor stays
/// alive only while user code or a rule that needs it holds it. Each op's rule captures
/// exactly what it uses (see the op's file); ``release()`` drops the rule, and with it the
/// saved tensors, as soon as it has run, so a backward pass frees activations layer by layer.
package final class GradNode {
    /// The input nodes, one per op input: `nil` for inputs that need no gradient.
    private(set) var parents: [GradNode?]
    /// The shapes of the inputs, to check what a rule returns.
    let inputShapes: [[Int]]
    /// The gradient rule and what it saved; `nil` once it has run (or for a leaf).
    private(set) var rule: ((Tensor) -> [Tensor?])?
    /// The leaf tensor this node accumulates into (`nil` for an op's node).
    let leaf: Tensor?
    let name: String

    init(name: String, inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        parents = inputs.map { $0.requiresGrad ? ($0.node ?? GradNode(leaf: $0)) : nil }
        inputShapes = inputs.map(\.shape)
        self.rule = rule
        leaf = nil
    }

    /// A node standing for a leaf (a parameter or an input marked `requiresGrad`). Leaves get
    /// one such node per use; their gradients are summed by tensor identity. The tensor does not
    /// point back at it, so no cycle keeps either alive.
    private init(leaf: Tensor) {
        name = "leaf"
        parents = []
        inputShapes = []
        rule = nil
        self.leaf = leaf
    }

    /// Whether the rule has been run and released (a second backward through it is an error).
    var isReleased: Bool { leaf == nil && rule == nil }

    /// Drops the rule (and every tensor it saved) and the links to the parents.
    func release() {
        rule = nil
        parents = []
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
/// input, each of the input's shape. It runs with recording off. It must capture only what it
/// uses (never `output` itself: capture `output.detached()`), because what it captures lives
/// until the backward pass reaches it.
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
    /// - Parameters:
    ///   - seed: the gradient of this tensor; defaults to ones for a one-element tensor.
    ///   - retainGraph: keep every rule (and what it saved) for another backward pass through
    ///     the same graph; by default each node's saved state is freed as soon as its rule ran.
    public func backward(_ seed: Tensor? = nil, retainGraph: Bool = false) {
        let leaves = gradients(seed: seed, retainGraph: retainGraph)
        withoutGradients {
            for (leaf, g) in leaves {
                leaf.grad = leaf.grad.map { $0 + g } ?? g
            }
        }
    }

    /// The gradients of this tensor with respect to every leaf that requires one, without
    /// touching `.grad`, in the order the leaves were first reached.
    ///
    /// Unless `retainGraph` is set, the graph is consumed: each node's rule and saved tensors
    /// are released right after the rule runs, and a second backward through it traps.
    public func gradients(seed: Tensor? = nil, retainGraph: Bool = false) -> [(Tensor, Tensor)] {
        var leaves: [(Tensor, Tensor)] = []
        traverse(seed: seed, retainGraph: retainGraph) { leaves.append(($0, $1)) }
        return leaves
    }

    /// Runs the backward pass and hands each leaf its final gradient (summed over every use of
    /// the leaf) as soon as the last of its uses has been reached, in completion order.
    func traverse(seed: Tensor?, retainGraph: Bool, _ leafDone: (Tensor, Tensor) -> Void) {
        precondition(requiresGrad, "[backward] expected a tensor that requires a gradient, got one with no history")
        let start = seed ?? {
            precondition(count == 1, "[backward] expected a one-element tensor or an explicit seed, got shape \(ShapeUtil.describe(shape))")
            return Tensor.ones(shape, dtype: dtype, device: device)
        }()
        precondition(start.shape == shape, "[backward] expected a seed of shape \(ShapeUtil.describe(shape)), got \(ShapeUtil.describe(start.shape))")
        guard let root = node else {  // a leaf: its own gradient
            leafDone(self, start)
            return
        }
        precondition(!root.isReleased, "[backward] expected a recorded graph, got one that was already back-propagated (pass retainGraph: true to the first backward)")

        // Reverse topological order of the recorded nodes, iteratively (graphs can be deep).
        // Leaves get a node per use; count the uses so a leaf is handed over after its last one.
        var order: [GradNode] = []
        var visited = Set<ObjectIdentifier>()
        var usesLeft: [ObjectIdentifier: Int] = [:]
        var stack: [(GradNode, Bool)] = [(root, false)]
        while let (n, expanded) = stack.popLast() {
            if expanded { order.append(n); continue }
            if !visited.insert(ObjectIdentifier(n)).inserted { continue }
            if let leaf = n.leaf { usesLeft[ObjectIdentifier(leaf), default: 0] += 1 }
            stack.append((n, true))
            for case let parent? in n.parents where !visited.contains(ObjectIdentifier(parent)) {
                stack.append((parent, false))
            }
        }

        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): start]
        var leafGrads: [ObjectIdentifier: (leaf: Tensor, gradient: Tensor)] = [:]
        /// A leaf's use is settled when the rule of the op that used it has run: add its
        /// gradient, and hand the total over after the last use.
        func settle(_ leaf: Tensor, _ g: Tensor?) {
            let key = ObjectIdentifier(leaf)
            if let g { leafGrads[key] = (leaf, leafGrads[key].map { $0.gradient + g } ?? g) }
            usesLeft[key, default: 1] -= 1
            if usesLeft[key] == 0, let done = leafGrads.removeValue(forKey: key) { leafDone(done.leaf, done.gradient) }
        }
        withoutGradients {
            // `order` is drained from the back, so a node's last reference goes with its turn.
            while let n = order.popLast() {
                if n.leaf != nil { continue }  // settled by the op that used it
                guard let g = pending.removeValue(forKey: ObjectIdentifier(n)) else {
                    for case let parent? in n.parents { if let leaf = parent.leaf { settle(leaf, nil) } }
                    continue
                }
                guard let rule = n.rule else {
                    preconditionFailure("[backward] rule \(n.name) was already run and released (pass retainGraph: true to the first backward)")
                }
                let inputGrads = rule(g)
                precondition(inputGrads.count == n.inputShapes.count, "[backward] rule \(n.name) returned \(inputGrads.count) gradients for \(n.inputShapes.count) inputs")
                for (i, ig) in inputGrads.enumerated() {
                    guard let parent = n.parents[i] else { continue }
                    if let ig {
                        precondition(ig.shape == n.inputShapes[i], "[backward] rule \(n.name) expected gradient shape \(ShapeUtil.describe(n.inputShapes[i])), got \(ShapeUtil.describe(ig.shape))")
                    }
                    if let leaf = parent.leaf {
                        settle(leaf, ig)
                    } else if let ig {
                        let key = ObjectIdentifier(parent)
                        pending[key] = pending[key].map { $0 + ig } ?? ig
                    }
                }
                if !retainGraph { n.release() }
            }
            // Leaves reached only through ops that got no gradient.
            for (_, done) in leafGrads { leafDone(done.leaf, done.gradient) }
        }
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

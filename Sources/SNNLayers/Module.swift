import SNNTensor

/// A non-trainable tensor a module keeps in its state (BatchNorm's running statistics,
/// `num_batches_tracked`). Stored as a property of a ``Module``, it appears in the state dict
/// but not among the trainable parameters.
public final class Buffer {
    public var value: Tensor
    public init(_ value: Tensor) { self.value = value }
}

/// A layer or a network: a tree of modules whose stored `Tensor` properties are its parameters.
///
/// The tree is found by reflection over stored properties (like mlx-swift's `Module`):
/// - a `Tensor` property is a trainable parameter, keyed by the property name;
/// - a ``Buffer`` property is state that is saved and loaded but not trained;
/// - a `Module` property is a child, and an array of modules gives children `name.0`, `name.1`, ...
///
/// Keys join the path with dots, state-dict style (`features.0.weight`). A subclass may
/// rename its children's keys by overriding ``childKey(_:)`` to match a reference
/// implementation's names. Modules take whole sequences and keep no state between calls.
open class Module {
    /// Training mode (batch statistics, dropout on) or evaluation mode.
    public private(set) var training = true

    public init() {}

    /// The layer's function. Layers take frames `[N, ...]` or sequences `[T, N, ...]`.
    open func forward(_ x: Tensor) -> Tensor {
        preconditionFailure("[\(type(of: self))] expected a module with a forward pass")
    }

    /// Calls ``forward(_:)``.
    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x) }

    /// The key under which a stored property appears; `nil` hides it from the tree.
    open func childKey(_ property: String) -> String? { property }

    /// The direct children and leaves of this module, in declaration order.
    private func entries() -> [(key: String, value: Any)] {
        var out: [(String, Any)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var levels: [[(String, Any)]] = []
        while let m = mirror {
            levels.append(m.children.compactMap { child in
                guard let label = child.label, let key = childKey(label) else { return nil }
                return (key, child.value)
            })
            mirror = m.superclassMirror
        }
        // Superclass properties come first, as declared.
        for level in levels.reversed() { out += level }
        return out
    }

    /// Visits every parameter, buffer and module of the tree with its dotted key.
    private func walk(prefix: String, _ visit: (String, Any) -> Void) {
        for (key, value) in entries() {
            let path = Module.join(prefix, key)
            switch value {
            case let t as Tensor: visit(path, t)
            case let t as Tensor?: if let t { visit(path, t) }
            case let b as Buffer: visit(path, b)
            case let b as Buffer?: if let b { visit(path, b) }
            case let m as Module:
                visit(path, m)
                m.walk(prefix: path, visit)
            case let m as Module?:
                if let m { visit(path, m); m.walk(prefix: path, visit) }
            case let list as [Module]:
                for (i, m) in list.enumerated() {
                    visit(Module.join(path, "\(i)"), m)
                    m.walk(prefix: Module.join(path, "\(i)"), visit)
                }
            default: break
            }
        }
    }

    /// Joins key components with dots, skipping empty ones.
    static func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : (b.isEmpty ? a : "\(a).\(b)") }

    /// Trainable parameters keyed by their dotted path, in declaration order.
    public func namedParameters() -> [(key: String, value: Tensor)] {
        var out: [(String, Tensor)] = []
        walk(prefix: "") { key, value in if let t = value as? Tensor { out.append((key, t)) } }
        return out
    }

    /// Non-trainable buffers keyed by their dotted path.
    public func namedBuffers() -> [(key: String, value: Buffer)] {
        var out: [(String, Buffer)] = []
        walk(prefix: "") { key, value in if let b = value as? Buffer { out.append((key, b)) } }
        return out
    }

    /// Every module of the tree (this one first) with its path.
    public func namedModules() -> [(key: String, value: Module)] {
        var out: [(String, Module)] = [("", self)]
        walk(prefix: "") { key, value in if let m = value as? Module { out.append((key, m)) } }
        return out
    }

    /// The trainable parameters as a list, in declaration order.
    public func parameters() -> [Tensor] { namedParameters().map(\.value) }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters().map(\.count).reduce(0, +) }

    /// Parameters and buffers keyed by path: what checkpoints save.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, v) in namedParameters() { out[k] = v }
        for (k, b) in namedBuffers() { out[k] = b.value }
        return out
    }

    /// Loads parameters and buffers by key, in place.
    ///
    /// - Throws: ``StateDictError`` naming every missing, unexpected or wrongly shaped key.
    public func load(stateDict: [String: Tensor], strict: Bool = true) throws {
        var problems: [String] = []
        var targets: [String: Tensor] = [:]
        for (k, v) in namedParameters() { targets[k] = v }
        var buffers: [String: Buffer] = [:]
        for (k, b) in namedBuffers() { buffers[k] = b }
        for key in Set(targets.keys).union(buffers.keys).sorted() {
            guard let source = stateDict[key] else {
                if strict { problems.append("missing key '\(key)'") }
                continue
            }
            if let t = targets[key] {
                guard source.shape == t.shape else {
                    problems.append("key '\(key)' has shape \(ShapeUtil.describe(source.shape)), expected \(ShapeUtil.describe(t.shape))")
                    continue
                }
                t.assign(source.to(t.device))
            } else if let b = buffers[key] {
                guard source.shape == b.value.shape else {
                    problems.append("key '\(key)' has shape \(ShapeUtil.describe(source.shape)), expected \(ShapeUtil.describe(b.value.shape))")
                    continue
                }
                b.value.assign(source.to(b.value.device))
            }
        }
        if strict {
            let known = Set(targets.keys).union(buffers.keys)
            for key in stateDict.keys.sorted() where !known.contains(key) { problems.append("unexpected key '\(key)'") }
        }
        if !problems.isEmpty { throw StateDictError(problems: problems) }
    }

    /// Sets training mode on this module and every descendant.
    public func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.training = on }
    }

    /// Sets evaluation mode on this module and every descendant.
    public func eval() { train(false) }
}

/// Keys that did not match when loading a state dict.
public struct StateDictError: Error, CustomStringConvertible {
    public let problems: [String]
    public var description: String { "state dict does not match the model: " + problems.joined(separator: "; ") }
}

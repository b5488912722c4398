import Foundation
import SNNTensor

/// A NIR graph (the Neuromorphic Intermediate Representation, PyPI `nir` 1.0): named, typed
/// nodes with their parameters, edges between them, and metadata, stored as HDF5 exactly as
/// `nir.write` lays it out (`version`; `node/type = "NIRGraph"`, `node/nodes/<name>/...`,
/// `node/edges` as name pairs, `node/metadata/...`).
///
/// Edges into one node add up (fan-in). Shapes exclude batch and time.
public struct NIRGraph {
    public enum Value: Equatable {
        case floats([Float], shape: [Int])
        case integers([Int], shape: [Int])
        case integer(Int)
        case number(Double)
        case string(String)

        /// The shape of an array value; `[]` for scalars.
        public var shape: [Int] {
            switch self {
            case .floats(_, let s), .integers(_, let s): return s
            default: return []
            }
        }

        /// Numbers of an array or scalar value.
        public var numbers: [Double]? {
            switch self {
            case .floats(let v, _): return v.map(Double.init)
            case .integers(let v, _): return v.map(Double.init)
            case .integer(let v): return [Double(v)]
            case .number(let v): return [v]
            case .string: return nil
            }
        }
    }

    public struct Node {
        public var name: String
        /// `Input`, `Conv2d`, `LIF`, `Affine`, ...
        public var type: String
        public var fields: [(key: String, value: Value)]

        public init(_ name: String, _ type: String, _ fields: [(key: String, value: Value)] = []) {
            (self.name, self.type, self.fields) = (name, type, fields)
        }

        public subscript(_ key: String) -> Value? { fields.first { $0.key == key }?.value }
    }

    /// The NIR release whose file layout this writes (and `nir.read` of which was checked).
    public static let formatVersion = "1.0.8"

    public var nodes: [Node]
    public var edges: [(from: String, to: String)]
    public var metadata: [(key: String, value: Value)]
    /// The file's `version` (``formatVersion`` for graphs made here).
    public var version: String

    public init(nodes: [Node], edges: [(from: String, to: String)], metadata: [(key: String, value: Value)] = [],
                version: String = NIRGraph.formatVersion) {
        (self.nodes, self.edges, self.metadata, self.version) = (nodes, edges, metadata, version)
    }

    public func node(_ name: String) -> Node? { nodes.first { $0.name == name } }

    // MARK: Files

    /// The graph as the bytes of an HDF5 file.
    public func hdf5(name: String = "graph.nir") throws -> Data {
        try HDF5.exclusive { try hdf5Image(name: name) }
    }

    private func hdf5Image(name: String) throws -> Data {
        let w = try HDF5Writer(name: name)
        try w.write("version", strings: [version])
        try w.group("node")
        try w.write("node/type", strings: ["NIRGraph"])
        try w.write("node/edges", strings: edges.flatMap { [$0.from, $0.to] }, shape: [edges.count, 2])
        if !metadata.isEmpty {
            try w.group("node/metadata")
            for (key, value) in metadata { try write(value, at: "node/metadata/\(key)", w) }
        }
        try w.group("node/nodes")
        for node in nodes {
            let base = "node/nodes/\(node.name)"
            try w.group(base)
            try w.write("\(base)/type", strings: [node.type])
            for (key, value) in node.fields { try write(value, at: "\(base)/\(key)", w) }
        }
        return try w.bytes()
    }

    private func write(_ value: Value, at path: String, _ w: HDF5Writer) throws {
        switch value {
        case .floats(let v, let shape): try w.write(path, floats: v, shape: shape)
        case .integers(let v, let shape): try w.write(path, integers: v, shape: shape)
        case .integer(let v): try w.write(path, integer: v)
        case .number(let v): try w.write(path, double: v)
        case .string(let s): try w.write(path, strings: [s])
        }
    }

    /// Writes the file atomically (a temporary file renamed into place).
    public func write(to path: String) throws {
        let data = try hdf5(name: FileSystem.lastComponent(path))
        try AtomicFile.write(data, to: path)
    }

    /// Reads a NIR file (written by `nir.write` or by ``write(to:)``).
    public static func read(_ path: String) throws -> NIRGraph {
        let root = try HDF5Object.read(path)
        guard let node = root["node"], case .group = node else {
            throw HDF5Error("\(path): not a NIR file (no group 'node' at the top; it holds \(names(root)))")
        }
        guard let type = node["type"]?.string else { throw HDF5Error("\(path): /node has no 'type' string") }
        guard type == "NIRGraph" else { throw HDF5Error("\(path): /node/type is '\(type)'; snn reads NIR files whose top node is a NIRGraph") }
        return try graph(node, at: "/node", path: path, version: root["version"]?.string ?? "unknown")
    }

    private static func names(_ object: HDF5Object) -> String {
        guard case .group(let children) = object, !children.isEmpty else { return "nothing" }
        return children.map(\.name).joined(separator: ", ")
    }

    private static func graph(_ node: HDF5Object, at location: String, path: String, version: String) throws -> NIRGraph {
        guard case .group(let members)? = node["nodes"] else { throw HDF5Error("\(path): \(location) has no group 'nodes'") }
        var nodes: [Node] = []
        for (name, object) in members {
            guard case .group(let children) = object else { throw HDF5Error("\(path): \(location)/nodes/\(name) is not a group") }
            guard let type = object["type"]?.string else { throw HDF5Error("\(path): \(location)/nodes/\(name) has no 'type' string") }
            var fields: [(key: String, value: Value)] = []
            for (key, child) in children where key != "type" && key != "metadata" {
                if let value = value(child) { fields.append((key, value)) }
            }
            nodes.append(Node(name, type, fields))
        }
        var edges: [(from: String, to: String)] = []
        switch node["edges"] {
        case .strings(let v, let shape)? where shape.count == 2 && shape[1] == 2:
            edges = stride(from: 0, to: v.count, by: 2).map { (v[$0], v[$0 + 1]) }
        case .strings(_, let shape)? where shape.reduce(1, *) == 0:
            break
        case nil:
            throw HDF5Error("\(path): \(location) has no 'edges'")
        default:
            throw HDF5Error("\(path): \(location)/edges must be name pairs of shape [E, 2], got shape \(node["edges"]?.shape ?? [])")
        }
        let known = Set(nodes.map(\.name))
        for (i, e) in edges.enumerated() where !known.contains(e.from) || !known.contains(e.to) {
            throw HDF5Error("\(path): edge \(i) (\(e.from) → \(e.to)) names a node the graph does not have")
        }
        var metadata: [(key: String, value: Value)] = []
        if case .group(let items)? = node["metadata"] {
            for (key, child) in items { if let v = value(child) { metadata.append((key, v)) } }
        }
        return NIRGraph(nodes: nodes, edges: edges, metadata: metadata, version: version)
    }

    private static func value(_ object: HDF5Object) -> Value? {
        switch object {
        case .group: return nil
        case .integers(let v, let shape): return shape.isEmpty ? .integer(v[0]) : .integers(v, shape: shape)
        case .numbers(let v, let shape): return shape.isEmpty ? .number(v[0]) : .floats(v.map(Float.init), shape: shape)
        case .strings(let v, let shape): return .string(shape.isEmpty ? v[0] : v.joined(separator: ", "))
        }
    }

    // MARK: Shapes

    /// The nodes with every node after the nodes it reads (file order among equals; nodes on a
    /// cycle, which NIR allows for recurrence, keep their file order at the end).
    public func topologicalOrder() -> [Node] {
        var remaining = Dictionary(grouping: edges.filter { $0.from != $0.to }, by: \.to).mapValues(\.count)
        let outgoing = Dictionary(grouping: edges.filter { $0.from != $0.to }, by: \.from).mapValues { $0.map(\.to) }
        var placed = Set<String>()
        var order: [Node] = []
        var progress = true
        while progress {
            progress = false
            for n in nodes where !placed.contains(n.name) && (remaining[n.name] ?? 0) == 0 {
                order.append(n)
                placed.insert(n.name)
                for next in outgoing[n.name] ?? [] { remaining[next, default: 0] -= 1 }
                progress = true
            }
        }
        return order + nodes.filter { !placed.contains($0.name) }
    }

    /// Each node's output shape, inferred from the inputs forward as `nir` does (nil where it
    /// cannot be known).
    public func outputShapes() -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        let incoming = Dictionary(grouping: edges, by: \.to).mapValues { $0.map(\.from) }
        func ints(_ v: Value?) -> [Int]? { v?.numbers?.map { Int($0) } }
        func pair(_ v: Value?) -> [Int]? {
            guard let n = ints(v) else { return nil }
            return n.count == 1 ? [n[0], n[0]] : n
        }
        var changed = true
        var rounds = 0
        while changed && rounds <= nodes.count {
            changed = false
            rounds += 1
            for n in nodes where shapes[n.name] == nil {
                let input = incoming[n.name]?.compactMap { shapes[$0] }.first
                var shape: [Int]?
                switch n.type {
                case "Input", "Output": shape = ints(n["shape"])
                case "Conv2d":
                    if let w = n["weight"]?.shape, w.count == 4, let size = ints(n["input_shape"]) ?? input.map({ Array($0.dropFirst()) }),
                       size.count == 2, let s = pair(n["stride"]), let p = pair(n["padding"]), let d = pair(n["dilation"]) {
                        let spatial: [Int] = (0..<2).map { (i: Int) -> Int in
                            (size[i] + 2 * p[i] - d[i] * (w[2 + i] - 1) - 1) / s[i] + 1
                        }
                        shape = [w[0]] + spatial
                    }
                case "SumPool2d", "AvgPool2d":
                    if let input, input.count == 3, let k = pair(n["kernel_size"]), let s = pair(n["stride"]), let p = pair(n["padding"]) {
                        let spatial: [Int] = (0..<2).map { (i: Int) -> Int in (input[1 + i] + 2 * p[i] - k[i]) / s[i] + 1 }
                        shape = [input[0]] + spatial
                    }
                case "Affine", "Linear": shape = n["weight"].map { [$0.shape[0]] }
                case "Flatten":
                    if let from = ints(n["input_type"]) ?? input, let start = ints(n["start_dim"])?.first {
                        let s = start < 0 ? start + from.count : start
                        if s >= 0 && s <= from.count { shape = Array(from[..<s]) + [from[s...].reduce(1, *)] }
                    }
                case "LIF", "IF", "LI", "I", "CubaLIF", "CubaLI": shape = n["r"]?.shape ?? n["v_threshold"]?.shape
                case "Threshold": shape = n["threshold"]?.shape
                case "Scale": shape = n["scale"]?.shape
                default: shape = input
                }
                if let shape { shapes[n.name] = shape; changed = true }
            }
        }
        return shapes
    }
}

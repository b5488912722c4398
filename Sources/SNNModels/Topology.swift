/// The reference implementation's topology strings: tokens joined by `_`, fields by `-`.
///
/// - `CONV-c-k-s-p[-pk-ps-pp]`: conv → BN → LIF → max-pool (pool 2, 2, 0 by default);
///   `CONVAP` average-pools, `CONVNP-c-k-s-p` does not pool, `CONVEN` is an encoder whose
///   conv → BN runs once on the static image before the repetition over time.
/// - `RES-c-k1=k2-s1=s2-p1=p2`: spiking residual block; `SEWRES~F-...` with F in ADD, AND, IAND:
///   SEW residual block. Both project the shortcut (1×1 conv, stride s1) when `s1 ≠ s2` or the
///   channel count changes.
/// - `FC-n`: flatten if needed, linear, dropout, LIF. `L-n`: flatten if needed, linear readout.
///
/// Empty trailing fields (`RES-512-3=3-1=1-1=1-`, as in the reference's ResNet strings) are
/// ignored. See TRT-SPEC.md §2.
public enum TopologyToken: Hashable, Sendable {
    public enum Pooling: String, Hashable, Sendable { case max, average, none }
    public enum Connect: String, Hashable, Sendable, CaseIterable { case add = "ADD", and = "AND", iand = "IAND" }

    case conv(channels: Int, kernel: Int, stride: Int, padding: Int, pooling: Pooling,
              pool: (kernel: Int, stride: Int, padding: Int), encoder: Bool)
    case residual(channels: Int, kernels: (Int, Int), strides: (Int, Int), paddings: (Int, Int), sew: Connect?)
    case fc(Int)
    case readout(Int)

    public static func == (a: TopologyToken, b: TopologyToken) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }
}

extension TopologyToken: CustomStringConvertible {
    /// The token in the reference's spelling.
    public var description: String {
        switch self {
        case let .conv(c, k, s, p, pooling, pool, encoder):
            let name = encoder ? "CONVEN" : ["max": "CONV", "average": "CONVAP", "none": "CONVNP"][pooling.rawValue] ?? "CONV"
            let tail = pooling == .none ? "" : "-\(pool.kernel)-\(pool.stride)-\(pool.padding)"
            return "\(name)-\(c)-\(k)-\(s)-\(p)\(tail)"
        case let .residual(c, k, s, p, sew):
            return "\(sew.map { "SEWRES~\($0.rawValue)" } ?? "RES")-\(c)-\(k.0)=\(k.1)-\(s.0)=\(s.1)-\(p.0)=\(p.1)"
        case .fc(let n): return "FC-\(n)"
        case .readout(let n): return "L-\(n)"
        }
    }
}

/// A topology string that does not parse or cannot be built; the message names the token.
public struct TopologyError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A parsed topology.
public struct Topology: Hashable, Sendable, CustomStringConvertible {
    public let tokens: [TopologyToken]

    public var description: String { tokens.map(\.description).joined(separator: "_") }

    public init(tokens: [TopologyToken]) { self.tokens = tokens }

    /// Parses a topology string, validating every field.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard !text.isEmpty, !parts.isEmpty else { throw TopologyError(message: "empty topology string") }
        tokens = try parts.enumerated().map { try Topology.parseToken($0.element, index: $0.offset) }
        try validate()
    }

    private static let grammar = "expected CONV|CONVAP|CONVEN-c-k-s-p[-pk-ps-pp], CONVNP-c-k-s-p, RES-c-k1=k2-s1=s2-p1=p2, SEWRES~ADD|AND|IAND-c-k1=k2-s1=s2-p1=p2, FC-n or L-n"

    private static func parseToken(_ token: String, index: Int) throws -> TopologyToken {
        var fields = token.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        while fields.count > 1 && fields.last == "" { fields.removeLast() }
        let head = fields[0]
        func fail(_ why: String) -> TopologyError {
            TopologyError(message: "topology token \(index + 1) '\(token)': \(why); \(grammar)")
        }
        func int(_ s: String, _ what: String, min: Int = 1) throws -> Int {
            guard let v = Int(s), v >= min else { throw fail("\(what) must be an integer >= \(min), got '\(s)'") }
            return v
        }
        func pair(_ s: String, _ what: String, min: Int) throws -> (Int, Int) {
            let p = s.split(separator: "=", omittingEmptySubsequences: false).map(String.init)
            guard p.count == 2 else { throw fail("\(what) must be two values joined by '=', got '\(s)'") }
            return (try int(p[0], what, min: min), try int(p[1], what, min: min))
        }
        switch head {
        case "CONV", "CONVAP", "CONVEN", "CONVNP":
            let pooled = head != "CONVNP"
            guard fields.count == 5 || (pooled && fields.count == 8) else {
                throw fail(pooled ? "expects 4 or 7 numbers" : "expects 4 numbers")
            }
            let pool = fields.count == 8
                ? (try int(fields[5], "pool kernel"), try int(fields[6], "pool stride"), try int(fields[7], "pool padding", min: 0))
                : (2, 2, 0)
            return .conv(channels: try int(fields[1], "channels"), kernel: try int(fields[2], "kernel"),
                         stride: try int(fields[3], "stride"), padding: try int(fields[4], "padding", min: 0),
                         pooling: head == "CONVAP" ? .average : (head == "CONVNP" ? .none : .max),
                         pool: pool, encoder: head == "CONVEN")
        case _ where head == "RES" || head.hasPrefix("SEWRES"):
            var sew: TopologyToken.Connect?
            if head != "RES" {
                let parts = head.split(separator: "~").map(String.init)
                guard parts.count == 2, parts[0] == "SEWRES", let f = TopologyToken.Connect(rawValue: parts[1]) else {
                    throw fail("the SEW connect function must be one of ADD, AND, IAND")
                }
                sew = f
            }
            guard fields.count == 5 else { throw fail("expects channels, kernels, strides and paddings") }
            return .residual(channels: try int(fields[1], "channels"), kernels: try pair(fields[2], "kernels", min: 1),
                             strides: try pair(fields[3], "strides", min: 1), paddings: try pair(fields[4], "paddings", min: 0), sew: sew)
        case "FC", "L":
            guard fields.count == 2 else { throw fail("expects one number") }
            let n = try int(fields[1], "units")
            return head == "FC" ? .fc(n) : .readout(n)
        default:
            throw fail("unknown layer '\(head)'")
        }
    }

    /// Structural rules the reference only finds late (or never).
    private func validate() throws {
        for (i, t) in tokens.enumerated() {
            if case .residual = t {
                if i == 0 { throw TopologyError(message: "topology token 1 '\(t)': a residual block cannot be the first layer") }
                if i == tokens.count - 1 { throw TopologyError(message: "topology token \(i + 1) '\(t)': a residual block cannot be the last layer") }
            }
            if case .conv(_, _, _, _, _, _, true) = t, i != 0 {
                throw TopologyError(message: "topology token \(i + 1) '\(t)': CONVEN (the encoder) must be the first layer")
            }
            if i > 0, case .fc = tokens[i - 1], !t.isDense {
                throw TopologyError(message: "topology token \(i + 1) '\(t)': convolutional and residual layers cannot follow FC layers")
            }
            if i > 0, case .readout = tokens[i - 1] {
                throw TopologyError(message: "topology token \(i + 1) '\(t)': nothing can follow the readout L")
            }
        }
        guard let last = tokens.last, case .readout = last else {
            throw TopologyError(message: "topology must end with a readout token L-n, got '\(tokens.last.map(\.description) ?? "")'")
        }
    }
}

extension TopologyToken {
    /// Whether this is an `FC` or `L` token.
    var isDense: Bool {
        switch self {
        case .fc, .readout: return true
        default: return false
        }
    }
}

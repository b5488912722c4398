import Foundation

/// A surrogate for the derivative of the Heaviside step `H(u)`, `u = h - v_th`.
///
/// Each surrogate carries its derivative `g(u)` (used in backward passes) and its primitive
/// `G(u)` (the smooth function whose derivative `g` is), so one contract test checks both.
/// Formulas follow TRT-SPEC.md §1.
public enum Surrogate: Hashable, Sendable, Codable, CustomStringConvertible {
    /// `g(u) = (1/γ)² · max(γ - |u|, 0)`. The reference's default, γ = 1.
    case triangle(gamma: Double)
    /// `g(u) = α σ(αu) (1 - σ(αu))`.
    case sigmoid(alpha: Double)
    /// `g(u) = 1/a` for `|u| < a/2`, else 0.
    case rectangle(width: Double)

    /// The surrogate's parameter (γ, α or a).
    public var parameter: Double {
        switch self {
        case .triangle(let p), .sigmoid(let p), .rectangle(let p): return p
        }
    }

    /// The kind's name: `triangle`, `sigmoid` or `rectangle`.
    public var kind: String {
        switch self {
        case .triangle: return "triangle"
        case .sigmoid: return "sigmoid"
        case .rectangle: return "rectangle"
        }
    }

    public var description: String { "\(kind)(\(parameter))" }

    /// Builds a surrogate from its kind name and parameter, or `nil` for an unknown kind or a
    /// non-positive parameter.
    public init?(kind: String, parameter: Double) {
        guard parameter > 0, parameter.isFinite else { return nil }
        switch kind.lowercased() {
        case "triangle": self = .triangle(gamma: parameter)
        case "sigmoid": self = .sigmoid(alpha: parameter)
        case "rectangle", "rect": self = .rectangle(width: parameter)
        default: return nil
        }
    }

    /// The derivative `g(u)`.
    @inline(__always)
    public func derivative(_ u: Double) -> Double {
        switch self {
        case .triangle(let g): return max(g - Swift.abs(u), 0) / (g * g)
        case .sigmoid(let a):
            let s = 1 / (1 + Foundation.exp(-a * u))
            return a * s * (1 - s)
        case .rectangle(let a): return Swift.abs(u) < a / 2 ? 1 / a : 0
        }
    }

    /// The primitive `G(u)` with `G' = g`, `G(-∞) = 0`, `G(∞) = 1`.
    public func primitive(_ u: Double) -> Double {
        switch self {
        case .triangle(let g):
            if u <= -g { return 0 }
            if u >= g { return 1 }
            return u < 0 ? (g * u + u * u / 2 + g * g / 2) / (g * g) : (g * u - u * u / 2 + g * g / 2) / (g * g)
        case .sigmoid(let a): return 1 / (1 + Foundation.exp(-a * u))
        case .rectangle(let a): return min(max(u / a + 0.5, 0), 1)
        }
    }
}

/// How a neuron resets after a spike.
public enum ResetMode: Hashable, Sendable, Codable {
    /// `v = v_reset` after a spike (`v_t = (1 - s_t) h_t + s_t v_reset`).
    case hard(Double)
    /// `v = h - v_th` after a spike (reset by subtraction).
    case soft
}

/// The multi-step LIF neuron computed by ``neuronScan(_:_:)``.
///
/// For t = 0..<T, starting from `v = 0`: `h_t = v_{t-1}/τ + x_t`, `s_t = H(h_t - v_th)`
/// (strictly greater), then the reset. The reset is differentiated too: gradients flow
/// through `s_t` in the reset term, with `ds/dh` replaced by the surrogate. τ = 1 is an IF
/// neuron. See TRT-SPEC.md §1.
public struct NeuronParameters: Hashable, Sendable, Codable {
    public let tau: Double
    public let threshold: Double
    public let reset: ResetMode
    public let surrogate: Surrogate

    /// The reference's defaults: τ = 2, v_th = 1, hard reset to 0, triangle γ = 1.
    public init(tau: Double = 2, threshold: Double = 1, reset: ResetMode = .hard(0), surrogate: Surrogate = .triangle(gamma: 1)) {
        precondition(tau >= 1 && tau.isFinite, "[neuronScan] expected tau >= 1, got \(tau)")
        precondition(threshold.isFinite, "[neuronScan] expected a finite threshold, got \(threshold)")
        self.tau = tau
        self.threshold = threshold
        self.reset = reset
        self.surrogate = surrogate
    }

    /// `1/τ`, the leak applied to the previous potential.
    public var decay: Double { 1 / tau }
}

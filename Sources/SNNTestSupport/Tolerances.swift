/// An elementwise closeness criterion: `|actual - expected| <= atol + rtol · |expected|`.
///
/// The named tolerances below are the only ones the test suites use, so a loosened bound shows
/// up in one place and carries its reason.
public struct Tolerance: Sendable, CustomStringConvertible {
    /// The relative part, scaled by the magnitude of the expected value.
    public var rtol: Double
    /// The absolute floor, for expected values near zero.
    public var atol: Double

    public init(rtol: Double, atol: Double) {
        self.rtol = rtol
        self.atol = atol
    }

    /// Whether `actual` is within tolerance of `expected` (NaN matches only NaN).
    public func accepts(_ actual: Double, _ expected: Double) -> Bool {
        if actual.isNaN || expected.isNaN { return actual.isNaN && expected.isNaN }
        if actual == expected { return true }  // equal infinities
        return Swift.abs(actual - expected) <= atol + rtol * Swift.abs(expected)
    }

    public var description: String { "rtol \(rtol), atol \(atol)" }
}

extension Tolerance {
    /// Bit-for-bit agreement: two computations that do the same float64 operations in the same
    /// order (a fused op against its composite reference on the reference backend).
    public static let exact = Tolerance(rtol: 0, atol: 0)

    /// Float64 computations that agree up to reassociation (sums in a different order).
    public static let float64 = Tolerance(rtol: 1e-12, atol: 1e-12)

    /// Autograd against central finite differences in float64 with step 1e-6: the truncation
    /// error is O(h²·f''') ≈ 1e-12 and the cancellation error ≈ 1e-16·|f|/h ≈ 1e-10·|f|, so
    /// 1e-6 leaves two orders of margin for objectives of magnitude ~100.
    public static let gradCheck = Tolerance(rtol: 1e-5, atol: 1e-6)

    /// A surrogate's derivative against the finite difference of its primitive (float64,
    /// smooth closed forms, step 1e-6).
    public static let surrogateContract = Tolerance(rtol: 1e-6, atol: 1e-7)

    /// Float32 elementwise results of two backends: a few ulps of each operand (2⁻²³ ≈ 1.2e-7)
    /// after one or two roundings, with room for transcendental functions of libm vs vector code.
    public static let float32Elementwise = Tolerance(rtol: 1e-4, atol: 1e-6)

    /// Float32 results of reductions, matmul, convolution and batch norm, measured relative to
    /// the output's largest magnitude (see ``assertClose(_:_:relativeToMaxMagnitude:_:sourceLocation:)``):
    /// blocked float32 accumulation of K terms loses ~√K·2⁻²⁴ relative to the largest partial sum.
    public static let float32Accumulated = 1e-4

    /// The fused TRT penalty in float32 (CPU) against the float64 reference: each element
    /// rounds `|w| + ε`, `1 + c_t a` and `1 / (…)` and adds T positive terms (at most ~15 ulps
    /// of 2⁻²⁴ for T = 10), and the gradient's bracket `2Σinv - |w|Σc·inv²` is at least half
    /// its first term, which at most triples that: ~3e-6. No absolute floor: the gradient is
    /// `w` times a positive factor, so weights near zero keep the same relative accuracy and
    /// zero weights give exactly zero.
    public static let float32TRTRegularizer = Tolerance(rtol: 1e-5, atol: 0)

    /// Statistical checks over 100 000 samples: the standard error of a mean of unit-variance
    /// samples is 1/√1e5 ≈ 0.0032, so 0.02 is over six standard errors.
    public static let statistical100k = 0.02
}

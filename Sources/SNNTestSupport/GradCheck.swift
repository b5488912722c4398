import SNNTensor
import Testing

/// Finite-difference gradient checking in float64 on the reference backend.
///
/// For `y = f(inputs)` of any shape, the checked objective is the scalar `L = Σ y ⊙ R` with `R`
/// a fixed standard-normal projection of `y`'s shape, so every output element contributes to
/// every checked partial derivative (a plain `Σ y` would hide errors that cancel across
/// outputs). The autograd gradient `∂L/∂x` comes from one backward pass; the numerical one from
/// central differences `(L(x + h eᵢ) - L(x - h eᵢ)) / 2h`, evaluated with recording off.
public enum GradCheck {
    /// One element whose analytic and numerical derivatives disagree.
    public struct Mismatch: Sendable, CustomStringConvertible {
        public let input: Int
        public let index: [Int]
        public let analytic: Double
        public let numeric: Double
        public var description: String {
            let diff = Swift.abs(analytic - numeric)
            return "input \(input)\(index): autograd \(analytic), finite difference \(numeric), |diff| \(diff)"
        }
    }

    /// The outcome of a check.
    public struct Result: Sendable, CustomStringConvertible {
        /// `max |analytic - numeric|` over every checked element.
        public var maxAbsoluteError = 0.0
        /// `max |analytic - numeric| / max(|analytic|, |numeric|)` over elements where either is
        /// nonzero.
        public var maxRelativeError = 0.0
        /// How many partial derivatives were compared.
        public var checkedElements = 0
        /// The elements beyond tolerance, worst first (at most eight kept).
        public var mismatches: [Mismatch] = []
        /// How many elements were beyond tolerance.
        public var mismatchCount = 0
        /// Problems with the check itself (wrong dtype, an input the output ignores, ...).
        public var setupErrors: [String] = []

        public var passed: Bool { mismatchCount == 0 && setupErrors.isEmpty }

        public var description: String {
            var s =
                "gradient check: \(checkedElements) partial derivatives, max abs error \(maxAbsoluteError), "
                + "max rel error \(maxRelativeError)"
            if !setupErrors.isEmpty { s += "; setup: " + setupErrors.joined(separator: "; ") }
            if mismatchCount > 0 {
                s +=
                    "; \(mismatchCount) beyond tolerance, worst: "
                    + mismatches.map(\.description).joined(separator: " | ")
            }
            return s
        }
    }

    /// Compares autograd with central differences for `f` at `inputs`.
    ///
    /// - Parameters:
    ///   - inputs: float64 tensors on `.reference`; they are copied, never modified.
    ///   - wrt: the indices of the inputs to differentiate (all when `nil`); the others are
    ///     passed as constants.
    ///   - step: the finite-difference step `h`.
    ///   - tolerance: per element, `|analytic - numeric| <= atol + rtol·max(|analytic|, |numeric|)`.
    ///   - projectionSeed: the seed of `R`.
    ///   - f: the function; it must build its result from the tensors it is given.
    public static func run(
        _ inputs: [Tensor], wrt: [Int]? = nil, step: Double = 1e-6, tolerance: Tolerance = .gradCheck,
        projectionSeed: UInt64 = 0x5EED, _ f: ([Tensor]) -> Tensor
    ) -> Result {
        var result = Result()
        for (i, t) in inputs.enumerated() where t.dtype != .float64 || t.device != .reference {
            result.setupErrors.append(
                "input \(i) is \(t.dtype) on \(t.device); gradient checks need float64 on reference")
        }
        guard result.setupErrors.isEmpty else { return result }
        let checked = Set(wrt ?? Array(inputs.indices))
        let values = inputs.map { $0.toDoubles() }
        let shapes = inputs.map(\.shape)
        func build(_ values: [[Double]], recording: Bool) -> [Tensor] {
            values.indices.map { i in
                let t = Tensor(doubles: values[i], shape: shapes[i], dtype: .float64, device: .reference)
                t.requiresGrad = recording && checked.contains(i)
                return t
            }
        }

        // Autograd: one backward pass of L = Σ y ⊙ R.
        let leaves = build(values, recording: true)
        let y = f(leaves)
        let r = RandomGenerator(seed: projectionSeed).normal(y.count).map(Double.init)
        var analytic = shapes.map { [Double](repeating: 0, count: ShapeUtil.count($0)) }
        if y.requiresGrad {
            let loss = (y * Tensor(doubles: r, shape: y.shape)).sum()
            for (leaf, g) in loss.gradients() {
                guard let i = leaves.firstIndex(where: { $0 === leaf }) else { continue }
                if g.shape != shapes[i] {
                    result.setupErrors.append("gradient of input \(i) has shape \(g.shape), expected \(shapes[i])")
                }
                analytic[i] = g.toDoubles()
            }
        }
        guard result.setupErrors.isEmpty else { return result }

        // Central differences, one input element at a time.
        func objective(_ values: [[Double]]) -> Double {
            let out = withoutGradients { f(build(values, recording: false)) }.toDoubles()
            var s = 0.0
            for (a, b) in zip(out, r) { s += a * b }
            return s
        }
        var all: [Mismatch] = []
        var perturbed = values
        for i in inputs.indices where checked.contains(i) {
            for j in values[i].indices {
                perturbed[i][j] = values[i][j] + step
                let plus = objective(perturbed)
                perturbed[i][j] = values[i][j] - step
                let minus = objective(perturbed)
                perturbed[i][j] = values[i][j]
                let numeric = (plus - minus) / (2 * step)
                let a = analytic[i][j]
                let err = Swift.abs(a - numeric)
                let magnitude = Swift.max(Swift.abs(a), Swift.abs(numeric))
                result.checkedElements += 1
                result.maxAbsoluteError = Swift.max(result.maxAbsoluteError, err.isNaN ? .infinity : err)
                if magnitude > 0 { result.maxRelativeError = Swift.max(result.maxRelativeError, err / magnitude) }
                if !(err <= tolerance.atol + tolerance.rtol * magnitude) {
                    all.append(Mismatch(input: i, index: multiIndex(j, shapes[i]), analytic: a, numeric: numeric))
                }
            }
        }
        result.mismatchCount = all.count
        result.mismatches = Array(
            all.sorted { Swift.abs($0.analytic - $0.numeric) > Swift.abs($1.analytic - $1.numeric) }.prefix(8))
        return result
    }
}

/// Records an issue at the caller when autograd and central differences disagree for `f` at
/// `inputs` (see ``GradCheck/run(_:wrt:step:tolerance:projectionSeed:_:)``).
///
/// - Returns: the check's result, for further assertions.
@discardableResult
public func expectGradientsMatchFiniteDifferences(
    _ inputs: [Tensor], wrt: [Int]? = nil, step: Double = 1e-6, tolerance: Tolerance = .gradCheck,
    _ comment: String = "", sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
) -> GradCheck.Result {
    let result = GradCheck.run(inputs, wrt: wrt, step: step, tolerance: tolerance, f)
    if !result.passed {
        Issue.record("\(comment.isEmpty ? "" : comment + ": ")\(result) (\(tolerance))", sourceLocation: sourceLocation)
    }
    return result
}

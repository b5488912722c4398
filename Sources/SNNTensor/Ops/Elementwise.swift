import Foundation

/// Elementwise arithmetic, comparisons and functions with NumPy broadcasting.
///
/// Broadcasting is done with zero-stride views (``Tensor/expanded(to:)``), so backends only
/// see operands of equal shape; gradient rules sum back over the broadcast axes.

/// Brings two operands to their common shape and device, trapping with an `[op]` message.
func broadcastPair(_ a: Tensor, _ b: Tensor, op: String) -> (Tensor, Tensor) {
    precondition(a.device == b.device, "[\(op)] expected operands on one device, got \(a.device) and \(b.device)")
    precondition(a.dtype == b.dtype, "[\(op)] expected operands of one dtype, got \(a.dtype) and \(b.dtype)")
    guard let shape = ShapeUtil.broadcast(a.shape, b.shape) else {
        preconditionFailure("[\(op)] expected broadcastable shapes, got \(ShapeUtil.describe(a.shape)) and \(ShapeUtil.describe(b.shape))")
    }
    return (a.expanded(to: shape), b.expanded(to: shape))
}

extension Tensor {
    /// Sums a gradient of a broadcast shape back to `shape` (the inverse of broadcasting).
    func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        var axes = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let reduced = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return reduced.reshaped(target)
    }

    func unaryOp(_ op: UnaryOp) -> Tensor {
        precondition(dtype.isFloatingPoint, "[\(op.rawValue)] expected a floating-point tensor, got \(dtype)")
        return backend.unary(op, self)
    }
}

/// Applies a binary primitive with broadcasting and records its gradient rule.
func binaryOp(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
    let (x, y) = broadcastPair(a, b, op: op.rawValue)
    let out = x.backend.binary(op, x, y)
    // Rules that need the result capture a detached alias: capturing `out` itself would make
    // out -> node -> rule -> out a reference cycle that keeps the whole tape alive.
    let value = out.detached()
    let (sa, sb) = (a.shape, b.shape)
    switch op {
    case .add:
        return record("add", out, [a, b]) { g in [g.summed(toShape: sa), g.summed(toShape: sb)] }
    case .subtract:
        return record("subtract", out, [a, b]) { g in [g.summed(toShape: sa), (-g).summed(toShape: sb)] }
    case .multiply:
        // Each side's gradient needs the other operand only: save just that.
        let (keepY, keepX) = (a.requiresGrad ? y : nil, b.requiresGrad ? x : nil)
        return record("multiply", out, [a, b]) { g in
            [keepY.map { (g * $0).summed(toShape: sa) }, keepX.map { (g * $0).summed(toShape: sb) }]
        }
    case .divide:
        let (gradA, quotient) = (a.requiresGrad, b.requiresGrad ? value : nil)
        return record("divide", out, [a, b]) { g in
            [gradA ? (g / y).summed(toShape: sa) : nil, quotient.map { (-g * $0 / y).summed(toShape: sb) }]
        }
    case .maximum, .minimum:
        // The gradient goes to `a` where it wins or ties, else to `b` (like PyTorch's split
        // of ties would halve it; we keep the simpler, documented rule).
        return record(op.rawValue, out, [a, b]) { g in
            let takeA = op == .maximum ? x >= y : x <= y
            return [(g * takeA).summed(toShape: sa), (g * (1 - takeA)).summed(toShape: sb)]
        }
    case .power:
        let (gradA, result) = (a.requiresGrad, b.requiresGrad ? value : nil)
        return record("power", out, [a, b]) { g in
            [gradA ? (g * y * pow(x, y - 1)).summed(toShape: sa) : nil,
             result.map { (g * $0 * x.log()).summed(toShape: sb) }]
        }
    case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual:
        return out // piecewise constant: no gradient
    }
}

/// Applies a binary primitive to `x` and the immediate `s` (`op(x, s)`, or `op(s, x)` when
/// `scalarFirst`) and records its gradient rule; no tensor is made for the scalar.
func scalarOp(_ op: BinaryOp, _ x: Tensor, _ scalar: Double, scalarFirst: Bool = false) -> Tensor {
    let s = x.dtype.rounded(scalar)  // what a tensor operand of x's dtype would have held
    let out = x.backend.binary(op, x, scalar: s, scalarFirst: scalarFirst)
    let value = out.detached()  // detached: no cycle through the rule
    switch op {
    case .add:
        return record("add", out, [x]) { g in [g] }
    case .subtract:
        return record("subtract", out, [x]) { g in [scalarFirst ? -g : g] }
    case .multiply:
        return record("multiply", out, [x]) { g in [g * s] }
    case .divide:
        if !scalarFirst { return record("divide", out, [x]) { g in [g / s] } }
        let input = x.detached()
        return record("divide", out, [x]) { g in [-g * value / input] }
    case .maximum, .minimum:
        // x takes the gradient where it wins; a tie goes to the first operand.
        let input = x.detached()
        return record(op.rawValue, out, [x]) { g in
            let wins: Tensor
            switch (op == .maximum, scalarFirst) {
            case (true, false): wins = input >= s
            case (true, true): wins = input > s
            case (false, false): wins = input <= s
            case (false, true): wins = input < s
            }
            return [g * wins]
        }
    case .power:
        if scalarFirst {
            let logBase = Foundation.log(s)
            return record("power", out, [x]) { g in [g * value * logBase] }
        }
        let input = x.detached()
        return record("power", out, [x]) { g in [g * s * pow(input, s - 1)] }
    case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual:
        return out // piecewise constant: no gradient
    }
}

/// `a ** b` elementwise.
public func pow(_ a: Tensor, _ b: Tensor) -> Tensor { binaryOp(.power, a, b) }
/// `a ** b` elementwise.
public func pow(_ a: Tensor, _ b: Double) -> Tensor { scalarOp(.power, a, b) }
/// `a ** b` elementwise.
public func pow(_ a: Double, _ b: Tensor) -> Tensor { scalarOp(.power, b, a, scalarFirst: true) }
/// The larger of `a` and `b` elementwise.
public func maximum(_ a: Tensor, _ b: Tensor) -> Tensor { binaryOp(.maximum, a, b) }
/// The larger of `a` and `b` elementwise.
public func maximum(_ a: Tensor, _ b: Double) -> Tensor { scalarOp(.maximum, a, b) }
/// The smaller of `a` and `b` elementwise.
public func minimum(_ a: Tensor, _ b: Tensor) -> Tensor { binaryOp(.minimum, a, b) }
/// The smaller of `a` and `b` elementwise.
public func minimum(_ a: Tensor, _ b: Double) -> Tensor { scalarOp(.minimum, a, b) }

extension Tensor {
    /// A 0-d tensor of this tensor's dtype and device.
    public func like(_ value: Double) -> Tensor { Tensor.scalar(value, dtype: dtype, device: device) }

    public static func + (a: Tensor, b: Tensor) -> Tensor { binaryOp(.add, a, b) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { binaryOp(.subtract, a, b) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { binaryOp(.multiply, a, b) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { binaryOp(.divide, a, b) }
    public static func + (a: Tensor, b: Double) -> Tensor { scalarOp(.add, a, b) }
    public static func - (a: Tensor, b: Double) -> Tensor { scalarOp(.subtract, a, b) }
    public static func * (a: Tensor, b: Double) -> Tensor { scalarOp(.multiply, a, b) }
    public static func / (a: Tensor, b: Double) -> Tensor { scalarOp(.divide, a, b) }
    public static func + (a: Double, b: Tensor) -> Tensor { scalarOp(.add, b, a, scalarFirst: true) }
    public static func - (a: Double, b: Tensor) -> Tensor { scalarOp(.subtract, b, a, scalarFirst: true) }
    public static func * (a: Double, b: Tensor) -> Tensor { scalarOp(.multiply, b, a, scalarFirst: true) }
    public static func / (a: Double, b: Tensor) -> Tensor { scalarOp(.divide, b, a, scalarFirst: true) }
    public static prefix func - (a: Tensor) -> Tensor {
        record("negate", a.unaryOp(.negate), [a]) { g in [-g] }
    }

    public static func == (a: Tensor, b: Tensor) -> Tensor { binaryOp(.equal, a, b) }
    public static func != (a: Tensor, b: Tensor) -> Tensor { binaryOp(.notEqual, a, b) }
    public static func < (a: Tensor, b: Tensor) -> Tensor { binaryOp(.less, a, b) }
    public static func <= (a: Tensor, b: Tensor) -> Tensor { binaryOp(.lessEqual, a, b) }
    public static func > (a: Tensor, b: Tensor) -> Tensor { binaryOp(.greater, a, b) }
    public static func >= (a: Tensor, b: Tensor) -> Tensor { binaryOp(.greaterEqual, a, b) }
    public static func == (a: Tensor, b: Double) -> Tensor { scalarOp(.equal, a, b) }
    public static func != (a: Tensor, b: Double) -> Tensor { scalarOp(.notEqual, a, b) }
    public static func < (a: Tensor, b: Double) -> Tensor { scalarOp(.less, a, b) }
    public static func <= (a: Tensor, b: Double) -> Tensor { scalarOp(.lessEqual, a, b) }
    public static func > (a: Tensor, b: Double) -> Tensor { scalarOp(.greater, a, b) }
    public static func >= (a: Tensor, b: Double) -> Tensor { scalarOp(.greaterEqual, a, b) }

    /// `e^x`.
    public func exp() -> Tensor {
        let out = unaryOp(.exp), value = out.detached()  // detached: no cycle through the rule
        return record("exp", out, [self]) { g in [g * value] }
    }

    /// The natural logarithm.
    public func log() -> Tensor {
        record("log", unaryOp(.log), [self]) { g in [g / self] }
    }

    /// `|x|`; its gradient at 0 is 0 (`sign(0) = 0`), as in PyTorch.
    public func abs() -> Tensor {
        record("abs", unaryOp(.abs), [self]) { g in [g * self.sign()] }
    }

    /// -1, 0 or 1; zero gradient.
    public func sign() -> Tensor { unaryOp(.sign) }

    /// `√x`.
    public func sqrt() -> Tensor {
        let out = unaryOp(.sqrt), value = out.detached()
        return record("sqrt", out, [self]) { g in [g / (value * 2)] }
    }

    /// `x²`.
    public func square() -> Tensor {
        record("square", unaryOp(.square), [self]) { g in [g * self * 2] }
    }

    /// `1 / (1 + e^{-x})`.
    public func sigmoid() -> Tensor {
        let out = unaryOp(.sigmoid), value = out.detached()
        return record("sigmoid", out, [self]) { g in [g * value * (1 - value)] }
    }

    /// `max(x, 0)`; gradient 1 where `x > 0`.
    public func relu() -> Tensor {
        record("relu", unaryOp(.relu), [self]) { g in [g * (self > 0)] }
    }

    /// `min(max(x, low), high)`; the gradient passes where `low ≤ x ≤ high`.
    public func clamped(min low: Double = -.infinity, max high: Double = .infinity) -> Tensor {
        precondition(low <= high, "[clamp] expected low <= high, got \(low) > \(high)")
        return record("clamp", backend.clamp(self, low: low, high: high), [self]) { g in
            [g * (self >= low) * (self <= high)]
        }
    }
}

/// `condition ? a : b` elementwise with broadcasting; `condition` is nonzero for true.
public func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
    let (x, y) = broadcastPair(a, b, op: "where")
    guard let shape = ShapeUtil.broadcast(condition.shape, x.shape) else {
        preconditionFailure("[where] expected a condition broadcastable to \(ShapeUtil.describe(x.shape)), got \(ShapeUtil.describe(condition.shape))")
    }
    let c = condition.converted(to: x.dtype).expanded(to: shape)
    let (xe, ye) = (x.expanded(to: shape), y.expanded(to: shape))
    let out = xe.backend.select(c, xe, ye)
    let (sa, sb) = (a.shape, b.shape)
    return record("where", out, [a, b]) { g in
        let zero = g.like(0)
        return [`where`(c, g, zero).summed(toShape: sa), `where`(c, zero, g).summed(toShape: sb)]
    }
}

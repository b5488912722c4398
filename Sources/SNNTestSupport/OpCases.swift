import SNNTensor

// Op cases shared by the gradient checks (SNNTensorTests) and the device parity tests
// (SNNCPUTests), so each numeric test is written once and run on every backend.

/// Two operand shapes that broadcast together.
public struct ShapePair: Sendable, CustomStringConvertible {
    public let a: [Int], b: [Int]
    public init(_ a: [Int], _ b: [Int]) { (self.a, self.b) = (a, b) }
    public var description: String { "\(a) with \(b)" }
}

/// The differentiable binary ops, with inputs chosen where each is smooth.
public enum BinaryCase: String, CaseIterable, Sendable, CustomStringConvertible {
    case add, subtract, multiply, divide, maximum, minimum, power

    public var description: String { rawValue }

    public func apply(_ a: Tensor, _ b: Tensor) -> Tensor {
        switch self {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .divide: return a / b
        case .maximum: return SNNTensor.maximum(a, b)
        case .minimum: return SNNTensor.minimum(a, b)
        case .power: return pow(a, b)
        }
    }

    /// Float64 inputs on the reference backend where the op is smooth: divisors in [0.5, 2),
    /// power bases in [0.5, 2), and never-tied operands for maximum and minimum.
    public func inputs(_ pair: ShapePair, _ r: RandomInputs) -> [Tensor] {
        switch self {
        case .add, .subtract, .multiply: return [r.normal(pair.a), r.normal(pair.b)]
        case .divide: return [r.normal(pair.a), r.uniform(pair.b, low: 0.5, high: 2)]
        // a = 0.2k - 1 and b = 0.2m - 0.9 differ by at least 0.1: never tied.
        case .maximum, .minimum:
            return [r.distinct(pair.a, spacing: 0.2, offset: -1), r.distinct(pair.b, spacing: 0.2, offset: -0.9)]
        case .power: return [r.uniform(pair.a, low: 0.5, high: 2), r.normal(pair.b)]
        }
    }
}

/// The differentiable unary ops and scalar forms, each with inputs away from its kinks and poles.
public enum UnaryCase: String, CaseIterable, Sendable, CustomStringConvertible {
    case negate, exp, log, abs, sqrt, square, sigmoid, relu, clamp, clampBelow, clampAbove
    case addScalar, scalarSubtract, multiplyScalar, scalarDivide, divideScalar, powScalar
    case scalarAdd, subtractScalar, scalarMultiply, scalarPow, maximumScalar, minimumScalar

    public var description: String { rawValue }

    public func apply(_ x: Tensor) -> Tensor {
        switch self {
        case .negate: return -x
        case .exp: return x.exp()
        case .log: return x.log()
        case .abs: return x.abs()
        case .sqrt: return x.sqrt()
        case .square: return x.square()
        case .sigmoid: return x.sigmoid()
        case .relu: return x.relu()
        case .clamp: return x.clamped(min: -0.5, max: 0.7)
        case .clampBelow: return x.clamped(min: -0.3)
        case .clampAbove: return x.clamped(max: 0.4)
        case .addScalar: return x + 2.5
        case .scalarSubtract: return 1.5 - x
        case .multiplyScalar: return x * -3
        case .scalarDivide: return 2 / x
        case .divideScalar: return x / 4
        case .powScalar: return pow(x, 3)
        case .scalarAdd: return -0.75 + x
        case .subtractScalar: return x - 0.3
        case .scalarMultiply: return 1.25 * x
        case .scalarPow: return pow(1.7, x)
        case .maximumScalar: return SNNTensor.maximum(x, 0.2)
        case .minimumScalar: return SNNTensor.minimum(x, -0.1)
        }
    }

    /// A float64 input on the reference backend in the op's smooth domain.
    public func input(_ shape: [Int], _ r: RandomInputs) -> Tensor {
        switch self {
        case .log, .sqrt, .scalarDivide: return r.uniform(shape, low: 0.5, high: 2)
        case .abs, .relu: return r.awayFromKinks(shape, kinks: [0])
        case .clamp: return r.awayFromKinks(shape, kinks: [-0.5, 0.7])
        case .clampBelow: return r.awayFromKinks(shape, kinks: [-0.3])
        case .clampAbove: return r.awayFromKinks(shape, kinks: [0.4])
        case .maximumScalar: return r.awayFromKinks(shape, kinks: [0.2])
        case .minimumScalar: return r.awayFromKinks(shape, kinks: [-0.1])
        default: return r.normal(shape)
        }
    }
}

/// One convolution problem: input `[N, C, H, W]`, weight `[O, C/g, kh, kw]` and parameters.
public struct ConvCase: Sendable, CustomStringConvertible {
    public let input: [Int], weight: [Int]
    public var stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int), groups: Int
    public var bias: Bool

    public init(
        input: [Int], weight: [Int], stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
        dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true
    ) {
        (self.input, self.weight, self.stride, self.padding, self.dilation) = (input, weight, stride, padding, dilation)
        (self.groups, self.bias) = (groups, bias)
    }

    public var description: String {
        "x\(input) w\(weight) s\(stride) p\(padding) d\(dilation) g\(groups)\(bias ? " bias" : "")"
    }

    /// `conv2d` of `[x, weight]` or `[x, weight, bias]`.
    public func apply(_ t: [Tensor]) -> Tensor {
        conv2d(
            t[0], weight: t[1], bias: bias ? t[2] : nil, stride: stride, padding: padding, dilation: dilation,
            groups: groups)
    }

    /// Float64 normal inputs on the reference backend.
    public func inputs(_ r: RandomInputs) -> [Tensor] {
        [r.normal(input), r.normal(weight)] + (bias ? [r.normal([weight[0]])] : [])
    }
}

/// One pooling problem.
public struct PoolCase: Sendable, CustomStringConvertible {
    public let kind: Pool2dParameters.Kind
    public let input: [Int]
    public let kernel: (Int, Int)
    public var stride: (Int, Int)?
    public var padding: (Int, Int)

    public init(
        kind: Pool2dParameters.Kind, input: [Int], kernel: (Int, Int), stride: (Int, Int)? = nil,
        padding: (Int, Int) = (0, 0)
    ) {
        (self.kind, self.input, self.kernel, self.stride, self.padding) = (kind, input, kernel, stride, padding)
    }

    public var description: String { "\(kind) x\(input) k\(kernel) s\(stride.map { "\($0)" } ?? "=k") p\(padding)" }

    public func apply(_ x: Tensor) -> Tensor {
        switch kind {
        case .max: return maxPool2d(x, kernel: kernel, stride: stride, padding: padding)
        case .average: return avgPool2d(x, kernel: kernel, stride: stride, padding: padding)
        }
    }
}

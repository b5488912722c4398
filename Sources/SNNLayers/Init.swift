import Foundation
import SNNTensor

/// Weight initialisation schemes (PyTorch's formulas, drawn from SwiftSNN's seeded generator).
public enum Init {
    /// `fan_in` and `fan_out` of a `[out, in, kh, kw]` or `[out, in]` weight.
    public static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        precondition(shape.count >= 2, "[init] expected a weight of rank >= 2, got \(ShapeUtil.describe(shape))")
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// Kaiming-normal with the ReLU gain: `N(0, 2/fan)`, fan-out mode by default (the reference's
    /// conv init).
    public static func kaimingNormal(_ shape: [Int], fanOut: Bool = true, generator: RandomGenerator, device: Device) -> Tensor {
        let f = fans(shape)
        let std = (2.0 / Double(fanOut ? f.fanOut : f.fanIn)).squareRoot()
        return Tensor.normal(shape, std: std, generator: generator, device: device)
    }

    /// PyTorch's default for `Linear` and `Conv2d` weights: Kaiming-uniform with `a = √5`,
    /// i.e. `U(-b, b)` with `b = 1/√fan_in`.
    public static func kaimingUniformDefault(_ shape: [Int], generator: RandomGenerator, device: Device) -> Tensor {
        let bound = 1 / Double(fans(shape).fanIn).squareRoot()
        return Tensor.uniform(shape, low: -bound, high: bound, generator: generator, device: device)
    }

    /// PyTorch's default bias: `U(-1/√fan_in, 1/√fan_in)`.
    public static func defaultBias(_ count: Int, fanIn: Int, generator: RandomGenerator, device: Device) -> Tensor {
        let bound = 1 / Double(fanIn).squareRoot()
        return Tensor.uniform([count], low: -bound, high: bound, generator: generator, device: device)
    }
}

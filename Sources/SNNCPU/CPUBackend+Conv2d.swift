import SNNTensor

// STUB: delegates to the reference backend until oneDNN lands.
extension CPUBackend {
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters) -> Tensor { reference.conv2d(x, weight: weight, bias: bias, p) }
    public func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters) -> Tensor {
        reference.conv2dBackwardData(gradOutput, weight: weight, inputShape: inputShape, p)
    }
    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                                     _ p: Conv2dParameters) -> (weight: Tensor, bias: Tensor?) {
        reference.conv2dBackwardWeight(gradOutput, input: input, weightShape: weightShape, withBias: withBias, p)
    }
}

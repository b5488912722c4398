import SNNTensor

// STUB: delegates to the reference backend until oneDNN lands.
extension CPUBackend {
    public func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor { reference.pool2d(x, p) }
    public func pool2dBackward(_ gradOutput: Tensor, input: Tensor, output: Tensor, _ p: Pool2dParameters) -> Tensor {
        reference.pool2dBackward(gradOutput, input: input, output: output, p)
    }
}

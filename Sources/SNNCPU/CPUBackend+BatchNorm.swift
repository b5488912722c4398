import SNNTensor

// STUB: delegates to the reference backend until oneDNN lands.
extension CPUBackend {
    public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                          epsilon: Double, training: Bool) -> (output: Tensor, mean: Tensor, variance: Tensor) {
        reference.batchNorm(x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, epsilon: epsilon, training: training)
    }
    public func batchNormBackward(_ gradOutput: Tensor, input: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor,
                                  epsilon: Double) -> (input: Tensor, gamma: Tensor, beta: Tensor) {
        reference.batchNormBackward(gradOutput, input: input, gamma: gamma, mean: mean, variance: variance, epsilon: epsilon)
    }
}

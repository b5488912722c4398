import SNNTensor

/// The fused optimiser step (`optimizer.cu`): one kernel over the flat parameter buffer.
extension CUDABackend: FusedOptimizerBackend {
    public func optimizerStep(_ rule: FusedOptimizerRule, parameters: Tensor, gradients: Tensor, state1: Tensor, state2: Tensor?) {
        precondition([parameters, gradients, state1].allSatisfy { $0.shape == parameters.shape && $0.isContiguous }
                     && state2.map { $0.shape == parameters.shape && $0.isContiguous } ?? true,
                     "[optimizerStep] expected contiguous buffers of one shape")
        // kind, lr, weight decay, β1, β2 (RMSprop: α), ε, momentum, c1, √c2 as the kernel takes them.
        let (kind, lr, decay): (Int32, Double, Double)
        var (beta1, beta2, epsilon, momentum, c1, sqrtC2) = (0.0, 0.0, 0.0, 0.0, 1.0, 1.0)
        switch rule {
        case let .sgd(learningRate, weightDecay, m):
            (kind, lr, decay, momentum) = (0, learningRate, weightDecay, m)
        case let .adam(learningRate, weightDecay, b1, b2, eps, bias1, bias2, decoupled):
            (kind, lr, decay) = (decoupled ? 2 : 1, learningRate, weightDecay)
            (beta1, beta2, epsilon, c1, sqrtC2) = (b1, b2, eps, bias1, bias2.squareRoot())
        case let .rmsprop(learningRate, weightDecay, a, eps):
            (kind, lr, decay, beta2, epsilon) = (3, learningRate, weightDecay, a, eps)
        }
        guard parameters.count > 0 else { return }
        launch("snn_optimizer_step", elements: parameters.count,
               [arg(parameters), arg(gradients), arg(state1), arg(state2), .int64(Int64(parameters.count)), .int32(kind),
                .float(Float(lr)), .float(Float(decay)), .float(Float(beta1)), .float(Float(beta2)), .float(Float(1 - beta1)),
                .float(Float(1 - beta2)), .float(Float(epsilon)), .float(Float(momentum)), .float(Float(c1)), .float(Float(sqrtC2))])
    }
}

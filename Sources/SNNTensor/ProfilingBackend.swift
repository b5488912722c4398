/// A backend that forwards every primitive to another and times it under a category
/// (see ``Profiler``): `snn bench train` runs through one to report where a step's time goes.
public final class ProfilingBackend: Backend, @unchecked Sendable {
    public let inner: any Backend
    public var device: Device { inner.device }
    /// Whether each primitive waits for the device before its time is taken: a device that
    /// queues work (a GPU) would otherwise book its time to whichever primitive waits next.
    public let synchronizing: Bool

    public init(wrapping inner: any Backend, synchronizing: Bool = false) {
        self.inner = inner
        self.synchronizing = synchronizing
    }

    private func time<R>(_ category: String, generic: Bool = false, _ body: () -> R) -> R {
        Profiler.measure(category, generic: generic) {
            let result = body()
            if synchronizing { try? inner.synchronize() }
            return result
        }
    }

    public func allocate(_ shape: [Int], dtype: DType) throws(DeviceError) -> Tensor { try inner.allocate(shape, dtype: dtype) }
    public func fill(_ x: Tensor, with value: Double) { time("copies", generic: true) { inner.fill(x, with: value) } }
    public func copy(_ source: Tensor, into destination: Tensor) {
        time("copies", generic: true) { inner.copy(source, into: destination) }
    }
    public func upload(_ bytes: UnsafeRawBufferPointer, into x: Tensor) { time("copies", generic: true) { inner.upload(bytes, into: x) } }
    public func download(_ x: Tensor, into bytes: UnsafeMutableRawBufferPointer) {
        time("copies", generic: true) { inner.download(x, into: bytes) }
    }
    public func random(_ distribution: RandomDistribution, into x: Tensor, seed: UInt64, counter: UInt64) {
        time("random", generic: true) { inner.random(distribution, into: x, seed: seed, counter: counter) }
    }
    public func synchronize() throws(DeviceError) { try inner.synchronize() }
    public func contiguous(_ x: Tensor) -> Tensor { time("copies", generic: true) { inner.contiguous(x) } }
    public func cast(_ x: Tensor, to dtype: DType) -> Tensor { time("copies", generic: true) { inner.cast(x, to: dtype) } }
    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor { time("elementwise", generic: true) { inner.unary(op, x) } }
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        time("elementwise", generic: true) { inner.binary(op, a, b) }
    }
    public func binary(_ op: BinaryOp, _ x: Tensor, scalar s: Double, scalarFirst: Bool) -> Tensor {
        time("elementwise", generic: true) { inner.binary(op, x, scalar: s, scalarFirst: scalarFirst) }
    }
    public func clamp(_ x: Tensor, low: Double, high: Double) -> Tensor {
        time("elementwise", generic: true) { inner.clamp(x, low: low, high: high) }
    }
    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        time("elementwise", generic: true) { inner.select(condition, a, b) }
    }
    public func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int]) -> Tensor {
        time("reductions", generic: true) { inner.reduce(op, x, axes: axes) }
    }
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        time("gemm", generic: true) { inner.matmul(a, b, transposeA: transposeA, transposeB: transposeB) }
    }
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters) -> Tensor {
        time("conv forward") { inner.conv2d(x, weight: weight, bias: bias, p) }
    }
    public func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters) -> Tensor {
        time("conv backward-data") { inner.conv2dBackwardData(gradOutput, weight: weight, inputShape: inputShape, p) }
    }
    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                                     _ p: Conv2dParameters) -> (weight: Tensor, bias: Tensor?) {
        time("conv backward-weights") {
            inner.conv2dBackwardWeight(gradOutput, input: input, weightShape: weightShape, withBias: withBias, p)
        }
    }
    public func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor { time("pooling") { inner.pool2d(x, p) } }
    public func pool2dBackward(_ gradOutput: Tensor, inputShape: [Int], input: Tensor?, _ p: Pool2dParameters) -> Tensor {
        time("pooling") { inner.pool2dBackward(gradOutput, inputShape: inputShape, input: input, p) }
    }
    public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                          epsilon: Double, training: Bool) -> (output: Tensor, mean: Tensor, variance: Tensor) {
        time("batch norm") {
            inner.batchNorm(x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                            epsilon: epsilon, training: training)
        }
    }
    public func batchNormBackward(_ gradOutput: Tensor, input: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor,
                                  epsilon: Double) -> (input: Tensor, gamma: Tensor, beta: Tensor) {
        time("batch norm") {
            inner.batchNormBackward(gradOutput, input: input, gamma: gamma, mean: mean, variance: variance, epsilon: epsilon)
        }
    }
    public func neuronScan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, saved: any SavedState) {
        time("neuron") { inner.neuronScan(x, neuron) }
    }
    public func neuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState) -> Tensor {
        time("neuron") { inner.neuronScanBackward(gradSpikes, saved: saved) }
    }
    public func batchNormStatistics(_ x: Tensor) -> (mean: Tensor, variance: Tensor) {
        time("batch norm") { inner.batchNormStatistics(x) }
    }
    public func batchNormNeuronScan(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                                    residual: Tensor?, steps: Int, _ neuron: NeuronParameters)
        -> (spikes: Tensor, saved: any SavedState) {
        time("neuron") {
            inner.batchNormNeuronScan(x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon,
                                      residual: residual, steps: steps, neuron)
        }
    }
    public func batchNormNeuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState)
        -> (input: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor?) {
        time("neuron") { inner.batchNormNeuronScanBackward(gradSpikes, saved: saved) }
    }
    public func surrogateGradient(_ u: Tensor, _ surrogate: Surrogate) -> Tensor {
        time("neuron") { inner.surrogateGradient(u, surrogate) }
    }
    public func oneHot(_ labels: Tensor, classes: Int, dtype: DType) -> Tensor {
        time("elementwise", generic: true) { inner.oneHot(labels, classes: classes, dtype: dtype) }
    }
    public func trtRegularizer(_ weights: [Tensor], lambda: Double, coefficients: [Double], epsilon: Double)
        -> (value: Tensor, gradients: [Tensor]) {
        time("TRT regulariser") { inner.trtRegularizer(weights, lambda: lambda, coefficients: coefficients, epsilon: epsilon) }
    }
}

extension ProfilingBackend: FusedOptimizerBackend {
    public var fusesOptimizerSteps: Bool { (inner as? any FusedOptimizerBackend)?.fusesOptimizerSteps ?? false }

    public func optimizerStep(_ rule: FusedOptimizerRule, parameters: Tensor, gradients: Tensor, state1: Tensor, state2: Tensor?) {
        guard let fused = inner as? any FusedOptimizerBackend else {
            preconditionFailure("[optimizerStep] \(type(of: inner)) has no fused optimiser step")
        }
        time("optimizer") { fused.optimizerStep(rule, parameters: parameters, gradients: gradients, state1: state1, state2: state2) }
    }
}

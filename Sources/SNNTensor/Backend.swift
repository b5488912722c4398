/// One method per primitive. Front-end ops (in `Ops/`) validate arguments, infer shapes and
/// hold the gradient rules; a backend only evaluates.
///
/// Conventions: inputs may be strided views (elementwise ops must honour `strides`, including
/// the zero strides of broadcast views) unless a method says "contiguous"; outputs are new
/// contiguous tensors on the backend's device with the dtype of the first input. No method
/// records autograd history.
///
/// Memory belongs to the device: every tensor's storage comes from its backend's
/// ``allocate(_:dtype:)``, and values enter and leave a device only through ``fill(_:with:)``,
/// ``copy(_:into:)``, ``upload(_:into:)``, ``download(_:into:)`` and ``random(_:into:seed:counter:)``,
/// so front-end code never dereferences a tensor's memory. Work may be queued;
/// ``synchronize()`` is the point where it is done and where a failure it met is thrown.
public protocol Backend: AnyObject, Sendable {
    /// The device this backend computes on.
    var device: Device { get }

    // MARK: Memory

    /// A new contiguous tensor on this device whose elements the caller writes before reading.
    /// Throws ``DeviceError/outOfMemory(device:bytes:held:)`` when the device cannot hold it.
    func allocate(_ shape: [Int], dtype: DType) throws(DeviceError) -> Tensor
    /// Sets every element of `x` (on this device, any strides) to `value`, rounded to its dtype.
    func fill(_ x: Tensor, with value: Double)
    /// Copies `source` into `destination` element by element (equal shapes, any strides on
    /// either side), converting to the destination's dtype. One of the two is on this device;
    /// the other is on this device or in host memory (``Device/isHostMemory``): this is how
    /// tensors move between devices.
    func copy(_ source: Tensor, into destination: Tensor)
    /// Copies `bytes` (host memory, the dtype's representation in row-major order) into the
    /// contiguous `x` on this device.
    func upload(_ bytes: UnsafeRawBufferPointer, into x: Tensor)
    /// Copies the contiguous `x` on this device into `bytes` (host memory).
    func download(_ x: Tensor, into bytes: UnsafeMutableRawBufferPointer)
    /// Fills the contiguous floating-point `x` with draws from `distribution` on the Philox
    /// stream `seed` starting at word `counter` (``RandomDistribution/wordsPerElement`` words per
    /// element, element `i` from words `counter + i·w ...`): the same numbers on every device and
    /// for any thread count.
    func random(_ distribution: RandomDistribution, into x: Tensor, seed: UInt64, counter: UInt64)
    /// Waits until the work queued on this device is done; throws a failure it met.
    func synchronize() throws(DeviceError)

    /// A contiguous copy of a strided view.
    func contiguous(_ x: Tensor) -> Tensor
    /// A copy converted to another dtype. Floats become integers truncated toward zero and
    /// saturated to the integer type's range, NaN becoming 0
    /// (``Swift/FixedWidthInteger/init(truncatingSaturating:)``).
    func cast(_ x: Tensor, to dtype: DType) -> Tensor

    /// `op(x)` elementwise.
    func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor
    /// `op(a, b)` elementwise; `a` and `b` have equal shapes (broadcasting is done by views).
    func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor
    /// `op(x, s)`, or `op(s, x)` when `scalarFirst`, elementwise with the immediate `s` (rounded
    /// to `x`'s dtype first, as a tensor operand would be); no tensor holds the scalar.
    func binary(_ op: BinaryOp, _ x: Tensor, scalar s: Double, scalarFirst: Bool) -> Tensor
    /// `min(max(x, low), high)` elementwise.
    func clamp(_ x: Tensor, low: Double, high: Double) -> Tensor
    /// `condition != 0 ? a : b` elementwise; all three have equal shapes.
    func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor
    /// Reduces over `axes` (sorted, non-empty), keeping them as size-1 dimensions.
    func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int]) -> Tensor

    /// `op(A) · op(B)` for contiguous 2-D `a`, `b`.
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor

    /// Convolution `[N, C, H, W] ⋆ [O, C/g, kh, kw] (+ bias [O]) -> [N, O, Ho, Wo]`; contiguous.
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters) -> Tensor
    /// The gradient of `conv2d` with respect to its input.
    func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters) -> Tensor
    /// The gradients of `conv2d` with respect to weight and (when `withBias`) bias.
    func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                              _ p: Conv2dParameters) -> (weight: Tensor, bias: Tensor?)

    /// Max or average pooling `[N, C, H, W] -> [N, C, Ho, Wo]`; contiguous.
    func pool2d(_ x: Tensor, _ p: Pool2dParameters) -> Tensor
    /// The gradient of `pool2d` with respect to its input of shape `inputShape`. Max pooling
    /// needs the forward `input` (it recomputes where each window's maximum sits); average
    /// pooling needs only the shape and may get `nil`.
    func pool2dBackward(_ gradOutput: Tensor, inputShape: [Int], input: Tensor?, _ p: Pool2dParameters) -> Tensor

    /// Batch normalisation of `[N, C, ...]` over every axis but 1; contiguous.
    ///
    /// In training mode it normalises with the batch statistics, returns them (mean and
    /// biased variance, `[C]`) and does not touch the running statistics; in eval mode it uses
    /// `runningMean`/`runningVar` and returns them as the statistics.
    func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                   epsilon: Double, training: Bool) -> (output: Tensor, mean: Tensor, variance: Tensor)
    /// Gradients of training-mode batch norm with respect to input, γ and β.
    func batchNormBackward(_ gradOutput: Tensor, input: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor,
                           epsilon: Double) -> (input: Tensor, gamma: Tensor, beta: Tensor)

    /// The fused multi-step neuron over `[T, ...]`: returns the spikes (contiguous) and what
    /// the backward pass needs, in a form this backend chooses.
    func neuronScan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, saved: any SavedState)
    /// The gradient of `neuronScan` with respect to its input, from the state it saved.
    func neuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState) -> Tensor
    /// The batch mean and biased variance `[C]` of `[N, C, ...]` over every axis but 1 (what
    /// training-mode batch norm normalises with), without normalising.
    func batchNormStatistics(_ x: Tensor) -> (mean: Tensor, variance: Tensor)
    /// Training-mode batch norm of `x` `[T·N, C, ...]` (time-major frames) with the given batch
    /// statistics, plus `residual` (same shape) when given, followed by the LIF scan over T;
    /// returns the spikes (contiguous) and what the backward pass needs, in a form this backend
    /// chooses. The neuron's input is `x·a_c + b_c (+ r)` with `a = γ/√(σ²+ε)` and `b = β − μ·a`,
    /// computed the same way by the backward pass; neither it nor the potentials need be kept.
    func batchNormNeuronScan(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                             residual: Tensor?, steps: Int, _ neuron: NeuronParameters) -> (spikes: Tensor, saved: any SavedState)
    /// The gradients of ``batchNormNeuronScan(_:gamma:beta:mean:variance:epsilon:residual:steps:_:)``
    /// with respect to `x`, γ, β (batch norm in training mode: the statistics depend on `x`) and
    /// the residual (when there was one), from `dL/ds` and the state the forward pass saved; the
    /// neuron's input and potentials are recomputed exactly as the forward pass computed them.
    func batchNormNeuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState)
        -> (input: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor?)
    /// The surrogate derivative `g(u)` elementwise.
    func surrogateGradient(_ u: Tensor, _ surrogate: Surrogate) -> Tensor

    /// `[N]` integer labels to `[N, classes]` one-hot rows of the given float dtype.
    func oneHot(_ labels: Tensor, classes: Int, dtype: DType) -> Tensor

    /// The TRT weight penalty summed over timesteps, and its gradient, in one pass over the
    /// weights (TRT-SPEC.md §3).
    ///
    /// With `c_t = coefficients[t]`, the value is
    /// `Σ_t Σ_W Σ_elements λ W² / (1 + c_t(|W| + ε))` and the gradient of weight `W` is
    /// `Σ_t λ [2W (1 + c_t(|W|+ε)) - W² c_t sign(W)] / (1 + c_t(|W|+ε))²`, with `sign(0) = 0`.
    ///
    /// - Parameters:
    ///   - weights: tensors of one floating-point dtype on this backend's device (any shapes,
    ///     possibly strided views).
    ///   - lambda: the strength `λ`.
    ///   - coefficients: `c_t` for every timestep, at least one.
    ///   - epsilon: `ε`.
    /// - Returns: the value as a 0-d tensor and one contiguous gradient per weight, all of the
    ///   weights' dtype on the device. The summation order depends only on the shapes.
    func trtRegularizer(_ weights: [Tensor], lambda: Double, coefficients: [Double], epsilon: Double)
        -> (value: Tensor, gradients: [Tensor])
}

/// A backend that updates parameters with one fused kernel (the GPU): what an optimiser step
/// over flat buffers calls instead of its composite of elementwise ops, with the same
/// arithmetic per element (PyTorch's rules, as `SNNTraining`'s `Optimizer`).
public protocol FusedOptimizerBackend: Backend {
    /// Updates the contiguous float32 `parameters` (and the state buffers) in place from
    /// `gradients`, all of one shape on this device.
    ///
    /// - Parameters:
    ///   - rule: the update rule with its hyperparameters.
    ///   - state1: SGD's momentum buffer, Adam's and AdamW's first moment, RMSprop's square
    ///     average.
    ///   - state2: Adam's and AdamW's second moment (`nil` otherwise).
    func optimizerStep(_ rule: FusedOptimizerRule, parameters: Tensor, gradients: Tensor, state1: Tensor, state2: Tensor?)
    /// Whether ``optimizerStep(_:parameters:gradients:state1:state2:)`` is there to call (a
    /// wrapper such as ``ProfilingBackend`` has it only when what it wraps does).
    var fusesOptimizerSteps: Bool { get }
}

extension FusedOptimizerBackend {
    public var fusesOptimizerSteps: Bool { true }
}

/// One optimiser update's rule and scalars (the host computes the step's scalars, so the
/// update reads nothing back).
public enum FusedOptimizerRule: Sendable {
    /// SGD with momentum: `buf = buf·momentum + g`, `p −= lr·buf` (`g` includes `weightDecay·p`).
    case sgd(learningRate: Double, weightDecay: Double, momentum: Double)
    /// Adam (`decoupled`: AdamW) with the bias corrections `c1 = 1 − β1^t`, `c2 = 1 − β2^t`.
    case adam(learningRate: Double, weightDecay: Double, beta1: Double, beta2: Double, epsilon: Double, c1: Double, c2: Double,
              decoupled: Bool)
    /// RMSprop: `v = v·α + g²(1 − α)`, `p −= lr·g/(√v + ε)`.
    case rmsprop(learningRate: Double, weightDecay: Double, alpha: Double, epsilon: Double)
}

/// Elementwise functions of one tensor.
public enum UnaryOp: String, Sendable, CaseIterable {
    case negate, exp, log, abs, sign, sigmoid, relu, sqrt, square, reciprocal
}

/// Elementwise functions of two tensors. Comparisons return 1 or 0 in the input dtype.
public enum BinaryOp: String, Sendable, CaseIterable {
    case add, subtract, multiply, divide, maximum, minimum, power
    case equal, notEqual, less, lessEqual, greater, greaterEqual
}

/// Reductions over axes.
public enum ReduceOp: String, Sendable, CaseIterable {
    case sum, max
}

/// Stride, padding, dilation and groups of a 2-D convolution.
public struct Conv2dParameters: Hashable, Sendable {
    public var stride: (Int, Int) { (strideH, strideW) }
    public let strideH: Int, strideW: Int
    public let padH: Int, padW: Int
    public let dilationH: Int, dilationW: Int
    public let groups: Int

    public init(stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) {
        precondition(stride.0 > 0 && stride.1 > 0, "[conv2d] expected positive strides, got \(stride)")
        precondition(padding.0 >= 0 && padding.1 >= 0, "[conv2d] expected non-negative padding, got \(padding)")
        precondition(dilation.0 > 0 && dilation.1 > 0, "[conv2d] expected positive dilation, got \(dilation)")
        precondition(groups > 0, "[conv2d] expected positive groups, got \(groups)")
        (strideH, strideW) = stride
        (padH, padW) = padding
        (dilationH, dilationW) = dilation
        self.groups = groups
    }

    /// The output size along one axis.
    public static func outputSize(_ input: Int, kernel: Int, stride: Int, padding: Int, dilation: Int) -> Int {
        (input + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
    }
}

/// The kind, window, stride and padding of a 2-D pooling.
public struct Pool2dParameters: Hashable, Sendable {
    public enum Kind: String, Sendable { case max, average }
    public let kind: Kind
    public let kernelH: Int, kernelW: Int
    public let strideH: Int, strideW: Int
    public let padH: Int, padW: Int

    /// Average pooling counts padded zeros in the divisor (PyTorch's `count_include_pad=True`);
    /// max pooling sends the gradient to the first maximum of each window.
    public init(_ kind: Kind, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) {
        let s = stride ?? kernel
        precondition(kernel.0 > 0 && kernel.1 > 0 && s.0 > 0 && s.1 > 0, "[pool2d] expected positive kernel and stride, got \(kernel), \(s)")
        precondition(padding.0 >= 0 && padding.1 >= 0 && 2 * padding.0 <= kernel.0 && 2 * padding.1 <= kernel.1,
                     "[pool2d] expected padding at most half the kernel, got \(padding) for kernel \(kernel)")
        self.kind = kind
        (kernelH, kernelW) = kernel
        (strideH, strideW) = s
        (padH, padW) = padding
    }
}

import SNNLayers
import SNNTensor

/// A layer of leaky integrate-and-fire neurons over whole sequences `[T, N, ...]`.
///
/// It builds the ``NeuronParameters`` value and runs the fused ``neuronScan(_:_:)``; no membrane
/// potential survives the call, so nothing needs resetting between batches. When
/// ``recordsFiringRate`` is on, each call stores the mean spike rate of its output for probes.
public final class LIF: Module {
    public let neuron: NeuronParameters
    /// Record the firing rate of the last call (off by default: it costs a reduction).
    public var recordsFiringRate = false
    /// The mean of the last call's spikes as a 0-d tensor on the device, when recorded; read
    /// through ``lastFiringRate`` only when it is logged, so a forward pass never waits on it.
    public private(set) var lastSpikeMean: Tensor?
    /// Also record the firing rate of each timestep of the last call (off by default).
    public var recordsTimestepRates = false
    /// The mean of the last call's spikes per timestep, `[T]`, when recorded.
    public private(set) var lastSpikeMeanPerTimestep: Tensor?

    public init(_ neuron: NeuronParameters = NeuronParameters()) {
        self.neuron = neuron
    }

    public override func childKey(_ property: String) -> String? { nil }

    /// The mean of the spikes of the last call, when recorded (reads the device's value).
    public var lastFiringRate: Double? { lastSpikeMean?.item() }

    /// - Parameter x: input currents `[T, N, ...]`.
    /// - Returns: spikes `[T, N, ...]`.
    public override func forward(_ x: Tensor) -> Tensor {
        observe(neuronScan(x, neuron))
    }

    /// The neuron applied to `bn(x)`, with batch norm and the neuron fused in training mode
    /// (see ``BatchNorm/thenNeuron(_:_:residual:)``): the backward pass then keeps `x` and the
    /// batch statistics instead of the normalised input and the potentials.
    ///
    /// - Parameters:
    ///   - x: pre-normalisation activations `[T, N, C, ...]`.
    ///   - residual: added after batch norm, before the neuron (a residual block's shortcut).
    public func callAsFunction(_ x: Tensor, after bn: BatchNorm, residual: Tensor? = nil) -> Tensor {
        observe(bn.thenNeuron(x, neuron, residual: residual))
    }

    private func observe(_ spikes: Tensor) -> Tensor {
        if recordsFiringRate { lastSpikeMean = withoutGradients { spikes.mean() } }
        if recordsTimestepRates {
            lastSpikeMeanPerTimestep = withoutGradients { spikes.mean(axes: Array(1..<spikes.shape.count)) }
        }
        return spikes
    }
}

/// Direct encoding: a static frame `[N, ...]` repeated over `T` steps as `[T, N, ...]` (a view).
public func repeatOverTime(_ x: Tensor, steps: Int) -> Tensor {
    precondition(steps >= 1, "[repeatOverTime] expected T >= 1, got \(steps)")
    return x.unsqueezed(0).expanded(to: [steps] + x.shape)
}

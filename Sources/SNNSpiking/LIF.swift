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
    /// The mean of the spikes of the last call, when recorded.
    public private(set) var lastFiringRate: Double?

    public init(_ neuron: NeuronParameters = NeuronParameters()) {
        self.neuron = neuron
    }

    public override func childKey(_ property: String) -> String? { nil }

    /// - Parameter x: input currents `[T, N, ...]`.
    /// - Returns: spikes `[T, N, ...]`.
    public override func forward(_ x: Tensor) -> Tensor {
        let spikes = neuronScan(x, neuron)
        if recordsFiringRate { lastFiringRate = withoutGradients { spikes.mean().item() } }
        return spikes
    }
}

/// Direct encoding: a static frame `[N, ...]` repeated over `T` steps as `[T, N, ...]` (a view).
public func repeatOverTime(_ x: Tensor, steps: Int) -> Tensor {
    precondition(steps >= 1, "[repeatOverTime] expected T >= 1, got \(steps)")
    return x.unsqueezed(0).expanded(to: [steps] + x.shape)
}

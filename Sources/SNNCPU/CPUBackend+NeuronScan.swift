import SNNTensor

// STUB: delegates to the reference backend until the fast kernels land.
extension CPUBackend {
    public func neuronScan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, potentials: Tensor) { reference.neuronScan(x, neuron) }
    public func neuronScanBackward(_ gradSpikes: Tensor, potentials: Tensor, _ neuron: NeuronParameters) -> Tensor {
        reference.neuronScanBackward(gradSpikes, potentials: potentials, neuron)
    }
    public func surrogateGradient(_ u: Tensor, _ surrogate: Surrogate) -> Tensor { reference.surrogateGradient(u, surrogate) }
}

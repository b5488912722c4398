/// The LIF scan on the reference backend, written straight from TRT-SPEC.md §1.
extension ReferenceBackend {
    public func neuronScan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, saved: any SavedState) {
        let (spikes, potentials) = scan(x, neuron)
        return (spikes, SavedPotentials(potentials, neuron))
    }

    public func neuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState) -> Tensor {
        let s = SavedPotentials.from(saved, op: "neuronScan")
        return scanBackward(gradSpikes, potentials: s.potentials, s.neuron)
    }

    /// Spikes and charged potentials `h_t`.
    func scan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, potentials: Tensor) {
        let v = read(x), steps = x.shape[0], n = v.count / steps
        var spikes = [Double](repeating: 0, count: v.count), h = spikes
        for i in 0..<n {
            var potential = 0.0
            for t in 0..<steps {
                let k = t * n + i
                h[k] = potential * neuron.decay + v[k]
                spikes[k] = h[k] - neuron.threshold > 0 ? 1 : 0
                switch neuron.reset {
                case .hard(let vr): potential = (1 - spikes[k]) * h[k] + spikes[k] * vr
                case .soft: potential = h[k] - spikes[k] * neuron.threshold
                }
            }
        }
        return (make(spikes, x.shape, x.dtype, x.device), make(h, x.shape, x.dtype, x.device))
    }

    /// `dL/dx` from `dL/ds` and the potentials.
    func scanBackward(_ gradSpikes: Tensor, potentials: Tensor, _ neuron: NeuronParameters) -> Tensor {
        let gs = read(gradSpikes), h = read(potentials), steps = potentials.shape[0], n = h.count / steps
        var gx = [Double](repeating: 0, count: h.count)
        for i in 0..<n {
            var gradV = 0.0  // dL/dv_t, flowing back from h_{t+1} = v_t/τ + x_{t+1}
            for t in stride(from: steps - 1, through: 0, by: -1) {
                let k = t * n + i
                let u = h[k] - neuron.threshold
                let sg = neuron.surrogate.derivative(u)
                let s: Double = u > 0 ? 1 : 0
                let dvdh: Double
                switch neuron.reset {
                case .hard(let vr): dvdh = (1 - s) + (vr - h[k]) * sg
                case .soft: dvdh = 1 - neuron.threshold * sg
                }
                let gradH = gs[k] * sg + gradV * dvdh
                gx[k] = gradH
                gradV = gradH * neuron.decay
            }
        }
        return make(gx, potentials.shape, gradSpikes.dtype, gradSpikes.device)
    }

    public func surrogateGradient(_ u: Tensor, _ surrogate: Surrogate) -> Tensor {
        make(read(u).map(surrogate.derivative), u.shape, u.dtype, u.device)
    }
}

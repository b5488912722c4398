import SNNTensor

/// SwiftSNN's CUDA kernels, as CUDA C++ source compiled at run time by NVRTC (``NVRTC``,
/// ``KernelCache``). Each source is self-contained (NVRTC sees no system headers) and also
/// compiles on the host with the test suite's launch-grid emulation
/// (`Tests/SNNCUDATests/Emulation`), which runs it against the reference backend.
public enum CUDAKernels {
    /// Every kernel source with its file name, for compile checks.
    /// The programs NVRTC compiles, each a file name and its source: a source that uses
    /// another's functions is compiled as one program after it.
    public static let all: [(name: String, source: String)] = [
        ("neuron_scan.cu", prelude + neuronScan),
        ("batch_norm_neuron.cu", prelude + neuronScan + reductions + halfFloats + batchNormNeuron),
        ("trt_regularizer.cu", prelude + reductions + trtRegularizer),
        ("optimizer.cu", prelude + optimizer),
        ("elementwise.cu", prelude + reductions + halfFloats + elementwise),
        ("dense.cu", prelude + reductions + dense),
    ]

    /// Each source once (what the programs of ``all`` are made of), for hosts that compile them
    /// all into one unit.
    public static let parts: [(name: String, source: String)] = [
        ("prelude", prelude), ("neuron_scan", neuronScan), ("reductions", reductions), ("half_floats", halfFloats), ("batch_norm_neuron", batchNormNeuron),
        ("trt_regularizer", trtRegularizer), ("optimizer", optimizer), ("elementwise", elementwise),
        ("dense", dense),
    ]

    /// The kernels `source` declares (`extern "C" __global__ void name(`), in order.
    public static func kernelNames(in source: String) -> [String] {
        source.matches(of: #/extern "C" __global__ void ([A-Za-z_][A-Za-z0-9_]*)\(/#).map { String($0.output.1) }
    }

    /// A neuron's parameters as the LIF kernels take them.
    public struct NeuronArguments: Sendable {
        public let decay: Float, threshold: Float
        /// 0: hard reset to `vReset`; 1: soft reset (subtract the threshold).
        public let softReset: Int32, vReset: Float
        /// 0 triangle, 1 sigmoid, 2 rectangle, with its parameter (γ, α or the width).
        public let surrogate: Int32, parameter: Float

        public init(_ neuron: NeuronParameters) {
            (decay, threshold) = (Float(neuron.decay), Float(neuron.threshold))
            switch neuron.reset {
            case .soft: (softReset, vReset) = (1, 0)
            case .hard(let v): (softReset, vReset) = (0, Float(v))
            }
            switch neuron.surrogate {
            case .triangle(let g): (surrogate, parameter) = (0, Float(g))
            case .sigmoid(let a): (surrogate, parameter) = (1, Float(a))
            case .rectangle(let w): (surrogate, parameter) = (2, Float(w))
            }
        }

        /// The scan's trailing parameters: decay, threshold, reset (and, backward, the surrogate).
        public func kernelArguments(backward: Bool) -> [KernelArgument] {
            [.float(decay), .float(threshold), .int32(softReset), .float(vReset)]
                + (backward ? [.int32(surrogate), .float(parameter)] : [])
        }
    }

    /// The multi-step LIF neuron (``SNNTensor/NeuronParameters``, TRT-SPEC.md §1), forward and
    /// backward through time: one thread per neuron loops over the T steps of a time-major
    /// `[T, n]` tensor, so each step's loads and stores are coalesced across a warp. The forward
    /// pass writes the spikes and the charged potentials `h_t` (what the backward pass needs);
    /// the backward pass runs the time loop in reverse, differentiating the reset too.
    ///
    /// Parameters mirror the CPU and reference backends: `decay = 1/τ`, `threshold`, `softReset`
    /// (0: hard reset to `vReset`; 1: subtract the threshold), `surrogate` (0 triangle γ,
    /// 1 sigmoid α, 2 rectangle width a) with its `parameter`.
    public static let neuronScan = #"""
    // neuron_scan.cu: the LIF scan over time, one thread per neuron, [T, n] time-major.

    __device__ __forceinline__ float snn_surrogate(float u, int kind, float p) {
        if (kind == 0) {                       // triangle: max(γ − |u|, 0) / γ²
            float a = p - fabsf(u);
            return a > 0.0f ? a / (p * p) : 0.0f;
        }
        if (kind == 1) {                       // sigmoid: α σ(αu) (1 − σ(αu))
            float s = 1.0f / (1.0f + expf(-p * u));
            return p * s * (1.0f - s);
        }
        return fabsf(u) < 0.5f * p ? 1.0f / p : 0.0f;   // rectangle of width a
    }

    // One step of the neuron: charges h = v/τ + input, fires when h exceeds the threshold, resets
    // v (hard: to vReset; soft: by the threshold). Returns h; *spike gets the spike.
    __device__ __forceinline__ float snn_lif_step(float &v, float input, float decay, float threshold, int softReset,
                                                  float vReset, float *spike) {
        float h = v * decay + input;
        float s = h - threshold > 0.0f ? 1.0f : 0.0f;
        v = softReset ? h - s * threshold : (1.0f - s) * h + s * vReset;
        *spike = s;
        return h;
    }

    // One step of the scan's backward pass, latest step first: dL/dh from the step's spike
    // gradient and the potential h, with gradV = dL/dv_t carried back from step t + 1 (updated).
    __device__ __forceinline__ float snn_lif_backward_step(float &gradV, float gradSpike, float h, float decay,
                                                           float threshold, int softReset, float vReset, int surrogate,
                                                           float parameter) {
        float u = h - threshold;
        float sg = snn_surrogate(u, surrogate, parameter);
        float s = u > 0.0f ? 1.0f : 0.0f;
        float dvdh = softReset ? 1.0f - threshold * sg : (1.0f - s) + (vReset - h) * sg;
        float gradH = gradSpike * sg + gradV * dvdh;
        gradV = gradH * decay;
        return gradH;
    }

    extern "C" __global__ void snn_neuron_scan_forward(const float *__restrict__ x, float *__restrict__ spikes,
                                                       float *__restrict__ potentials, long long n, int steps,
                                                       float decay, float threshold, int softReset, float vReset) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        float v = 0.0f;
        for (int t = 0; t < steps; t++) {
            long long k = (long long)t * n + i;
            potentials[k] = snn_lif_step(v, x[k], decay, threshold, softReset, vReset, &spikes[k]);
        }
    }

    // The surrogate derivative g(u) elementwise (the backend's surrogateGradient).
    extern "C" __global__ void snn_surrogate_gradient(const float *__restrict__ u, float *__restrict__ y, long long n,
                                                      int surrogate, float parameter) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = snn_surrogate(u[i], surrogate, parameter);
    }

    extern "C" __global__ void snn_neuron_scan_backward(const float *__restrict__ gradSpikes,
                                                        const float *__restrict__ potentials,
                                                        float *__restrict__ gradInput, long long n, int steps,
                                                        float decay, float threshold, int softReset, float vReset,
                                                        int surrogate, float parameter) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        float gradV = 0.0f;   // dL/dv_t, flowing back from h_{t+1} = v_t/τ + x_{t+1}
        for (int t = steps - 1; t >= 0; t--) {
            long long k = (long long)t * n + i;
            gradInput[k] = snn_lif_backward_step(gradV, gradSpikes[k], potentials[k], decay, threshold, softReset, vReset,
                                                 surrogate, parameter);
        }
    }
    """#
}

extension CUDAKernels {
    /// One optimiser update over the flat parameter buffer, fused (PyTorch's rules, as
    /// `SNNTraining`'s `Optimizer`): one thread per parameter reads its gradient and state once
    /// and writes the parameter and state once. `kind`: 0 SGD with momentum (`state1` the
    /// momentum buffer), 1 Adam and 2 AdamW (`state1`, `state2` the first and second moments),
    /// 3 RMSprop (`state1` the square average, `beta2` its α). The host passes the step's scalars
    /// (learning rate, Adam's bias corrections `c1 = 1 − β1^t` and `√c2`) and the weights of the
    /// new terms `mix1 = 1 − β1`, `mix2 = 1 − β2` (1 − α), computed in double and rounded once as
    /// PyTorch's are (`1.0f − 0.999f` is 1.3e-5 away from 0.001), so no step reads device memory
    /// back.
    public static let optimizer = #"""
    // optimizer.cu: SGD (momentum), Adam, AdamW and RMSprop over flat buffers.

    extern "C" __global__ void snn_optimizer_step(float *__restrict__ p, const float *__restrict__ g,
                                                  float *__restrict__ state1, float *__restrict__ state2, long long n,
                                                  int kind, float lr, float weightDecay, float beta1, float beta2,
                                                  float mix1, float mix2, float epsilon, float momentum, float c1,
                                                  float sqrtC2) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        float w = p[i], grad = g[i];
        if (weightDecay != 0.0f && kind != 2) grad += w * weightDecay;
        if (kind == 0) {
            float buf = state1[i] * momentum + grad;
            state1[i] = buf;
            p[i] = w - buf * lr;
        } else if (kind == 1 || kind == 2) {
            if (kind == 2 && weightDecay != 0.0f) w *= 1.0f - lr * weightDecay;
            float m = state1[i] * beta1 + grad * mix1;
            float v = state2[i] * beta2 + grad * grad * mix2;
            state1[i] = m;
            state2[i] = v;
            p[i] = w - m * (lr / c1) / (sqrtf(v) / sqrtC2 + epsilon);
        } else {
            float v = state1[i] * beta2 + grad * grad * mix2;
            state1[i] = v;
            p[i] = w - grad * lr / (sqrtf(v) + epsilon);
        }
    }
    """#
}

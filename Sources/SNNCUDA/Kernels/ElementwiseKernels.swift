extension CUDAKernels {
    /// Elementwise ops and reductions over strided float32 tensors (the backend's `unary`,
    /// `binary`, `binary(_:_:scalar:)`, `clamp`, `select` and `reduce`), one thread per output
    /// element. Operands are read through their shape and strides (`SnnLayout`, rank ≤ 8): a
    /// broadcast operand has stride 0, a transposed one permuted strides, so views need no
    /// copies. Op codes follow the order of `UnaryOp` and `BinaryOp`'s cases. A reduction sums
    /// (or takes the maximum of) each output's inputs in index order, so results do not depend
    /// on timing.
    /// float32 to and from bfloat16 and IEEE half: the casts' conversions, and the rounding of
    /// batch norm's input under `--amp` (`batch_norm_neuron.cu`).
    public static let halfFloats = #"""
    // float32 <-> bfloat16 and IEEE half (as their 16-bit patterns), rounding to nearest even:
    // the operands of matrix products under --amp, and what batch norm + LIF keeps. NaN stays NaN; halves overflow to infinity from
    // 65520 up and underflow through the subnormals.
    __device__ __forceinline__ unsigned short snn_float_to_bf16(float f) {
        unsigned int bits = __float_as_uint(f);
        if ((bits & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((bits >> 16) | 0x40u);
        bits += 0x7fffu + ((bits >> 16) & 1u);
        return (unsigned short)(bits >> 16);
    }

    __device__ __forceinline__ unsigned short snn_float_to_half(float f) {
        unsigned int x = __float_as_uint(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
        if (ax > 0x7f800000u) return (unsigned short)(sign | 0x7e00u);           // NaN
        if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);          // 65520 and up: infinity
        unsigned int q, rem, half;
        if (ax < 0x38800000u) {                                                  // below 2^-14: subnormal or zero
            if (ax < 0x33000000u) return (unsigned short)sign;                   // at most 2^-25: zero
            unsigned int shift = 126u - (ax >> 23), m = (ax & 0x7fffffu) | 0x800000u;
            q = m >> shift;
            rem = m & ((1u << shift) - 1u);
            half = 1u << (shift - 1u);
        } else {
            unsigned int r = ax - 0x38000000u;                                   // exponent rebiased by 127 - 15
            q = r >> 13;
            rem = r & 0x1fffu;
            half = 0x1000u;
        }
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (unsigned short)(sign | q);
    }

    __device__ __forceinline__ float snn_half_to_float(unsigned short h) {
        unsigned int sign = (unsigned int)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        if (e == 31) return __uint_as_float(sign | 0x7f800000u | (m << 13));      // infinity, NaN
        if (e == 0) {                                                            // zero, subnormal: m·2^-24
            float v = (float)m * 5.9604644775390625e-8f;
            return sign ? -v : v;
        }
        return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
    }

    // x as the 16-bit type `rounding` names would hold it (0: float32, x itself; 1: bfloat16; 2: half).
    __device__ __forceinline__ float snn_round_to(float x, int rounding) {
        if (rounding == 1) return __uint_as_float((unsigned int)snn_float_to_bf16(x) << 16);
        if (rounding == 2) return snn_half_to_float(snn_float_to_half(x));
        return x;
    }
    """#

    public static let elementwise = #"""
    // elementwise.cu: strided elementwise ops and ordered reductions.

    #define SNN_MAX_RANK 8

    // The output's shape and each operand's strides (in elements) over it.
    struct SnnLayout {
        int rank;
        long long shape[SNN_MAX_RANK];
        long long strides[3][SNN_MAX_RANK];
        long long offsets[3];
    };

    // The element of operand `which` at the output's flat (row-major) index `i`, which is less
    // than the product of the shape: what is left of it after the inner axes is the outermost
    // axis's index, without a division (a layout of one axis, the usual contiguous operand, costs
    // none; a 64-bit division costs more than a float's share of memory bandwidth).
    __device__ __forceinline__ long long snn_at(const SnnLayout &l, int which, long long i) {
        long long at = l.offsets[which];
        for (int d = l.rank - 1; d > 0; d--) {
            long long q = i / l.shape[d];
            at += (i - q * l.shape[d]) * l.strides[which][d];
            i = q;
        }
        return l.rank > 0 ? at + i * l.strides[which][0] : at;
    }

    __device__ __forceinline__ float snn_unary_op(int op, float x) {
        switch (op) {
        case 0: return -x;                                   // negate
        case 1: return expf(x);                              // exp
        case 2: return logf(x);                              // log
        case 3: return fabsf(x);                             // abs
        case 4: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);   // sign
        case 5: return 1.0f / (1.0f + expf(-x));             // sigmoid
        case 6: return x > 0.0f ? x : 0.0f;                  // relu
        case 7: return sqrtf(x);                             // sqrt
        case 8: return x * x;                                // square
        default: return 1.0f / x;                            // reciprocal
        }
    }

    __device__ __forceinline__ float snn_binary_op(int op, float a, float b) {
        switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return a != a || b != b ? a + b : (a > b ? a : b);   // maximum (NaN wins)
        case 5: return a != a || b != b ? a + b : (a < b ? a : b);   // minimum (NaN wins)
        case 6: return powf(a, b);
        case 7: return a == b ? 1.0f : 0.0f;
        case 8: return a != b ? 1.0f : 0.0f;
        case 9: return a < b ? 1.0f : 0.0f;
        case 10: return a <= b ? 1.0f : 0.0f;
        case 11: return a > b ? 1.0f : 0.0f;
        default: return a >= b ? 1.0f : 0.0f;
        }
    }

    // Output (operand 0) is contiguous: y[i].
    extern "C" __global__ void snn_unary(int op, const float *__restrict__ x, float *__restrict__ y, long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = snn_unary_op(op, x[snn_at(l, 1, i)]);
    }

    extern "C" __global__ void snn_binary(int op, const float *__restrict__ a, const float *__restrict__ b,
                                          float *__restrict__ y, long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = snn_binary_op(op, a[snn_at(l, 1, i)], b[snn_at(l, 2, i)]);
    }

    extern "C" __global__ void snn_binary_scalar(int op, const float *__restrict__ x, float s, int scalarFirst,
                                                 float *__restrict__ y, long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        float v = x[snn_at(l, 1, i)];
        y[i] = scalarFirst ? snn_binary_op(op, s, v) : snn_binary_op(op, v, s);
    }

    extern "C" __global__ void snn_clamp(const float *__restrict__ x, float low, float high, float *__restrict__ y,
                                         long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        float v = x[snn_at(l, 1, i)];
        y[i] = fminf(fmaxf(v, low), high);
    }

    // y = condition ≠ 0 ? a : b; operands 1 and 2 are a and b, the condition has the layout of operand 0's slot.
    extern "C" __global__ void snn_select(const float *__restrict__ condition, const float *__restrict__ a,
                                          const float *__restrict__ b, float *__restrict__ y, long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        y[i] = condition[snn_at(l, 0, i)] != 0.0f ? a[snn_at(l, 1, i)] : b[snn_at(l, 2, i)];
    }

    // Copies and casts, reading through the layout's operand 1: `contiguous`, float32 ↔ uint8
    // (the compact spike codes saved for backward passes hold small whole numbers; the cast
    // truncates toward zero and saturates, as the reference's).
    extern "C" __global__ void snn_copy(const float *__restrict__ x, float *__restrict__ y, long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = x[snn_at(l, 1, i)];
    }

    // y[at(0, i)] = x[at(1, i)]: a copy into a strided destination.
    extern "C" __global__ void snn_copy_to(const float *__restrict__ x, float *__restrict__ y, long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[snn_at(l, 0, i)] = x[snn_at(l, 1, i)];
    }

    // y[at(0, i)] = value: fills a strided destination.
    extern "C" __global__ void snn_fill(float *__restrict__ y, float value, long long n, SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[snn_at(l, 0, i)] = value;
    }

    // y = x + s over int64 (batch norm's count of training batches).
    extern "C" __global__ void snn_add_i64(const long long *__restrict__ x, long long s, long long *__restrict__ y, long long n) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = x[i] + s;
    }

    extern "C" __global__ void snn_cast_f32_u8(const float *__restrict__ x, unsigned char *__restrict__ y, long long n,
                                               SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        // Truncated toward zero and saturated, NaN giving 0, as every backend's cast (C leaves a
        // conversion out of range undefined).
        float v = x[snn_at(l, 1, i)];
        y[i] = v >= 1.0f ? (v >= 255.0f ? 255 : (unsigned char)v) : 0;
    }

    extern "C" __global__ void snn_cast_u8_f32(const unsigned char *__restrict__ x, float *__restrict__ y, long long n,
                                               SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = (float)x[snn_at(l, 1, i)];
    }

    extern "C" __global__ void snn_cast_f32_bf16(const float *__restrict__ x, unsigned short *__restrict__ y, long long n,
                                                 SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = snn_float_to_bf16(x[snn_at(l, 1, i)]);
    }

    extern "C" __global__ void snn_cast_f32_f16(const float *__restrict__ x, unsigned short *__restrict__ y, long long n,
                                                SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = snn_float_to_half(x[snn_at(l, 1, i)]);
    }

    extern "C" __global__ void snn_cast_bf16_f32(const unsigned short *__restrict__ x, float *__restrict__ y, long long n,
                                                 SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = __uint_as_float((unsigned int)x[snn_at(l, 1, i)] << 16);
    }

    extern "C" __global__ void snn_cast_f16_f32(const unsigned short *__restrict__ x, float *__restrict__ y, long long n,
                                                SnnLayout l) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = snn_half_to_float(x[snn_at(l, 1, i)]);
    }

    // Random draws on the device, word for word the engine's generator (`RandomGenerator`,
    // `HostMemory.random`): Philox4x32-10 keyed by the seed, block `counter / 4 + k` giving words
    // 4k…4k+3 of the draw. One thread per block of 4 words: a uniform or Bernoulli draw takes a
    // word an element, a normal one two (Box–Muller). The arithmetic is the host's, in double,
    // rounded (__dmul_rn, __dadd_rn: no fused multiply-add) so that the bits agree; a normal
    // draw's log and cos may differ from the host's libm in the last bit of a double, which
    // rounding to float almost always hides.
    __device__ __forceinline__ void snn_philox(unsigned long long key, unsigned long long counter, unsigned int word[4]) {
        unsigned int c0 = (unsigned int)counter, c1 = (unsigned int)(counter >> 32), c2 = 0u, c3 = 0u;
        unsigned int k0 = (unsigned int)key, k1 = (unsigned int)(key >> 32);
        for (int round = 0; round < 10; round++) {
            unsigned long long p0 = 0xD2511F53ull * c0, p1 = 0xCD9E8D57ull * c2;
            unsigned int n0 = (unsigned int)(p1 >> 32) ^ c1 ^ k0, n2 = (unsigned int)(p0 >> 32) ^ c3 ^ k1;
            c1 = (unsigned int)p1;
            c3 = (unsigned int)p0;
            c0 = n0;
            c2 = n2;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        word[0] = c0; word[1] = c1; word[2] = c2; word[3] = c3;
    }

    // `distribution` 0: uniform in [a, b); 1: 1 with probability p, else 0, given as
    // a = ceil(p·2^24) (u = k·2^-24 < p exactly when the integer k < a: no double arithmetic on
    // the path dropout takes every step); 2: normal, mean a, standard deviation b. `dtype` 0:
    // float32; 1: bfloat16; 2: half (each element rounded through float32 first, as on the
    // host). `block0` is the draw's first Philox block.
    extern "C" __global__ void snn_random(int distribution, double a, double b, unsigned long long seed,
                                          unsigned long long block0, void *__restrict__ y, int dtype, long long n) {
        long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        int per = distribution == 2 ? 2 : 4;
        if (k * per >= n) return;
        unsigned int word[4];
        snn_philox(seed, block0 + (unsigned long long)k, word);
        unsigned int threshold = distribution == 1 ? (unsigned int)a : 0u;   // at most 2^24
        for (int j = 0; j < per && k * per + j < n; j++) {
            float v;
            if (distribution == 0) {
                double u = (double)(word[j] >> 8) * 5.9604644775390625e-8;   // 2^-24
                v = (float)__dadd_rn(a, __dmul_rn(b - a, u));
            } else if (distribution == 1) {
                v = (word[j] >> 8) < threshold ? 1.0f : 0.0f;
            } else {
                double u1 = ((double)(word[2 * j] >> 8) + 1.0) * 5.9604644775390625e-8;   // (0, 1]: the log is finite
                double u2 = (double)(word[2 * j + 1] >> 8) * 5.9604644775390625e-8;
                float z = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
                v = (float)__dadd_rn(a, __dmul_rn(b, (double)z));
            }
            long long i = k * per + j;
            if (dtype == 0) ((float *)y)[i] = v;
            else if (dtype == 1) ((unsigned short *)y)[i] = snn_float_to_bf16(v);
            else ((unsigned short *)y)[i] = snn_float_to_half(v);
        }
    }

    // One row of `classes` per label (int64 labels when `wide`, else int32, as datasets give
    // them): 1 at the label, 0 elsewhere. A label outside 0..<classes leaves its row zero and
    // records itself in bad = {1, label, row, classes} (one of them, when several are bad), which
    // the host reads at its next wait, as the reference's precondition.
    extern "C" __global__ void snn_one_hot(const void *__restrict__ labels, int wide, float *__restrict__ y, long long rows,
                                           int classes, long long *__restrict__ bad) {
        long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (k >= rows * classes) return;
        long long row = k / classes;
        long long label = wide ? ((const long long *)labels)[row] : (long long)((const int *)labels)[row];
        if (k % classes == 0 && (label < 0 || label >= classes)) {
            bad[1] = label;
            bad[2] = row;
            bad[3] = classes;
            bad[0] = 1;
        }
        y[k] = label == k % classes ? 1.0f : 0.0f;
    }

    // One thread per output element of a reduction: `l` describes the reduced axes' extents and
    // the input's strides along them (operand 1), `outer` the kept axes (operand 1's strides over
    // the output's index). op 0 sums in double, 1 takes the maximum (NaN wins).
    extern "C" __global__ void snn_reduce(int op, const float *__restrict__ x, float *__restrict__ y, long long outputs,
                                          long long inner, SnnLayout outer, SnnLayout reduced) {
        long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (o >= outputs) return;
        long long base = snn_at(outer, 1, o);
        double sum = 0.0;
        float best = __int_as_float(0xff800000);   // −∞, the maximum of nothing
        for (long long j = 0; j < inner; j++) {
            float v = x[base + snn_at(reduced, 1, j)];
            if (op == 0) sum += v;
            else if (j == 0 || v > best || v != v) best = v;
        }
        y[o] = op == 0 ? (float)sum : best;
    }

    // A reduction with few outputs over many inputs each, spread over the whole GPU: block b takes
    // output b / splits and its inputs [s·chunk, (s + 1)·chunk) for s = b % splits; thread t takes
    // inputs t, t + 256, ... of those, and the block combines its threads' results in a fixed
    // tree. With one split the block writes the output; with more, its result goes to
    // partials[b] (double: a maximum is exact there) for snn_reduce_partials. The chunk is the
    // host's choice, not the GPU's, so the result does not depend on timing or on the GPU.
    extern "C" __global__ void snn_reduce_blocks(int op, const float *__restrict__ x, float *__restrict__ y,
                                                 double *__restrict__ partials, long long inner, long long chunk, int splits,
                                                 SnnLayout outer, SnnLayout reduced) {
        long long o = blockIdx.x / splits, start = (blockIdx.x % splits) * chunk;
        long long end = start + chunk < inner ? start + chunk : inner;
        long long base = snn_at(outer, 1, o);
        double sum = 0.0;
        float m = __int_as_float(0xff800000);   // −∞
        for (long long j = start + threadIdx.x; j < end; j += SNN_REDUCE_THREADS) {
            float v = x[base + snn_at(reduced, 1, j)];
            if (op == 0) sum += v;
            else if (v > m || v != v) m = m != m ? m : v;   // NaN wins and stays
        }
        double result = op == 0 ? snn_block_sum(sum) : snn_block_max(m);
        if (threadIdx.x == 0) {
            if (splits == 1) y[o] = (float)result;
            else partials[blockIdx.x] = result;
        }
    }

    // y[o] from snn_reduce_blocks' partials[o·splits ..< (o + 1)·splits]: one block per output,
    // combined in a fixed order.
    extern "C" __global__ void snn_reduce_partials(int op, const double *__restrict__ partials, float *__restrict__ y,
                                                   int splits) {
        const double *row = partials + (long long)blockIdx.x * splits;
        double sum = 0.0;
        float m = __int_as_float(0xff800000);
        for (int j = threadIdx.x; j < splits; j += SNN_REDUCE_THREADS) {
            if (op == 0) {
                sum += row[j];
            } else {
                float v = (float)row[j];
                if (v > m || v != v) m = m != m ? m : v;
            }
        }
        double result = op == 0 ? snn_block_sum(sum) : snn_block_max(m);
        if (threadIdx.x == 0) y[blockIdx.x] = (float)result;
    }
    """#
}

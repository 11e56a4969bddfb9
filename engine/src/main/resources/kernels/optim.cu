// Optimizer step and gradient-norm clipping: one AdamW step (torch.optim.AdamW's single-tensor formulas), a
// deterministic sum of squares (fixed grid of block partials, then one block adds them in order) and the
// clip_grad_norm_ coefficient.
#include "rows.cuh"

// Any float param dtype with any float grad dtype (the contract's pairs are the grad in the param's dtype or F32;
// an F32 master copy may also be stepped with a 16-bit gradient). decay = 1 - lr * weightDecay, w1 = 1 - beta1, stepSize = lr / (1 - beta1^t), bc2Sqrt = sqrt(1 - beta2^t), all
// from the host in double. m and v are F32 (F64 for F64 params); gradScale: a one-element F32/F64 tensor or null.
template <typename P, typename G>
__device__ void adamw(P* param, const G* grad, typename Stat<P>::type* m, typename Stat<P>::type* v, const void* gradScale,
                      int gradScaleF64, i64 n, double decay, double w1, double beta2, double w2, double eps, double stepSize,
                      double bc2Sqrt) {
    typedef typename Acc<P>::type A;
    typedef typename Stat<P>::type M;
    const bool scaled = gradScale != nullptr;
    const A scale = scaled ? (A) read_scalar(gradScale, gradScaleF64) : (A) 1;
    const A dec = (A) decay;
    const A a1 = (A) w1;
    const A b2 = (A) beta2;
    const A a2 = (A) w2;
    const A ep = (A) eps;
    const A step = (A) stepSize;
    const A bc2 = (A) bc2Sqrt;
    JT_FOR(i, n) {
        A g = (A) load_acc<G>(grad[i]);
        if (scaled) g = g * scale;
        A p = load_acc<P>(param[i]) * dec;
        A mi = (A) m[i];
        // torch's lerp(m, g, w1)
        mi = a1 < (A) 0.5 ? mi + a1 * (g - mi) : g - (g - mi) * ((A) 1 - a1);
        A vi = (A) v[i] * b2 + a2 * g * g;
        A denom = jt_sqrt(vi) / bc2 + ep;
        p = p + (-step) * (mi / denom);
        m[i] = (M) mi;
        v[i] = (M) vi;
        param[i] = store_acc<P>(p);
    }
}

#define JT_ADAMW(ps, P, gs, G) \
    extern "C" __global__ void adamw_##ps##_##gs(P* param, const G* grad, Stat<P>::type* m, Stat<P>::type* v, const void* gradScale, \
                                                int gradScaleF64, i64 n, double decay, double w1, double beta2, double w2, double eps, \
                                                double stepSize, double bc2Sqrt) { \
        adamw<P, G>(param, grad, m, v, gradScale, gradScaleF64, n, decay, w1, beta2, w2, eps, stepSize, bc2Sqrt); }
#define JT_ADAMW_P(ps, P) \
    JT_ADAMW(ps, P, f64, double) JT_ADAMW(ps, P, f32, float) JT_ADAMW(ps, P, bf16, __nv_bfloat16) JT_ADAMW(ps, P, f16, __half)
JT_FLOAT_TYPES(JT_ADAMW_P)

// partial[blockIdx.x] = sum of x^2 over this block's grid-stride share; blockDim.x is a multiple of 32.
template <typename T, int VEC>
__device__ void sum_squares_partial(const T* x, i64 n, typename Acc<T>::type* partial) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    A s = 0;
    JT_FOR(k, n / VEC) {
        A v[VEC];
        load_chunk<T, VEC>(x + k * VEC, v);
#pragma unroll
        for (int q = 0; q < VEC; q++) s += v[q] * v[q];
    }
    s = row_sum(s, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block: out[0] += the partials, added in a fixed order. out: a one-element F32 or F64 (outF64) tensor; the
// addition runs in the wider of its type and the accumulation type.
template <typename A>
__device__ void sum_squares_finish(const A* partial, i64 parts, void* out, int outF64) {
    __shared__ A scratch[32];
    A s = 0;
    for (i64 i = threadIdx.x; i < parts; i += blockDim.x) s += partial[i];
    s = row_sum(s, scratch);
    if (threadIdx.x == 0) {
        if (outF64) {
            double* o = static_cast<double*>(out);
            o[0] = o[0] + (double) s;
        } else {
            float* o = static_cast<float*>(out);
            o[0] = (float) ((A) o[0] + s);
        }
    }
}

#define JT_SSQ_V(sfx, T, name, V) \
    extern "C" __global__ void sum_squares_##sfx##name(const T* x, i64 n, Acc<T>::type* partial) { sum_squares_partial<T, V>(x, n, partial); }
#define JT_SSQ(sfx, T) JT_SSQ_V(sfx, T, , 1) JT_SSQ_V(sfx, T, _vec, Vec<T>::N)
JT_FLOAT_TYPES(JT_SSQ)

extern "C" __global__ void sum_squares_finish_f32(const float* partial, i64 parts, void* out, int outF64) {
    sum_squares_finish<float>(partial, parts, out, outF64);
}
extern "C" __global__ void sum_squares_finish_f64(const double* partial, i64 parts, void* out, int outF64) {
    sum_squares_finish<double>(partial, parts, out, outF64);
}

// coef[0] = min(1, maxNorm / (sqrt(ss[0]) + 1e-6)), in double and rounded once; NaN stays NaN. Either tensor F32 or F64.
extern "C" __global__ void clip_coefficient(const void* ss, int ssF64, double maxNorm, void* coef, int coefF64) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        double c = maxNorm / (sqrt(read_scalar(ss, ssF64)) + 1e-6);
        write_scalar(coef, coefF64, c != c ? c : (c < 1.0 ? c : 1.0));
    }
}

// GELU (tanh approximation) and GeGLU, forward and backward, element-wise over contiguous tensors (GeGLU's gate and
// up may be row-strided). VEC elements per access where the host found every operand aligned and the counts
// divisible; each output element is written by the thread that read its inputs, so in-place use is safe.
#include "rows.cuh"

// From ActivationKernel.java through ActivationKernels.java: sqrt(2 / pi) and the cubic coefficient.
#if !defined(GELU_BETA) || !defined(GELU_KAPPA)
#error "GELU_BETA and GELU_KAPPA come from ActivationKernels.java's KernelSource"
#endif

// Evaluated as the identical x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): PyTorch's 0.5 x (1 + tanh u)
// cancels for x below about -5 and loses relative accuracy there; the logistic form does not (and it is the
// cpu reference's formula, so the two agree to rounding everywhere).
template <typename A>
__device__ __forceinline__ A gelu_fwd(A x) {
    const A beta = (A) GELU_BETA;
    const A kappa = (A) GELU_KAPPA;
    A u = beta * (x + kappa * x * x * x);
    return x / ((A) 1 + jt_exp((A) -2 * u));
}

// d gelu / dx = s + 2 x s (1 - s) u', s = sigmoid(2u), 1 - s = sigmoid(-2u): accurate in both tails.
template <typename A>
__device__ __forceinline__ A gelu_grad(A x) {
    const A beta = (A) GELU_BETA;
    const A kappa = (A) GELU_KAPPA;
    A sq = x * x;
    A u = beta * (x + kappa * sq * x);
    A s = (A) 1 / ((A) 1 + jt_exp((A) -2 * u));
    A oneMinusS = (A) 1 / ((A) 1 + jt_exp((A) 2 * u));
    A du = beta * ((A) 1 + (A) 3 * kappa * sq);
    return s + (A) 2 * x * s * oneMinusS * du;
}

template <typename T, int VEC>
__device__ void gelu(const T* x, T* out, i64 n) {
    typedef typename Acc<T>::type A;
    JT_FOR(k, n / VEC) {
        A v[VEC];
        load_chunk<T, VEC>(x + k * VEC, v);
#pragma unroll
        for (int q = 0; q < VEC; q++) v[q] = gelu_fwd(v[q]);
        store_chunk<T, VEC>(out + k * VEC, v);
    }
}

template <typename T, int VEC>
__device__ void gelu_backward(const T* x, const T* gradOut, T* gradX, i64 n) {
    typedef typename Acc<T>::type A;
    JT_FOR(k, n / VEC) {
        A v[VEC];
        A g[VEC];
        load_chunk<T, VEC>(x + k * VEC, v);
        load_chunk<T, VEC>(gradOut + k * VEC, g);
#pragma unroll
        for (int q = 0; q < VEC; q++) v[q] = g[q] * gelu_grad(v[q]);
        store_chunk<T, VEC>(gradX + k * VEC, v);
    }
}

// GeGLU's gate and up (and their gradients) are [n / cols, cols] rows at a stride of ld elements: the two halves of
// one fused gate/up product's [rows, 2 cols] output (ld = 2 cols), or contiguous tensors (ld = cols). out and gradOut
// are contiguous. VEC divides cols and ld (the host checks).
__device__ __forceinline__ i64 strided(i64 e, i64 cols, i64 ld) {
    return ld == cols ? e : e / cols * ld + e % cols;
}

template <typename T, int VEC>
__device__ void geglu(const T* gate, const T* up, T* out, i64 n, i64 cols, i64 ld) {
    typedef typename Acc<T>::type A;
    JT_FOR(k, n / VEC) {
        i64 s = strided(k * VEC, cols, ld);
        A g[VEC];
        A u[VEC];
        load_chunk<T, VEC>(gate + s, g);
        load_chunk<T, VEC>(up + s, u);
#pragma unroll
        for (int q = 0; q < VEC; q++) g[q] = gelu_fwd(g[q]) * u[q];
        store_chunk<T, VEC>(out + k * VEC, g);
    }
}

template <typename T, int VEC>
__device__ void geglu_backward(const T* gate, const T* up, const T* gradOut, T* gradGate, T* gradUp, i64 n, i64 cols, i64 ld) {
    typedef typename Acc<T>::type A;
    JT_FOR(k, n / VEC) {
        i64 s = strided(k * VEC, cols, ld);
        A g[VEC];
        A u[VEC];
        A go[VEC];
        load_chunk<T, VEC>(gate + s, g);
        load_chunk<T, VEC>(up + s, u);
        load_chunk<T, VEC>(gradOut + k * VEC, go);
#pragma unroll
        for (int q = 0; q < VEC; q++) {
            A gg = go[q] * u[q] * gelu_grad(g[q]);
            A gu = go[q] * gelu_fwd(g[q]);
            g[q] = gg;
            u[q] = gu;
        }
        store_chunk<T, VEC>(gradGate + s, g);
        store_chunk<T, VEC>(gradUp + s, u);
    }
}

#define JT_ACT_V(sfx, T, name, V) \
    extern "C" __global__ void gelu_##sfx##name(const T* x, T* out, i64 n) { gelu<T, V>(x, out, n); } \
    extern "C" __global__ void gelu_backward_##sfx##name(const T* x, const T* gradOut, T* gradX, i64 n) { gelu_backward<T, V>(x, gradOut, gradX, n); } \
    extern "C" __global__ void geglu_##sfx##name(const T* gate, const T* up, T* out, i64 n, i64 cols, i64 ld) { \
        geglu<T, V>(gate, up, out, n, cols, ld); } \
    extern "C" __global__ void geglu_backward_##sfx##name(const T* gate, const T* up, const T* gradOut, T* gradGate, T* gradUp, i64 n, \
                                                         i64 cols, i64 ld) { \
        geglu_backward<T, V>(gate, up, gradOut, gradGate, gradUp, n, cols, ld); }
#define JT_ACT(sfx, T) JT_ACT_V(sfx, T, , 1) JT_ACT_V(sfx, T, _vec, Vec<T>::N)
JT_FLOAT_TYPES(JT_ACT)

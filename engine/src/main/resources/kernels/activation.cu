// GELU (tanh approximation) and GeGLU, forward and backward, element-wise over contiguous tensors. VEC
// elements per access where the host found every operand aligned and the count divisible; each output element is written by the thread that read its inputs,
// so in-place use is safe.
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

template <typename T, int VEC>
__device__ void geglu(const T* gate, const T* up, T* out, i64 n) {
    typedef typename Acc<T>::type A;
    JT_FOR(k, n / VEC) {
        A g[VEC];
        A u[VEC];
        load_chunk<T, VEC>(gate + k * VEC, g);
        load_chunk<T, VEC>(up + k * VEC, u);
#pragma unroll
        for (int q = 0; q < VEC; q++) g[q] = gelu_fwd(g[q]) * u[q];
        store_chunk<T, VEC>(out + k * VEC, g);
    }
}

template <typename T, int VEC>
__device__ void geglu_backward(const T* gate, const T* up, const T* gradOut, T* gradGate, T* gradUp, i64 n) {
    typedef typename Acc<T>::type A;
    JT_FOR(k, n / VEC) {
        A g[VEC];
        A u[VEC];
        A go[VEC];
        load_chunk<T, VEC>(gate + k * VEC, g);
        load_chunk<T, VEC>(up + k * VEC, u);
        load_chunk<T, VEC>(gradOut + k * VEC, go);
#pragma unroll
        for (int q = 0; q < VEC; q++) {
            A gg = go[q] * u[q] * gelu_grad(g[q]);
            A gu = go[q] * gelu_fwd(g[q]);
            g[q] = gg;
            u[q] = gu;
        }
        store_chunk<T, VEC>(gradGate + k * VEC, g);
        store_chunk<T, VEC>(gradUp + k * VEC, u);
    }
}

#define JT_ACT_V(sfx, T, name, V) \
    extern "C" __global__ void gelu_##sfx##name(const T* x, T* out, i64 n) { gelu<T, V>(x, out, n); } \
    extern "C" __global__ void gelu_backward_##sfx##name(const T* x, const T* gradOut, T* gradX, i64 n) { gelu_backward<T, V>(x, gradOut, gradX, n); } \
    extern "C" __global__ void geglu_##sfx##name(const T* gate, const T* up, T* out, i64 n) { geglu<T, V>(gate, up, out, n); } \
    extern "C" __global__ void geglu_backward_##sfx##name(const T* gate, const T* up, const T* gradOut, T* gradGate, T* gradUp, i64 n) { \
        geglu_backward<T, V>(gate, up, gradOut, gradGate, gradUp, n); }
#define JT_ACT(sfx, T) JT_ACT_V(sfx, T, , 1) JT_ACT_V(sfx, T, _vec, Vec<T>::N)
JT_FLOAT_TYPES(JT_ACT)

// Helpers of the row-wise kernels (norms, softmaxes, losses): precise math overloads for float and double,
// vector loads of several elements at once, and deterministic reductions over the threads of one row.
//
// Row layout of a launch (chosen by the host, see RowLaunch.java): either blockDim = (32, rows) with one warp per
// row, or blockDim = (threads, 1) with one block per row. Either way every thread that shares threadIdx.y works
// on the same row, and JT_ROWS keeps the row uniform across those threads, so a row reduction may synchronise.
#pragma once
#include "common.cuh"

#define JT_FULL_MASK 0xffffffffu

// Grid-stride loop over rows, one row per (block, threadIdx.y).
#define JT_ROWS(row, n) for (i64 row = (i64) blockIdx.x * blockDim.y + threadIdx.y; row < (n); row += (i64) gridDim.x * blockDim.y)

// The dtype of a statistic or accumulator that the contract documents as F32 (rstd, lse, loss, scores, gradient
// sums): F32, except that F64 inputs come with F64 ones.
template <typename T> struct Stat { typedef float type; };
template <> struct Stat<double> { typedef double type; };

// The wider of two accumulation types (float or double).
template <typename A, typename B> struct Wider { typedef A type; };
template <> struct Wider<float, double> { typedef double type; };

// A one-element F32 or F64 tensor read as a double (flag: 1 when it is F64).
__device__ __forceinline__ double read_scalar(const void* p, int isF64) {
    return isF64 ? *static_cast<const double*>(p) : (double) *static_cast<const float*>(p);
}
__device__ __forceinline__ void write_scalar(void* p, int isF64, double v) {
    if (isF64) {
        *static_cast<double*>(p) = v;
    } else {
        *static_cast<float*>(p) = (float) v;
    }
}

// ---- math in the accumulation type; the accurate library functions (never the fast intrinsics)
__device__ __forceinline__ float jt_exp(float x) { return expf(x); }
__device__ __forceinline__ double jt_exp(double x) { return exp(x); }
__device__ __forceinline__ float jt_log(float x) { return logf(x); }
__device__ __forceinline__ double jt_log(double x) { return log(x); }
__device__ __forceinline__ float jt_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double jt_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float jt_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double jt_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float jt_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double jt_max(double a, double b) { return fmax(a, b); }

template <typename A> __device__ __forceinline__ A jt_neg_inf();
template <> __device__ __forceinline__ float jt_neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double jt_neg_inf<double>() { return __longlong_as_double(0xfff0000000000000LL); }
template <typename A> __device__ __forceinline__ A jt_nan();
template <> __device__ __forceinline__ float jt_nan<float>() { return __int_as_float(0x7fffffff); }
template <> __device__ __forceinline__ double jt_nan<double>() { return __longlong_as_double(0x7fffffffffffffffLL); }

// Stores an accumulator value of type A (float or double) into T, rounding once.
template <typename T, typename A>
__device__ __forceinline__ T store_as(A x) {
    if constexpr (sizeof(A) == 8) {
        return Num<T>::from_d((double) x);
    } else {
        return store_acc<T>(x);
    }
}

// ---- loads and stores of VEC consecutive elements as one access of up to JT_VECTOR_BYTES (the host checks the alignment)
template <int BYTES> struct Raw;
template <> struct Raw<2> { typedef unsigned short type; };
template <> struct Raw<4> { typedef unsigned int type; };
template <> struct Raw<8> { typedef uint2 type; };
template <> struct Raw<16> { typedef uint4 type; };

// Elements per widest access.
template <typename T> struct Vec { static constexpr int N = JT_VECTOR_BYTES / (int) sizeof(T); };

template <typename T, int VEC>
__device__ __forceinline__ void load_chunk(const T* p, typename Acc<T>::type* out) {
    constexpr int BYTES = VEC * (int) sizeof(T);
    if constexpr (VEC == 1) {
        out[0] = load_acc<T>(p[0]);
    } else if constexpr (BYTES <= JT_VECTOR_BYTES) {
        typedef typename Raw<BYTES>::type R;
        R raw = *reinterpret_cast<const R*>(p);
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int k = 0; k < VEC; k++) out[k] = load_acc<T>(e[k]);
    } else {
        constexpr int PER = JT_VECTOR_BYTES / (int) sizeof(T);
#pragma unroll
        for (int h = 0; h < BYTES / JT_VECTOR_BYTES; h++) load_chunk<T, PER>(p + h * PER, out + h * PER);
    }
}

template <typename T, int VEC>
__device__ __forceinline__ void store_chunk(T* p, const typename Acc<T>::type* in) {
    constexpr int BYTES = VEC * (int) sizeof(T);
    if constexpr (VEC == 1) {
        p[0] = store_acc<T>(in[0]);
    } else if constexpr (BYTES <= JT_VECTOR_BYTES) {
        typedef typename Raw<BYTES>::type R;
        R raw;
        T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
        for (int k = 0; k < VEC; k++) e[k] = store_acc<T>(in[k]);
        *reinterpret_cast<R*>(p) = raw;
    } else {
        constexpr int PER = JT_VECTOR_BYTES / (int) sizeof(T);
#pragma unroll
        for (int h = 0; h < BYTES / JT_VECTOR_BYTES; h++) store_chunk<T, PER>(p + h * PER, in + h * PER);
    }
}

// ---- reductions. Butterfly shuffles give every lane the same value (each step adds two commutative operands),
// and the cross-warp step reads the warps' partials in a fixed order: results are deterministic.
struct SumOp {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
struct MaxOp {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return jt_max(a, b); }
};

template <typename A, typename Op>
__device__ __forceinline__ A warp_reduce(A v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(JT_FULL_MASK, v, o));
    return v;
}

// Reduces v over the blockDim.x threads of one row; every thread of the block must call it (it synchronises
// when a row spans several warps) and every thread gets the result. scratch: 32 elements of shared memory.
template <typename A, typename Op>
__device__ __forceinline__ A row_reduce(A v, A* scratch, Op op) {
    v = warp_reduce(v, op);
    if (blockDim.x == 32) return v;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    __syncthreads();  // the previous reduction's readers are done with scratch
    if ((threadIdx.x & 31) == 0) scratch[warp] = v;
    __syncthreads();
    A r = scratch[0];
    for (int w = 1; w < warps; w++) r = op(r, scratch[w]);
    return r;
}

template <typename A> __device__ __forceinline__ A row_sum(A v, A* scratch) { return row_reduce(v, scratch, SumOp()); }
template <typename A> __device__ __forceinline__ A row_max(A v, A* scratch) { return row_reduce(v, scratch, MaxOp()); }

// One thread's running log-sum-exp state: m = max of the values seen, s = sum of exp(x - m). -inf values add
// nothing; a NaN value makes s NaN.
template <typename A>
struct OnlineLse {
    A m;
    A s;
    __device__ __forceinline__ OnlineLse() : m(jt_neg_inf<A>()), s((A) 0) {}

    template <int N>
    __device__ __forceinline__ void add(const A* v) {
        A cm = v[0];
#pragma unroll
        for (int k = 1; k < N; k++) cm = jt_max(cm, v[k]);
        if (cm > m) {
            s = m == jt_neg_inf<A>() ? (A) 0 : s * jt_exp(m - cm);
            m = cm;
        }
#pragma unroll
        for (int k = 0; k < N; k++) s += v[k] == jt_neg_inf<A>() ? (A) 0 : jt_exp(v[k] - m);
    }

    // Combines the threads of the row: every thread gets the row's max in m and its sum of exp(x - max) in s.
    __device__ __forceinline__ void finish(A* scratch) {
        A rowMax = row_max(m, scratch);
        A mine = m == jt_neg_inf<A>() ? (A) 0 : s * jt_exp(m - rowMax);
        s = row_sum(mine, scratch);
        m = rowMax;
    }

    // log sum exp of the row (after finish): an infinite max is the result itself (-inf when nothing finite was
    // seen, +inf as torch.logsumexp gives), else m + log(s).
    __device__ __forceinline__ A lse() const { return (m == jt_neg_inf<A>() || m == -jt_neg_inf<A>()) ? m : m + jt_log(s); }
};

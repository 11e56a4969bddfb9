// Cross-entropy over logits [N, V] and labels I32 [N], forward and backward, and the count of labels that are
// not a given value (the loss normaliser, kept on the device). loss and lse are F32, F64 for F64 logits; the
// one-element scale and count may be F32 or F64.
//
// The forward streams each row once with a running max and sum of exp (rows.cuh's OnlineLse), VEC logits per
// access where the rows are aligned; nothing is copied to fp32. The backward recomputes exp(x - lse), over all the
// vocabulary or over a block of its columns (CrossEntropy.linear's backward goes one vocabulary slice at a time).
#include "rows.cuh"

// CE_LOADS: how many of a thread's chunks of a row the forward loads before it uses the first (LossKernels.java).
#ifndef CE_LOADS
#error "CE_LOADS comes from LossKernels.java's KernelSource"
#endif

// loss[i] = lse[i] - logits[i, labels[i]], 0 when labels[i] == ignoreIndex, NaN for any other label outside [0, V).
template <typename T, int VEC>
__device__ void cross_entropy(const T* logits, const int* labels, typename Stat<T>::type* loss, typename Stat<T>::type* lse, i64 n, i64 v,
                              int ignoreIndex) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    const i64 chunks = v / VEC;
    JT_ROWS(row, n) {
        const T* xr = logits + row * v;
        OnlineLse<A> acc;
        const i64 step = blockDim.x;
        i64 k = threadIdx.x;
        // CE_LOADS of a thread's chunks loaded before any is used (one 16-byte load in flight a thread read Gemma's
        // 262,144-entry rows at ~2.1 TB/s); the same chunks in the same order, so the same bits.
        for (; k + (CE_LOADS - 1) * step < chunks; k += CE_LOADS * step) {
            A x[CE_LOADS][VEC];
#pragma unroll
            for (int u = 0; u < CE_LOADS; u++) load_chunk<T, VEC>(xr + (k + u * step) * VEC, x[u]);
#pragma unroll
            for (int u = 0; u < CE_LOADS; u++) acc.template add<VEC>(x[u]);
        }
        for (; k < chunks; k += step) {
            A x[VEC];
            load_chunk<T, VEC>(xr + k * VEC, x);
            acc.template add<VEC>(x);
        }
        acc.finish(scratch);
        if (threadIdx.x == 0) {
            const A l = acc.lse();
            lse[row] = (typename Stat<T>::type) l;
            const int label = labels[row];
            A out;
            if (label == ignoreIndex) {
                out = (A) 0;
            } else if (label >= 0 && label < v) {
                out = l - load_acc<T>(xr[label]);
            } else {
                out = jt_nan<A>();
            }
            loss[row] = (typename Stat<T>::type) out;
        }
    }
}

// logits [n, v] are the vocabulary's columns [col0, col0 + v) (all of it when col0 = 0 and v = V), so that a
// backward can go one vocabulary slice at a time:
// gradLogits[i, c] = scale[0] * (exp(logits[i, c] - lse[i]) - (col0 + c == labels[i])), 0 on ignored rows. A label
// outside the block gives its row no one-hot term here. May run in place.
template <typename T, int VEC>
__device__ void cross_entropy_backward(const T* logits, const int* labels, const typename Stat<T>::type* lse, const void* scale,
                                       int scaleF64, T* grad, i64 n, i64 v, i64 col0, int ignoreIndex) {
    typedef typename Acc<T>::type A;
    const i64 chunks = v / VEC;
    const A sc = (A) read_scalar(scale, scaleF64);
    JT_ROWS(row, n) {
        const T* xr = logits + row * v;
        T* gr = grad + row * v;
        const int label = labels[row];
        const i64 target = (i64) label - col0; // the label's column in this block; outside [0, v) for another block's
        const A l = (A) lse[row];
        const bool ignored = label == ignoreIndex;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A x[VEC];
            if (ignored) {
#pragma unroll
                for (int q = 0; q < VEC; q++) x[q] = (A) 0;
            } else {
                load_chunk<T, VEC>(xr + k * VEC, x);
#pragma unroll
                for (int q = 0; q < VEC; q++) {
                    A hot = (k * VEC + q == target) ? (A) 1 : (A) 0;
                    x[q] = sc * (jt_exp(x[q] - l) - hot);
                }
            }
            store_chunk<T, VEC>(gr + k * VEC, x);
        }
    }
}

// One block: out[0] = number of labels != value, as an F32 (or F64: outF64) number.
extern "C" __global__ void count_not_equal(const int* labels, i64 n, int value, void* out, int outF64) {
    __shared__ long long scratch[32];
    long long c = 0;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) c += labels[i] != value;
    c = row_sum(c, scratch);
    if (threadIdx.x == 0) write_scalar(out, outF64, (double) c);
}

#define JT_CE_V(sfx, T, name, V) \
    extern "C" __global__ void cross_entropy_##sfx##name(const T* logits, const int* labels, Stat<T>::type* loss, Stat<T>::type* lse, i64 n, i64 v, \
                                                     int ignoreIndex) { \
        cross_entropy<T, V>(logits, labels, loss, lse, n, v, ignoreIndex); } \
    extern "C" __global__ void cross_entropy_backward_##sfx##name(const T* logits, const int* labels, const Stat<T>::type* lse, const void* scale, \
                                                                 int scaleF64, T* grad, i64 n, i64 v, i64 col0, int ignoreIndex) { \
        cross_entropy_backward<T, V>(logits, labels, lse, scale, scaleF64, grad, n, v, col0, ignoreIndex); }
#define JT_CE(sfx, T) JT_CE_V(sfx, T, , 1) JT_CE_V(sfx, T, _vec, Vec<T>::N)
JT_FLOAT_TYPES(JT_CE)

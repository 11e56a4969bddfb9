// Row-wise softmax family over contiguous [R, C] tensors: softmax / log-softmax and their backward, row dot
// products, and the masked attention softmax (causal, sliding window) with its backward. Rows are spread over
// warps or blocks as rows.cuh describes; VEC elements move per access where the host found the rows aligned.
// Every output element is written by the thread that read the inputs at its position, so the in-place uses the
// contract allows (out = x, gradX = gradOut) are safe.
#include "rows.cuh"

template <typename T, int VEC>
__device__ void softmax(const T* x, T* out, i64 rows, i64 cols, int logSoftmax) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    const i64 chunks = cols / VEC;
    JT_ROWS(row, rows) {
        const T* xr = x + row * cols;
        OnlineLse<A> acc;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A v[VEC];
            load_chunk<T, VEC>(xr + k * VEC, v);
            acc.template add<VEC>(v);
        }
        acc.finish(scratch);
        const A m = acc.m;
        const A logSum = jt_log(acc.s);
        T* orow = out + row * cols;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A v[VEC];
            load_chunk<T, VEC>(xr + k * VEC, v);
#pragma unroll
            for (int q = 0; q < VEC; q++) v[q] = logSoftmax ? v[q] - m - logSum : jt_exp(v[q] - m) / acc.s;
            store_chunk<T, VEC>(orow + k * VEC, v);
        }
    }
}

// softmax: gx = y * (gy - sum(gy * y)); log-softmax: gx = gy - exp(y) * sum(gy).
template <typename T, int VEC>
__device__ void softmax_backward(const T* y, const T* gy, T* gx, i64 rows, i64 cols, int logSoftmax) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    const i64 chunks = cols / VEC;
    JT_ROWS(row, rows) {
        const T* yr = y + row * cols;
        const T* gr = gy + row * cols;
        A sum = 0;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A yv[VEC];
            A gv[VEC];
            load_chunk<T, VEC>(yr + k * VEC, yv);
            load_chunk<T, VEC>(gr + k * VEC, gv);
#pragma unroll
            for (int q = 0; q < VEC; q++) sum += logSoftmax ? gv[q] : gv[q] * yv[q];
        }
        sum = row_sum(sum, scratch);
        T* xr = gx + row * cols;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A yv[VEC];
            A gv[VEC];
            load_chunk<T, VEC>(yr + k * VEC, yv);
            load_chunk<T, VEC>(gr + k * VEC, gv);
#pragma unroll
            for (int q = 0; q < VEC; q++) gv[q] = logSoftmax ? gv[q] - jt_exp(yv[q]) * sum : yv[q] * (gv[q] - sum);
            store_chunk<T, VEC>(xr + k * VEC, gv);
        }
    }
}

template <typename T, int VEC>
__device__ void row_dot(const T* a, const T* b, typename Stat<T>::type* out, i64 rows, i64 cols) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    const i64 chunks = cols / VEC;
    JT_ROWS(row, rows) {
        A sum = 0;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            A av[VEC];
            A bv[VEC];
            load_chunk<T, VEC>(a + row * cols + k * VEC, av);
            load_chunk<T, VEC>(b + row * cols + k * VEC, bv);
#pragma unroll
            for (int q = 0; q < VEC; q++) sum += av[q] * bv[q];
        }
        sum = row_sum(sum, scratch);
        if (threadIdx.x == 0) out[row] = (typename Stat<T>::type) sum;
    }
}

// The visible columns of row r are [lo, hi): key colStart + c is visible to query q = rowStart + r % rowsPerHead
// when colStart + c <= q and (window == 0 or q - (colStart + c) < window).
__device__ __forceinline__ void visible_columns(i64 row, i64 cols, i64 rowStart, i64 rowsPerHead, i64 colStart, i64 window,
                                                i64* lo, i64* hi) {
    const i64 q = rowStart + row % rowsPerHead;
    i64 h = q - colStart + 1;
    if (h > cols) h = cols;
    i64 l = window > 0 ? q - window + 1 - colStart : 0;
    if (l < 0) l = 0;
    *lo = l;
    *hi = h;  // empty when h <= l
}

// Over a packed row (ops.AttentionMask; seg and grp I32 [T] of the row, grp may be null): column c of the visible
// range is seen by query q when seg[q] >= 0, seg[q] == seg[key] and either causal (and in the window) or
// grp[q] >= 0 and grp[q] == grp[key]; with groups the range is every column (a group reaches past the query).
struct RowMask {
    const int* seg;
    const int* grp;
    int qs;
    int qg;
    i64 q;
    i64 window;
    __device__ __forceinline__ bool sees(i64 key) const {
        if (qs < 0 || seg[key] != qs) return false;
        if (key <= q && (window <= 0 || q - key < window)) return true;
        return qg >= 0 && grp[key] == qg;
    }
};

// scores S [R, C] -> probs [R, C] (P), lse S [R] (written, or read when lseIn); S is F32 (math in fp32), or F64
// (math in fp64) for float64 checks. MASKED: over a packed row (RowMask), seg and grp its ids.
template <typename S, typename P, int VEC, bool MASKED>
__device__ void attention_softmax(const S* scores, P* probs, S* lse, i64 rows, i64 cols, i64 rowStart,
                                  i64 rowsPerHead, i64 colStart, i64 window, double scaleArg, int lseIn,
                                  const int* seg, const int* grp) {
    __shared__ S scratch[32];
    const S negInf = jt_neg_inf<S>();
    const S scale = (S) scaleArg;
    const i64 chunks = cols / VEC;
    JT_ROWS(row, rows) {
        i64 lo;
        i64 hi;
        visible_columns(row, cols, rowStart, rowsPerHead, colStart, window, &lo, &hi);
        RowMask mask = {seg, grp, 0, -1, rowStart + row % rowsPerHead, window};
        if (MASKED) {
            mask.qs = seg[mask.q];
            mask.qg = grp != nullptr ? grp[mask.q] : -1;
            if (grp != nullptr) {
                lo = 0;
                hi = cols;
            }
        }
        const S* sr = scores + row * cols;
        S l;
        if (lseIn) {
            l = lse[row];
        } else {
            OnlineLse<S> acc;
            if (hi > lo) {
                for (i64 k = lo / VEC + threadIdx.x; k * VEC < hi; k += blockDim.x) {
                    S v[VEC];
                    load_chunk<S, VEC>(sr + k * VEC, v);
#pragma unroll
                    for (int q = 0; q < VEC; q++) {
                        i64 c = k * VEC + q;
                        v[q] = (c >= lo && c < hi && (!MASKED || mask.sees(colStart + c))) ? scale * v[q] : negInf;
                    }
                    acc.template add<VEC>(v);
                }
            }
            acc.finish(scratch);  // every thread of the row takes part, also for an empty row
            l = hi > lo ? acc.lse() : negInf;
            if (threadIdx.x == 0) lse[row] = l;
        }
        P* pr = probs + row * cols;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            S v[VEC];
            if (k * VEC + VEC > lo && k * VEC < hi && l != negInf) {
                load_chunk<S, VEC>(sr + k * VEC, v);
#pragma unroll
                for (int q = 0; q < VEC; q++) {
                    i64 c = k * VEC + q;
                    v[q] = (c >= lo && c < hi && (!MASKED || mask.sees(colStart + c))) ? jt_exp(scale * v[q] - l) : (S) 0;
                }
            } else {
#pragma unroll
                for (int q = 0; q < VEC; q++) v[q] = (S) 0;
            }
            typename Acc<P>::type o[VEC];
#pragma unroll
            for (int q = 0; q < VEC; q++) o[q] = (typename Acc<P>::type) v[q];
            store_chunk<P, VEC>(pr + k * VEC, o);
        }
    }
}

// gradScores[r, c] = scale * probs[r, c] * (gradProbs[r, c] - delta[r]); blockIdx.y walks rows, x covers columns.
// gradProbs and delta are S (F32, or F64 for float64 checks); math in double when S or P is double. gradScores may
// be probs: each element is read before the same thread overwrites it.
template <typename S, typename P, typename G>
__device__ void attention_softmax_backward(const P* probs, const S* gradProbs, const S* delta, G* gradScores,
                                           i64 rows, i64 cols, double scale) {
    typedef typename Acc<P>::type AP;
    typedef typename Acc<S>::type AS;
    typedef typename Wider<AP, AS>::type A;
    const A s = (A) scale;
    for (i64 row = blockIdx.y; row < rows; row += gridDim.y) {
        const A dr = (A) delta[row];
        const i64 base = row * cols;
        for (i64 c = (i64) blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (i64) gridDim.x * blockDim.x) {
            A g = s * (A) load_acc<P>(probs[base + c]) * ((A) gradProbs[base + c] - dr);
            gradScores[base + c] = store_as<G>(g);
        }
    }
}

#define JT_SOFTMAX_V(sfx, T, name, V) \
    extern "C" __global__ void softmax_##sfx##name(const T* x, T* out, i64 rows, i64 cols, int logSoftmax) { \
        softmax<T, V>(x, out, rows, cols, logSoftmax); } \
    extern "C" __global__ void softmax_backward_##sfx##name(const T* y, const T* gy, T* gx, i64 rows, i64 cols, int logSoftmax) { \
        softmax_backward<T, V>(y, gy, gx, rows, cols, logSoftmax); } \
    extern "C" __global__ void row_dot_##sfx##name(const T* a, const T* b, Stat<T>::type* out, i64 rows, i64 cols) { \
        row_dot<T, V>(a, b, out, rows, cols); }
#define JT_SOFTMAX(sfx, T) JT_SOFTMAX_V(sfx, T, , 1) JT_SOFTMAX_V(sfx, T, _vec, Vec<T>::N)
JT_FLOAT_TYPES(JT_SOFTMAX)

// attention: vector width ATTENTION_VEC (SoftmaxKernels.java; 4: 16 bytes of F32 scores) for every probs dtype. F32
// scores with any probs dtype; F64 scores (float64 checks) with F64 probs.
#ifndef ATTENTION_VEC
#error "ATTENTION_VEC comes from SoftmaxKernels.java's KernelSource"
#endif
#define JT_ATTN_V(ss, S, ps, P, name, V) \
    extern "C" __global__ void attention_softmax_##ss##_##ps##name(const S* scores, P* probs, S* lse, i64 rows, i64 cols, i64 rowStart, \
                                                                   i64 rowsPerHead, i64 colStart, i64 window, double scale, int lseIn) { \
        attention_softmax<S, P, V, false>(scores, probs, lse, rows, cols, rowStart, rowsPerHead, colStart, window, scale, lseIn, nullptr, nullptr); }
// packed rows: one element at a time (the blocked path runs on the GPU only for F32, a logit cap or other head sizes)
#define JT_ATTN_MASKED(ss, S, ps, P) \
    extern "C" __global__ void attention_softmax_masked_##ss##_##ps(const S* scores, P* probs, S* lse, i64 rows, i64 cols, i64 rowStart, \
            i64 rowsPerHead, i64 colStart, i64 window, double scale, int lseIn, const int* seg, const int* grp) { \
        attention_softmax<S, P, 1, true>(scores, probs, lse, rows, cols, rowStart, rowsPerHead, colStart, window, scale, lseIn, seg, grp); }
#define JT_ATTN(ss, S, ps, P) JT_ATTN_V(ss, S, ps, P, , 1) JT_ATTN_V(ss, S, ps, P, _vec, ATTENTION_VEC) JT_ATTN_MASKED(ss, S, ps, P)
JT_ATTN(f32, float, f64, double)
JT_ATTN(f32, float, f32, float)
JT_ATTN(f32, float, bf16, __nv_bfloat16)
JT_ATTN(f32, float, f16, __half)
JT_ATTN(f64, double, f64, double)

#define JT_ATTN_BWD(ss, S, ps, P, gs, G) \
    extern "C" __global__ void attention_softmax_backward_##ss##_##ps##_##gs(const P* probs, const S* gradProbs, const S* delta, G* gradScores, \
                                                                             i64 rows, i64 cols, double scale) { \
        attention_softmax_backward<S, P, G>(probs, gradProbs, delta, gradScores, rows, cols, scale); }
#define JT_ATTN_BWD_P(ps, P) \
    JT_ATTN_BWD(f32, float, ps, P, f64, double) JT_ATTN_BWD(f32, float, ps, P, f32, float) \
    JT_ATTN_BWD(f32, float, ps, P, bf16, __nv_bfloat16) JT_ATTN_BWD(f32, float, ps, P, f16, __half)
JT_FLOAT_TYPES(JT_ATTN_BWD_P)
JT_ATTN_BWD(f64, double, f64, double, f64, double)

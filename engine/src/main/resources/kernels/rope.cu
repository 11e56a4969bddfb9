// Rotary position embedding, HF's rotate-half convention, on x [B, H, T, D] with positions I32 [B, T]. x and out
// each have their own strides on B, H and T (in elements; D is unit-stride), so the attention path rotates q and k
// straight out of the projection's [B, T, H, D] layout into [B, H, T, D], and the backward writes the gradient back
// in the projection's layout: no transposing copy either way.
//
// invFreq[d] = (float) (1 / base^(2d / D)) is computed once per block in double and rounded once to float (the
// value of the Java reference), into shared memory; angle = (float) pos * invFreq[d] is the fp32 product HF
// forms. cos and sin are taken in double of that float angle, like the reference, and used in the accumulation
// type (rounded to float for 16/32-bit tensors, kept in double for F64). A thread per (b, t, d < D/2) computes
// its cos/sin once and rotates that pair in all H heads; a block takes a (b, t) row at a time. Each element is written by the thread that read it, so
// out may be x (with the same strides).
#include "rope.cuh"

template <typename T>
__device__ void rope(const T* x, const int* positions, T* out, i64 b, i64 h, i64 t, i64 d, i64 xsb, i64 xsh, i64 xst,
                     i64 osb, i64 osh, i64 ost, double base, double scaling, int inverse) {
    typedef typename Acc<T>::type A;
    extern __shared__ float invFreq[];
    const i64 half = d / 2;
    for (i64 k = threadIdx.x; k < half; k += blockDim.x) {
        invFreq[k] = rope_inverse_frequency(k, d, base, scaling);
    }
    __syncthreads();
    // a block per (b, t) row at a time, its threads over the pairs: no 64-bit divisions per element
    for (i64 bt = blockIdx.x; bt < b * t; bt += gridDim.x) {
        const i64 bi = bt / t;
        const i64 ti = bt - bi * t;
        const float pos = (float) positions[bt];
        for (i64 k = threadIdx.x; k < half; k += blockDim.x) {
            A c;
            A s;
            rope_cos_sin(pos, invFreq[k], inverse, &c, &s);
            i64 xo = bi * xsb + ti * xst + k;
            i64 oo = bi * osb + ti * ost + k;
            for (i64 hi = 0; hi < h; hi++, xo += xsh, oo += osh) {
                A o1;
                A o2;
                rope_rotate(load_acc<T>(x[xo]), load_acc<T>(x[xo + half]), c, s, &o1, &o2);
                out[oo] = store_acc<T>(o1);
                out[oo + half] = store_acc<T>(o2);
            }
        }
    }
}

#define JT_ROPE(sfx, T) \
    extern "C" __global__ void rope_##sfx(const T* x, const int* positions, T* out, i64 b, i64 h, i64 t, i64 d, i64 xsb, i64 xsh, \
            i64 xst, i64 osb, i64 osh, i64 ost, double base, double scaling, int inverse) { \
        rope<T>(x, positions, out, b, h, t, d, xsb, xsh, xst, osb, osh, ost, base, scaling, inverse); }
JT_FLOAT_TYPES(JT_ROPE)

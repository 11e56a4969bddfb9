// Rotary position embedding's arithmetic, in one place for rope.cu and norm.cu's fused norm and rotation, so that
// both round alike: the fp32 inverse frequency, the fp32 angle with cos and sin in double, and the rotation of a pair.
#pragma once
#include "rows.cuh"

// (float) (1 / (scaling * base^(2k / D))), rounded once from double.
__device__ __forceinline__ float rope_inverse_frequency(i64 k, i64 d, double base, double scaling) {
    return (float) (1.0 / (scaling * pow(base, (double) (2 * k) / (double) d)));
}

// cos and sin (negated when inverse) of the fp32 angle pos * invFreq, taken in double and rounded to A.
template <typename A>
__device__ __forceinline__ void rope_cos_sin(float pos, float invFreq, int inverse, A* c, A* s) {
    const float angle = pos * invFreq;
    double sd;
    double cd;
    sincos((double) angle, &sd, &cd);
    *c = (A) cd;
    *s = inverse ? (A) -sd : (A) sd;
}

__device__ __forceinline__ float rope_fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double rope_fma(double a, double b, double c) { return __fma_rn(a, b, c); }

// The pair (x1, x2) rotated: o1 = x1 c - x2 s, o2 = x2 c + x1 s. The second multiply-add is spelt out as
// fma(s, x1, x2 c), the compiler's own choice in rope.cu, since left to the compiler the fused kernel got
// fma(x2, c, x1 s) (one rounding elsewhere: the fp32 LoRA golden's weights after three AdamW steps moved from 3.27e-5
// to 1.46e-4); the first is two products and a difference in both.
template <typename A>
__device__ __forceinline__ void rope_rotate(A x1, A x2, A c, A s, A* o1, A* o2) {
    *o1 = x1 * c - x2 * s;
    *o2 = rope_fma(s, x1, x2 * c);
}

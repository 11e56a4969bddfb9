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
// a * b - c * d, two rounded products and a rounded difference (never contracted: the compiler's choice of which
// product to fuse differed between rope.cu and the fused norm's rotation on an H100 in F64)
__device__ __forceinline__ float rope_diff(float a, float b, float c, float d) { return __fsub_rn(__fmul_rn(a, b), __fmul_rn(c, d)); }
__device__ __forceinline__ double rope_diff(double a, double b, double c, double d) { return __dsub_rn(__dmul_rn(a, b), __dmul_rn(c, d)); }

// The pair (x1, x2) rotated: o1 = x1 c - x2 s, o2 = x2 c + x1 s, both spelt out so that every kernel rounds alike.
// The second is fma(s, x1, x2 c), the compiler's own choice in rope.cu, since left to the compiler the fused kernel got
// fma(x2, c, x1 s) (one rounding elsewhere: the fp32 LoRA golden's weights after three AdamW steps moved from 3.27e-5
// to 1.46e-4); the first two rounded products and a rounded difference (rope_diff: left to ptxas, the registers path
// of the fused norm came out one F64 ulp from the shared-memory path on an H100).
template <typename A>
__device__ __forceinline__ void rope_rotate(A x1, A x2, A c, A s, A* o1, A* o2) {
    *o1 = rope_diff(x1, c, x2, s);
    *o2 = rope_fma(s, x1, x2 * c);
}

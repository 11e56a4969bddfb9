// What the fused attention kernels (flash.cu on mma.sync, flash_wgmma.cu on wgmma) share: the visibility rule (key j
// is visible to query i when j <= i and, with a window w > 0, i - j < w; over packed rows, ops.AttentionMask's
// segments and groups I32 [B, T], only within the same segment, where a bidirectional group also sees its later
// tokens) and the online softmax's rescaling step.
#pragma once
#include "common.cuh"

// From FlashKernels.java (FlashKernels.Layout): the bits of a launch's `layout` argument, one per operand, set where it
// is tokens-major ([B, T, H, D] memory viewed as [B, H, T, D]: the projections' own layout, read and written without
// a transposing copy) rather than heads-major (contiguous [B, H, T, D]). A gradient takes its input's layout; O is the
// forward's output and the backward's output gradient.
#if !defined(FLASH_LAYOUT_Q) || !defined(FLASH_LAYOUT_K) || !defined(FLASH_LAYOUT_V) || !defined(FLASH_LAYOUT_O)
#error "FLASH_LAYOUT_Q, _K, _V and _O come from FlashKernels.java's Layout"
#endif

namespace amask {

// Where head bh (of `heads` per batch row, rows of d) of an operand starts and how far apart its rows are, in elements.
struct Head {
    i64 first;
    i64 stride;
};

__device__ __forceinline__ Head head(i64 bh, int heads, int t, int d, int layout, int bit) {
    if ((layout & bit) != 0) {
        return {(bh / heads) * t * (i64) heads * d + (bh % heads) * d, (i64) heads * d};
    }
    return {bh * t * (i64) d, d};
}

constexpr float LN2 = 0.6931471805599453f;

// NVRTC has no math.h, so no INFINITY macro.
__device__ __forceinline__ float inf() { return __int_as_float(0x7f800000); }

// The key tiles [*begin, *end) of BN keys that queries [q0, q0 + ROWS) can see.
template <int BN, int ROWS>
__device__ __forceinline__ void key_range(i64 q0, int window, i64 t, i64* begin, i64* end) {
    const i64 b = window > 0 ? q0 - window + 1 : 0;
    *begin = b < 0 ? 0 : b / BN * BN;
    *end = q0 + ROWS < t ? q0 + ROWS : t;
}

__device__ __forceinline__ bool visible(i64 query, i64 key, i64 window) {
    return key <= query && (window <= 0 || query - key < window);
}

// Over packed rows: qs, ks the query's and key's segments (-1: padding or past the row's end, -2: a key past it),
// qg, kg their groups (-1: none).
__device__ __forceinline__ bool visible_masked(i64 query, i64 key, i64 window, int qs, int ks, int qg, int kg) {
    return qs >= 0 && qs == ks && (visible(query, key, window) || (qg >= 0 && qg == kg));
}

// A token's segment and group in a batch row (seg + b T, grp + b T or null); past the row's end: `outside`, -1.
__device__ __forceinline__ int seg_at(const int* seg, i64 i, i64 t, int outside) { return i < t ? seg[i] : outside; }
__device__ __forceinline__ int grp_at(const int* grp, i64 i, i64 t) { return grp != nullptr && i < t ? grp[i] : -1; }

// This thread's pair of tokens `first` and `first + stride`: their segments (`outside` past the row's end) and groups;
// unmasked, nothing is read.
template <bool MASKED>
__device__ __forceinline__ void token_pair(const int* seg, const int* grp, i64 first, i64 stride, i64 t, int outside, int s[2], int g[2]) {
    s[0] = s[1] = 0;
    g[0] = g[1] = -1;
    if (MASKED) {
#pragma unroll
        for (int c = 0; c < 2; c++) {
            s[c] = seg_at(seg, first + c * stride, t, outside);
            g[c] = grp_at(grp, first + c * stride, t);
        }
    }
}

// Packed rows: moves seg and grp to batch row b; with groups the whole row is scanned ([*begin, *end) = [0, t)), since
// a group's earlier tokens see its later ones.
template <bool MASKED>
__device__ __forceinline__ void mask_row(const int*& seg, const int*& grp, i64 b, i64 t, i64* begin, i64* end) {
    if (MASKED) {
        seg += b * t;
        grp = grp != nullptr ? grp + b * t : nullptr;
        if (grp != nullptr) {
            *begin = 0;
            *end = t;
        }
    }
}

// The online softmax's step for this thread's two rows of a score tile in the mma C layout, where a row's scores are
// spread over the 4 threads of a quad: mx holds the rows' maxima over this thread's new scores and the running
// maxima m, and is reduced over the quad here; ref is what each new score's exp2 is taken against (0 for a row that has
// seen nothing yet), corr the factor that rescales the running sums l (here) and the output accumulators (the
// caller); m becomes the new maxima. Scores and maxima are in base 2.
__device__ __forceinline__ void online_max(float mx[2], float m[2], float l[2], float corr[2], float ref[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        ref[r] = mx[r] == -inf() ? 0.f : mx[r];
        corr[r] = exp2f(m[r] - ref[r]);
        m[r] = mx[r];
        l[r] *= corr[r];
    }
}

// The online softmax's end for this thread's two rows (row0 and row0 + 8): the running sums l reduced over the quad,
// inv their inverses (0 for a row that saw nothing), and each row's lse (natural log; -inf for a row that saw nothing)
// written by the quad's first thread into lse_rows (the head's [t] lse).
__device__ __forceinline__ void finish_rows(float l[2], const float m[2], float inv[2], float* lse_rows, i64 row0, i64 t, int tig) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;
        const i64 row = row0 + r * 8;
        if (tig == 0 && row < t) lse_rows[row] = l[r] > 0.f ? m[r] * LN2 + logf(l[r]) : -inf();
    }
}

}  // namespace amask

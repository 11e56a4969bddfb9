// Fused causal attention for bf16/f16 heads of size D (FlashAttention-2's algorithm, on the tensor cores' mma.sync
// m16n8k16 with fp32 accumulation): one launch per forward and two per backward replace the per-block loop of
// products and softmax launches. q [B, Hq, T, D], k and v [B, Hkv, T, D], contiguous; query head h reads key/value
// head h / (Hq / Hkv). Key j is visible to query i when j <= i and, with a window w > 0, i - j < w. lse [B, Hq, T]
// is log sum over visible keys of exp(scale * q.k) (natural log), as the blocked path's attention_softmax writes it.
// The _masked kernels take packed rows (ops.AttentionMask): seg and grp I32 [B, T] (grp may be null); key j is
// visible to query i of the same batch row when seg[i] >= 0, seg[i] == seg[j] and either the causal rule above holds
// or grp[i] >= 0 and grp[i] == grp[j]. With groups the key (query) range of a tile is the whole row, since a group
// reaches past the query; without, the causal/window range. A query that sees nothing gets out 0 and lse -inf. The
// unmasked kernels are the same templates with MASKED false, their code unchanged.
//
// Layout: 4 warps per block; each warp owns 16 rows of a tile and keeps its accumulators in registers in the
// mma's C layout (thread lane holds rows lane/4 and lane/4 + 8, columns 2 (lane % 4) + {0, 1} of each 8-wide
// tile). Tiles of q, k, v, dO live in shared memory with rows padded by 8 elements (16 bytes) against bank
// conflicts. Softmax statistics are fp32 and kept in base 2 (exp2 of scores pre-multiplied by scale * log2(e)).
#include "attention.cuh"

// From FlashKernels.java: warps per block, the padding of shared rows, and per head size D the tiles
// FLASH_KEYS_D, FLASH_DQ_KEYS_D, FLASH_DKV_COLUMNS_D and FLASH_DKV_QUERIES_D (see JT_FLASH_SIZES below).
#if !defined(FLASH_WARPS) || !defined(FLASH_PAD)
#error "FLASH_WARPS and FLASH_PAD come from FlashKernels.java's KernelSource"
#endif

namespace flash {

using namespace amask;  // visibility, packed rows' segments and groups, the online softmax step (attention.cuh)

constexpr int WARPS = FLASH_WARPS;
constexpr int THREADS = WARPS * 32;
constexpr int PAD = FLASH_PAD;
constexpr float LOG2E = 1.4426950408889634f;

template <typename E> struct Ops;
template <> struct Ops<__nv_bfloat16> {
    __device__ static __forceinline__ void mma(float* c, const unsigned* a, const unsigned* b) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    __device__ static __forceinline__ unsigned pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<unsigned*>(&v);
    }
};
template <> struct Ops<__half> {
    __device__ static __forceinline__ void mma(float* c, const unsigned* a, const unsigned* b) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    __device__ static __forceinline__ unsigned pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<unsigned*>(&v);
    }
};

// Four 8 x 8 matrices of 16-bit elements from shared memory, one instruction: lane l gives the address of row l % 8
// of matrix l / 8 and receives, of matrix i in r[i], row l / 4, elements 2 (l % 4) and + 1 (ldmatrix); with
// .trans it receives the transposed matrix's, which turns a row-major [k][n] tile into the mma's B layout.
__device__ __forceinline__ void ldsm4(unsigned* r, const void* p) {
    const unsigned a = (unsigned) __cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void ldsm4t(unsigned* r, const void* p) {
    const unsigned a = (unsigned) __cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// Starts copying rows [row0, row0 + ROWS) of a head (rows `stride` elements apart) into a padded shared tile (cp.async, 16 bytes a copy, so
// all copies are in flight at once); rows at or past T read as zeros. cp_commit() closes a group of copies and
// cp_wait<N>() waits until at most the N newest groups are still pending; a barrier then publishes the tile.
template <typename E, int D, int ROWS>
__device__ __forceinline__ void load_tile(E* s, const E* g, i64 row0, i64 t, i64 stride) {
    constexpr int VPR = D / 8;  // 16-byte vectors per row
#pragma unroll 4
    for (int i = threadIdx.x; i < ROWS * VPR; i += THREADS) {
        const int r = i / VPR;
        const int c = (i % VPR) * 8;
        const bool inside = row0 + r < t;
        const E* src = inside ? g + (row0 + r) * stride + c : g;
        const unsigned dst = (unsigned) __cvta_generic_to_shared(s + r * (D + PAD) + c);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(inside ? 16 : 0));
    }
}

__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

template <int N> __device__ __forceinline__ void zero(float (*acc)[4]) {
#pragma unroll
    for (int n = 0; n < N; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
}

// acc[N][4] += A (16 rows of `a` from row `arow`, k over D) x B^T where B's rows are `b` rows brow + 8n (k over D):
// the product of a row-major 16 x D tile with N 8-row tiles of another row-major tile (q.k^T, dO.v^T, k.q^T, ...).
template <typename E, int D, int N>
__device__ __forceinline__ void rows_times_rows(float (*acc)[4], const E* a, const E* b, int lane) {
    constexpr int P = D + PAD;
    // A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15);
    // B: per pair of 8-row tiles n, n + 1: (n, k 0-7), (n, k 8-15), (n + 1, k 0-7), (n + 1, k 8-15)
    const E* arow = a + ((lane & 7) + ((lane >> 3) & 1) * 8) * P + (lane >> 4) * 8;
    const E* brow = b + ((lane & 7) + (lane >> 4) * 8) * P + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        unsigned af[4];
        ldsm4(af, arow + kk * 16);
#pragma unroll
        for (int n = 0; n < N; n += 2) {
            unsigned bf[4];
            ldsm4(bf, brow + n * 8 * P + kk * 16);
            Ops<E>::mma(acc[n], af, bf);
            Ops<E>::mma(acc[n + 1], af, bf + 2);
        }
    }
}

// acc[C / 8][4] += X (16 x K, in C-layout registers x[K / 8][4], rounded to E) x B where B is rows [0, K) of the
// row-major tile `b`, columns [c0, c0 + C): the second product of each pair (P.v, dS.k, P^T.dO, dS^T.q).
template <typename E, int D, int K, int C>
__device__ __forceinline__ void regs_times_tile(float (*acc)[4], const float (*x)[4], const E* b, int c0, int lane) {
    constexpr int P = D + PAD;
    // B, transposed from row-major [k][n]: per pair of column tiles n, n + 1: (k 0-7, n), (k 8-15, n), (k 0-7, n + 1),
    // (k 8-15, n + 1)
    const E* brow = b + ((lane & 7) + ((lane >> 3) & 1) * 8) * P + c0 + (lane >> 4) * 8;
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        unsigned af[4] = {Ops<E>::pack(x[2 * kk][0], x[2 * kk][1]), Ops<E>::pack(x[2 * kk][2], x[2 * kk][3]),
                          Ops<E>::pack(x[2 * kk + 1][0], x[2 * kk + 1][1]), Ops<E>::pack(x[2 * kk + 1][2], x[2 * kk + 1][3])};
#pragma unroll
        for (int n = 0; n < C / 8; n += 2) {
            unsigned bf[4];
            ldsm4t(bf, brow + kk * 16 * P + n * 8);
            Ops<E>::mma(acc[n], af, bf);
            Ops<E>::mma(acc[n + 1], af, bf + 2);
        }
    }
}

// Stores rows r and r + 8 (C layout) of acc[C / 8][4] times per-row factors into a head's rows (`stride` apart) at
// column c0.
template <typename E, int D, int C>
__device__ __forceinline__ void store_rows(E* out, const float (*acc)[4], i64 row, i64 t, int c0, float f0, float f1, int lane,
                                           i64 stride = D) {
    const int tig = lane & 3;
#pragma unroll
    for (int n = 0; n < C / 8; n++) {
        const int c = c0 + n * 8 + 2 * tig;
        if (row < t) *reinterpret_cast<unsigned*>(out + row * stride + c) = Ops<E>::pack(acc[n][0] * f0, acc[n][1] * f0);
        if (row + 8 < t) *reinterpret_cast<unsigned*>(out + (row + 8) * stride + c) = Ops<E>::pack(acc[n][2] * f1, acc[n][3] * f1);
    }
}

// Stores rows r and r + 8 (C layout) of acc[C / 8][4] as fp32 into row-major [T, D] at column c0.
template <int D, int C>
__device__ __forceinline__ void store_rows_f32(float* out, const float (*acc)[4], i64 row, i64 t, int c0, int lane) {
    const int tig = lane & 3;
#pragma unroll
    for (int n = 0; n < C / 8; n++) {
        const int c = c0 + n * 8 + 2 * tig;
        if (row < t) *reinterpret_cast<float2*>(out + row * D + c) = make_float2(acc[n][0], acc[n][1]);
        if (row + 8 < t) *reinterpret_cast<float2*>(out + (row + 8) * D + c) = make_float2(acc[n][2], acc[n][3]);
    }
}

// The query tile of a forward or dQ block: grid (B * Hq, tiles of 64 queries), the longest (last) tiles first;
// its query head bh and the key/value head that head reads.
struct QueryTile {
    i64 q0;
    i64 bh;
    i64 kvHead;
};

__device__ __forceinline__ QueryTile query_tile(int hq, int hkv) {
    QueryTile r;
    r.q0 = (i64) (gridDim.y - 1 - blockIdx.y) * (WARPS * 16);
    r.bh = blockIdx.x;
    r.kvHead = (r.bh / hq) * hkv + (r.bh % hq) / (hq / hkv);
    return r;
}

// Forward: grid (B * Hq, query tiles of 64); the longest (last) query tiles start first.
template <typename E, int D, int BN, bool MASKED>
__device__ void forward(const E* q, const E* k, const E* v, E* out, float* lse, const int* seg, const int* grp, int t, int hq,
                        int hkv, int window, float scale, int layout) {
    constexpr int BM = WARPS * 16;
    constexpr int P = D + PAD;
    extern __shared__ __align__(16) unsigned char smem[];
    E* qs = reinterpret_cast<E*>(smem);
    E* ks = qs + BM * P;
    E* vs = ks + BN * P;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int tig = lane & 3;
    const QueryTile tile = query_tile(hq, hkv);
    const i64 q0 = tile.q0;
    const i64 bh = tile.bh;
    const i64 kvHead = tile.kvHead;
    const Head qh = head(bh, hq, t, D, layout, FLASH_LAYOUT_Q);
    const Head kh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_K);
    const Head vh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_V);
    const i64 row0 = q0 + warp * 16 + (lane >> 2);  // this thread's rows: row0 and row0 + 8
    float o[D / 8][4];
    zero<D / 8>(o);
    float m[2] = {-inf(), -inf()};
    float l[2] = {0.f, 0.f};
    const float s2 = scale * LOG2E;
    i64 kBegin;
    i64 kEnd;
    key_range<BN, WARPS * 16>(q0, window, t, &kBegin, &kEnd);
    mask_row<MASKED>(seg, grp, bh / hq, t, &kBegin, &kEnd);
    int qseg[2];
    int qgrp[2];
    token_pair<MASKED>(seg, grp, row0, 8, t, -1, qseg, qgrp);
    // copy groups in flight: {q, k tile 0}, {v tile 0}; then per tile the next k after the scores, the next v after
    // the product with v, so each copy overlaps the work on the other operand
    load_tile<E, D, BM>(qs, q + qh.first, q0, t, qh.stride);
    load_tile<E, D, BN>(ks, k + kh.first, kBegin, t, kh.stride);
    cp_commit();
    load_tile<E, D, BN>(vs, v + vh.first, kBegin, t, vh.stride);
    cp_commit();
    for (i64 k0 = kBegin; k0 < kEnd; k0 += BN) {
        cp_wait<1>();  // q and this k tile
        __syncthreads();
        float s[BN / 8][4];
        zero<BN / 8>(s);
        rows_times_rows<E, D, BN / 8>(s, qs + warp * 16 * P, ks, lane);
        __syncthreads();  // k is read: the next k tile may land
        if (k0 + BN < kEnd) load_tile<E, D, BN>(ks, k + kh.first, k0 + BN, t, kh.stride);
        cp_commit();
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            int kseg[2];
            int kgrp[2];
            token_pair<MASKED>(seg, grp, k0 + n * 8 + 2 * tig, 1, t, -2, kseg, kgrp);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const i64 key = k0 + n * 8 + 2 * tig + (e & 1);
                const i64 row = row0 + (e >> 1) * 8;
                const bool seen = MASKED ? visible_masked(row, key, window, qseg[e >> 1], kseg[e & 1], qgrp[e >> 1], kgrp[e & 1])
                                         : visible(row, key, window);
                const float x = seen ? s[n][e] * s2 : -inf();
                s[n][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        }
        float corr[2];
        float ref[2];
        online_max(mx, m, l, corr, ref);
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            o[n][0] *= corr[0];
            o[n][1] *= corr[0];
            o[n][2] *= corr[1];
            o[n][3] *= corr[1];
        }
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float p = exp2f(s[n][e] - ref[e >> 1]);
                s[n][e] = p;
                l[e >> 1] += p;
            }
        }
        cp_wait<1>();  // this v tile
        __syncthreads();
        regs_times_tile<E, D, BN, D>(o, s, vs, 0, lane);
        __syncthreads();  // v is read: the next v tile may land
        if (k0 + BN < kEnd) load_tile<E, D, BN>(vs, v + vh.first, k0 + BN, t, vh.stride);
        cp_commit();
    }
    cp_wait<0>();
    float inv[2];
    finish_rows(l, m, inv, lse + (i64) bh * t, row0, t, tig);
    const Head oh = head(bh, hq, t, D, layout, FLASH_LAYOUT_O);
    store_rows<E, D, D>(out + oh.first, o, row0, t, 0, inv[0], inv[1], lane, oh.stride);
}

// Backward, dQ: grid (B * Hq, query tiles of 64). Recomputes P = exp(scale q.k - lse) per key tile;
// dS = P (dO.v - delta) scale; dQ = dS k. delta[row] = dO . out (fp32, computed before).
template <typename E, int D, int BN, bool MASKED>
__device__ void backward_dq(const E* q, const E* k, const E* v, const E* gout, const float* lse, const float* delta, E* gq,
                            const int* seg, const int* grp, int t, int hq, int hkv, int window, float scale, int layout) {
    constexpr int BM = WARPS * 16;
    constexpr int P = D + PAD;
    extern __shared__ __align__(16) unsigned char smem[];
    E* qs = reinterpret_cast<E*>(smem);
    E* gs = qs + BM * P;
    E* ks = gs + BM * P;
    E* vs = ks + BN * P;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int tig = lane & 3;
    const QueryTile tile = query_tile(hq, hkv);
    const i64 q0 = tile.q0;
    const i64 bh = tile.bh;
    const i64 kvHead = tile.kvHead;
    const Head qh = head(bh, hq, t, D, layout, FLASH_LAYOUT_Q);
    const Head kh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_K);
    const Head vh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_V);
    const Head gh = head(bh, hq, t, D, layout, FLASH_LAYOUT_O);
    load_tile<E, D, BM>(qs, q + qh.first, q0, t, qh.stride);
    load_tile<E, D, BM>(gs, gout + gh.first, q0, t, gh.stride);
    const i64 row0 = q0 + warp * 16 + (lane >> 2);
    float l2[2];
    float dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const i64 row = row0 + r * 8;
        l2[r] = row < t ? lse[(i64) bh * t + row] * LOG2E : inf();  // rows past the end get P = 0
        dl[r] = row < t ? delta[(i64) bh * t + row] : 0.f;
    }
    float dq[D / 8][4];
    zero<D / 8>(dq);
    const float s2 = scale * LOG2E;
    i64 kBegin;
    i64 kEnd;
    key_range<BN, WARPS * 16>(q0, window, t, &kBegin, &kEnd);
    mask_row<MASKED>(seg, grp, bh / hq, t, &kBegin, &kEnd);
    int qseg[2];
    int qgrp[2];
    token_pair<MASKED>(seg, grp, row0, 8, t, -1, qseg, qgrp);
    for (i64 k0 = kBegin; k0 < kEnd; k0 += BN) {
        __syncthreads();  // the previous tiles are read
        load_tile<E, D, BN>(ks, k + kh.first, k0, t, kh.stride);
        load_tile<E, D, BN>(vs, v + vh.first, k0, t, vh.stride);
        cp_commit();
        cp_wait<0>();  // (the first time also q and dO)
        __syncthreads();
        float s[BN / 8][4];
        float dp[BN / 8][4];
        zero<BN / 8>(s);
        zero<BN / 8>(dp);
        rows_times_rows<E, D, BN / 8>(s, qs + warp * 16 * P, ks, lane);
        rows_times_rows<E, D, BN / 8>(dp, gs + warp * 16 * P, vs, lane);
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            int kseg[2];
            int kgrp[2];
            token_pair<MASKED>(seg, grp, k0 + n * 8 + 2 * tig, 1, t, -2, kseg, kgrp);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const i64 key = k0 + n * 8 + 2 * tig + (e & 1);
                const i64 row = row0 + (e >> 1) * 8;
                const bool seen = MASKED ? visible_masked(row, key, window, qseg[e >> 1], kseg[e & 1], qgrp[e >> 1], kgrp[e & 1])
                                         : visible(row, key, window);
                const float p = seen ? exp2f(s[n][e] * s2 - l2[e >> 1]) : 0.f;
                s[n][e] = p * (dp[n][e] - dl[e >> 1]) * scale;
            }
        }
        regs_times_tile<E, D, BN, D>(dq, s, ks, 0, lane);
    }
    store_rows<E, D, D>(gq + qh.first, dq, row0, t, 0, 1.f, 1.f, lane, qh.stride);
}

// Backward, dK and dV, in one of two shapes. Without pk: grid (B * Hkv * (D / C) column slices, key tiles of 64), each
// block loops over the query heads of its key/value head and writes dK, dV. With pk, pv [B, Hq, T, D]: grid
// (B * Hq * (D / C), key tiles), one block per query head writing its fp32 share, which reduce_heads sums in a fixed
// order: more blocks for long spans, where the per-kv-head blocks would be few and long. Neither needs atomics, so
// the result does not depend on scheduling. Per query tile of BQ that sees the block's keys:
// S^T = k.q^T, P^T, dV += P^T dO, dP^T = v.dO^T, dS^T = P^T (dP^T - delta) scale, dK += dS^T q.
template <typename E, int D, int C, int BQ, bool MASKED>
__device__ void backward_dkv(const E* q, const E* k, const E* v, const E* gout, const float* lse, const float* delta,
                             E* gk, E* gv, float* pk, float* pv, const int* seg, const int* grp, int t, int hq, int hkv,
                             int window, float scale, int layout) {
    constexpr int BK = WARPS * 16;
    constexpr int P = D + PAD;
    extern __shared__ __align__(16) unsigned char smem[];
    E* ks = reinterpret_cast<E*>(smem);
    E* vs = ks + BK * P;
    E* qs = vs + BK * P;
    E* gs = qs + BQ * P;
    float* l2s = reinterpret_cast<float*>(gs + BQ * P);
    float* dls = l2s + BQ;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int tig = lane & 3;
    const i64 j0 = (i64) blockIdx.y * BK;
    const bool shares = pk != nullptr;
    const i64 unit = blockIdx.x / (D / C);  // a query head with shares, else a key/value head
    const int c0 = (blockIdx.x % (D / C)) * C;
    const int group = hq / hkv;
    const i64 kvHead = shares ? (unit / hq) * hkv + (unit % hq) / group : unit;
    const i64 firstHead = shares ? unit : (kvHead / hkv) * hq + (kvHead % hkv) * group;
    const int heads = shares ? 1 : group;
    const Head kh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_K);
    const Head vh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_V);
    load_tile<E, D, BK>(ks, k + kh.first, j0, t, kh.stride);
    load_tile<E, D, BK>(vs, v + vh.first, j0, t, vh.stride);
    const i64 key0 = j0 + warp * 16 + (lane >> 2);  // this thread's keys: key0 and key0 + 8
    float dk[C / 8][4];
    float dv[C / 8][4];
    zero<C / 8>(dk);
    zero<C / 8>(dv);
    const float s2 = scale * LOG2E;
    i64 iBegin = j0 / BQ * BQ;
    i64 iEnd = window > 0 ? j0 + BK - 1 + window : t;
    iEnd = iEnd < t ? iEnd : t;
    mask_row<MASKED>(seg, grp, kvHead / hkv, t, &iBegin, &iEnd);
    int kseg[2];
    int kgrp[2];
    token_pair<MASKED>(seg, grp, key0, 8, t, -2, kseg, kgrp);
    for (int gi = 0; gi < heads; gi++) {
        const i64 bh = firstHead + gi;
        const Head qh = head(bh, hq, t, D, layout, FLASH_LAYOUT_Q);
        const Head gh = head(bh, hq, t, D, layout, FLASH_LAYOUT_O);
        for (i64 i0 = iBegin; i0 < iEnd; i0 += BQ) {
            __syncthreads();  // the previous tiles are read
            load_tile<E, D, BQ>(qs, q + qh.first, i0, t, qh.stride);
            load_tile<E, D, BQ>(gs, gout + gh.first, i0, t, gh.stride);
            cp_commit();
            for (int r = threadIdx.x; r < BQ; r += THREADS) {
                const i64 row = i0 + r;
                l2s[r] = row < t ? lse[bh * t + row] * LOG2E : inf();
                dls[r] = row < t ? delta[bh * t + row] : 0.f;
            }
            cp_wait<0>();  // (the first time also k and v)
            __syncthreads();
            float st[BQ / 8][4];
            float dpt[BQ / 8][4];
            zero<BQ / 8>(st);
            zero<BQ / 8>(dpt);
            rows_times_rows<E, D, BQ / 8>(st, ks + warp * 16 * P, qs, lane);
            rows_times_rows<E, D, BQ / 8>(dpt, vs + warp * 16 * P, gs, lane);
#pragma unroll
            for (int n = 0; n < BQ / 8; n++) {
                int qseg[2];
                int qgrp[2];
                token_pair<MASKED>(seg, grp, i0 + n * 8 + 2 * tig, 1, t, -1, qseg, qgrp);
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int col = n * 8 + 2 * tig + (e & 1);
                    const i64 query = i0 + col;
                    const i64 key = key0 + (e >> 1) * 8;
                    const bool seen = MASKED ? visible_masked(query, key, window, qseg[e & 1], kseg[e >> 1], qgrp[e & 1], kgrp[e >> 1])
                                             : query < t && visible(query, key, window);
                    const float p = seen ? exp2f(st[n][e] * s2 - l2s[col]) : 0.f;
                    st[n][e] = p;
                    dpt[n][e] = p * (dpt[n][e] - dls[col]) * scale;
                }
            }
            regs_times_tile<E, D, BQ, C>(dv, st, gs, c0, lane);
            regs_times_tile<E, D, BQ, C>(dk, dpt, qs, c0, lane);
        }
    }
    if (shares) {
        store_rows_f32<D, C>(pk + unit * t * D, dk, key0, t, c0, lane);
        store_rows_f32<D, C>(pv + unit * t * D, dv, key0, t, c0, lane);
    } else {
        store_rows<E, D, C>(gk + kh.first, dk, key0, t, c0, 1.f, 1.f, lane, kh.stride);
        store_rows<E, D, C>(gv + vh.first, dv, key0, t, c0, 1.f, 1.f, lane, vh.stride);
    }
}

// out[kv] = sum over g < group of partial[kv * group + g], rows of n floats (n a multiple of 4), rounded once; out
// heads-major ([B Hkv, T, D], tokens 0) or tokens-major (tokens = Hkv: [B, T, Hkv, D] memory; heads of d floats).
template <typename E>
__device__ void reduce_heads(const float* partial, E* out, i64 kvRows, int group, i64 n, int tokens, i64 d) {
    JT_FOR(i, kvRows * n / 4) {
        const i64 e = i * 4;
        const i64 kv = e / n;
        const i64 off = e - kv * n;
        float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int g = 0; g < group; g++) {
            const float4 p = *reinterpret_cast<const float4*>(partial + (kv * group + g) * n + off);
            s.x += p.x;
            s.y += p.y;
            s.z += p.z;
            s.w += p.w;
        }
        uint2 packed = make_uint2(Ops<E>::pack(s.x, s.y), Ops<E>::pack(s.z, s.w));
        const i64 at = tokens > 0 ? ((kv / tokens) * (n / d) + off / d) * tokens * d + (kv % tokens) * d + off % d : e;
        *reinterpret_cast<uint2*>(out + at) = packed;
    }
}

}  // namespace flash

// Tile shapes per head size, from FlashKernels.TILES: the fp32 accumulators of a warp's 16 rows must fit in registers
// (forward D / 2 + BN / 2 floats a thread; dQ D / 2 + BN; dK/dV C + BQ).
#define JT_FLASH(sfx, E, D, BN, DQBN, C, BQ) \
    extern "C" __global__ void __launch_bounds__(flash::THREADS) flash_forward_##sfx##_##D( \
            const E* q, const E* k, const E* v, E* out, float* lse, int t, int hq, int hkv, int window, float scale, int layout) { \
        flash::forward<E, D, BN, false>(q, k, v, out, lse, nullptr, nullptr, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(flash::THREADS) flash_backward_dq_##sfx##_##D( \
            const E* q, const E* k, const E* v, const E* gout, const float* lse, const float* delta, E* gq, \
            int t, int hq, int hkv, int window, float scale, int layout) { \
        flash::backward_dq<E, D, DQBN, false>(q, k, v, gout, lse, delta, gq, nullptr, nullptr, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(flash::THREADS) flash_backward_dkv_##sfx##_##D( \
            const E* q, const E* k, const E* v, const E* gout, const float* lse, const float* delta, E* gk, E* gv, \
            float* pk, float* pv, int t, int hq, int hkv, int window, float scale, int layout) { \
        flash::backward_dkv<E, D, C, BQ, false>(q, k, v, gout, lse, delta, gk, gv, pk, pv, nullptr, nullptr, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(flash::THREADS) flash_forward_masked_##sfx##_##D( \
            const E* q, const E* k, const E* v, E* out, float* lse, const int* seg, const int* grp, int t, int hq, int hkv, \
            int window, float scale, int layout) { \
        flash::forward<E, D, BN, true>(q, k, v, out, lse, seg, grp, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(flash::THREADS) flash_backward_dq_masked_##sfx##_##D( \
            const E* q, const E* k, const E* v, const E* gout, const float* lse, const float* delta, E* gq, \
            const int* seg, const int* grp, int t, int hq, int hkv, int window, float scale, int layout) { \
        flash::backward_dq<E, D, DQBN, true>(q, k, v, gout, lse, delta, gq, seg, grp, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(flash::THREADS) flash_backward_dkv_masked_##sfx##_##D( \
            const E* q, const E* k, const E* v, const E* gout, const float* lse, const float* delta, E* gk, E* gv, \
            float* pk, float* pv, const int* seg, const int* grp, int t, int hq, int hkv, int window, float scale, int layout) { \
        flash::backward_dkv<E, D, C, BQ, true>(q, k, v, gout, lse, delta, gk, gv, pk, pv, seg, grp, t, hq, hkv, window, scale, layout); }

#if !defined(FLASH_KEYS_32) || !defined(FLASH_DQ_KEYS_32) || !defined(FLASH_DKV_COLUMNS_32) || !defined(FLASH_DKV_QUERIES_32)
#error "the head size 32 tiles (FLASH_KEYS_32, FLASH_DQ_KEYS_32, FLASH_DKV_COLUMNS_32, FLASH_DKV_QUERIES_32) come from FlashKernels.java"
#endif
#if !defined(FLASH_KEYS_64) || !defined(FLASH_DQ_KEYS_64) || !defined(FLASH_DKV_COLUMNS_64) || !defined(FLASH_DKV_QUERIES_64)
#error "the head size 64 tiles (FLASH_KEYS_64, FLASH_DQ_KEYS_64, FLASH_DKV_COLUMNS_64, FLASH_DKV_QUERIES_64) come from FlashKernels.java"
#endif
#if !defined(FLASH_KEYS_128) || !defined(FLASH_DQ_KEYS_128) || !defined(FLASH_DKV_COLUMNS_128) || !defined(FLASH_DKV_QUERIES_128)
#error "the head size 128 tiles (FLASH_KEYS_128, FLASH_DQ_KEYS_128, FLASH_DKV_COLUMNS_128, FLASH_DKV_QUERIES_128) come from FlashKernels.java"
#endif
#if !defined(FLASH_KEYS_256) || !defined(FLASH_DQ_KEYS_256) || !defined(FLASH_DKV_COLUMNS_256) || !defined(FLASH_DKV_QUERIES_256)
#error "the head size 256 tiles (FLASH_KEYS_256, FLASH_DQ_KEYS_256, FLASH_DKV_COLUMNS_256, FLASH_DKV_QUERIES_256) come from FlashKernels.java"
#endif
// The kernels of head size D with its tiles (the defines' names are pasted, then expanded as JT_FLASH's arguments).
#define JT_FLASH_HEAD(sfx, E, D) JT_FLASH(sfx, E, D, FLASH_KEYS_##D, FLASH_DQ_KEYS_##D, FLASH_DKV_COLUMNS_##D, FLASH_DKV_QUERIES_##D)
#define JT_FLASH_SIZES(sfx, E) JT_FLASH_HEAD(sfx, E, 32) JT_FLASH_HEAD(sfx, E, 64) JT_FLASH_HEAD(sfx, E, 128) JT_FLASH_HEAD(sfx, E, 256)
JT_FLASH_SIZES(bf16, __nv_bfloat16)
JT_FLASH_SIZES(f16, __half)

#define JT_FLASH_REDUCE(sfx, E) \
    extern "C" __global__ void flash_reduce_heads_##sfx(const float* partial, E* out, i64 kvRows, int group, i64 n, int tokens, \
                                                        i64 d) { \
        flash::reduce_heads<E>(partial, out, kvRows, group, n, tokens, d); }
JT_FLASH_REDUCE(bf16, __nv_bfloat16)
JT_FLASH_REDUCE(f16, __half)

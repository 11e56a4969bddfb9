// Fused causal attention on Hopper's wgmma (sm_90a), bf16 heads of 256: flash.cu's forward and backward (same
// inputs, same visibility rule, same outputs) with every product on warpgroup instructions.
//
// Forward. A block is two warpgroups
// that share each key and value tile: with an even number of query heads per key/value head, two query heads of one
// key/value head at the same 64 positions (one causal diagonal, the key tiles shared whole); otherwise 128
// consecutive queries of one head. Per key tile of BN keys: S = Q K^T (m64n64k16, both operands in shared memory),
// the online softmax in registers, then O += P V with P straight from registers (m64n256k16, V N-major). Key and
// value tiles are double-buffered: the copies of tile j + 1 (cp.async, all 256 threads) overlap the work on tile j.
// The _masked kernels take packed rows (segments and groups, flash.cu's rule, attention.cuh); with groups every
// tile of the row is visited, since a group's earlier tokens see its later ones.
//
// Backward, dK and dV: a block owns 64 keys and walks the query tiles that see them (over the query heads of its
// key/value head, or one query head writing fp32 shares, as flash.cu). Its two warpgroups split the work so that S and
// dP are each computed once: group 0 computes S^T = K Q^T, P^T, hands P^T over through shared memory and accumulates
// dV += P^T dO; group 1 computes dP^T = V dO^T, waits for P^T, forms dS^T = P^T (dP^T - delta) scale and accumulates
// dK += dS^T Q. Query and output-gradient tiles are double-buffered.
//
// Backward, dQ: blocks as the forward's; per key tile S = Q K^T, dP = dO V^T, dS, dQ += dS K. Or, in the experiment
// flash_wgmma_backward_dkv_dq_tma (FlashWgmmaKernels.DQ_IN_DKV), in dK/dV from its own dS: group 1 hands dS over to
// itself through the step's P^T buffer and adds dS K, 64 dims at a time, into an fp32 dQ with L2 reductions.
//
// Every backward tile is stored once, 64 rows of core matrices 128 bytes apart, dims 1024 bytes apart, and read both
// as a K-major operand (rows are M or N) and as an N-major one (rows are K), with the descriptor's offsets swapped.
#include "attention.cuh"
#include "wgmma.cuh"

// From FlashWgmmaKernels.java: keys per tile, and which of the N-major descriptor's offsets runs along K.
// FLASH_WGMMA_KEY_PAD: bytes between the forward's key-tile core-matrix columns beyond the 1024 they fill (0 or 64;
// with 64 the tile is copied 128 bytes of a row at a time, wg::load_cores' WHOLE_LINES).
// WGMMA_SW128_NMAJOR_LBO_ALONG_N: which offset of a 128-byte swizzled N-major descriptor runs between 64-column boxes
// along N (CUTLASS's MN-major B128: the leading one; the TMA N-major probe checks it).
// FLASH_WGMMA_PINGPONG (a mask, 0-3): the groups apart instead of in lockstep, 1 in the TMA forward, 2 in the TMA dK/dV.
#if !defined(JT_ARCH_SPECIFIC) || !defined(FLASH_WGMMA_KEYS) || !defined(WGMMA_NMAJOR_LBO_ALONG_K) || !defined(FLASH_WGMMA_KEY_PAD) || !defined(WGMMA_SW128_NMAJOR_LBO_ALONG_N) || !defined(FLASH_WGMMA_PINGPONG)
#error "JT_ARCH_SPECIFIC, FLASH_WGMMA_KEYS, WGMMA_NMAJOR_LBO_ALONG_K, FLASH_WGMMA_KEY_PAD, WGMMA_SW128_NMAJOR_LBO_ALONG_N and FLASH_WGMMA_PINGPONG come from FlashWgmmaKernels.java's KernelSource"
#endif

namespace fwg {

constexpr int D = 256;
constexpr int BM = 64;  // query rows of a warpgroup
constexpr int BN = FLASH_WGMMA_KEYS;
constexpr int GROUPS = 2;  // warpgroups of a block
constexpr int THREADS = 128 * GROUPS;
constexpr float LOG2E = 1.4426950408889634f;
static_assert(BN == 64, "S = Q K^T is one m64n64 accumulator per k16 step");

// Shared memory (FlashWgmmaKernels.shared()): both warpgroups' query tiles, then two key and two value tiles.
constexpr int Q_BYTES = BM * D * 2;
constexpr int KV_BYTES = BN * D * 2;

// Descriptor offsets: Q and K tiles K-major (64 rows: 1024 bytes to the next 8 columns, 128 to the next 8 rows); the
// V tile N-major (N = D: D / 8 * 128 bytes to the next 8 keys, 128 to the next 8 dims).
constexpr unsigned QK_LBO = BM / 8 * 128;
// The forward's key tiles: K-major, their 8-column core groups K_LBO apart (padded by FLASH_WGMMA_KEY_PAD).
constexpr unsigned K_LBO = BN / 8 * 128 + FLASH_WGMMA_KEY_PAD;
constexpr int K_BYTES = D / 8 * K_LBO;
static_assert(FLASH_WGMMA_KEY_PAD == 0 || FLASH_WGMMA_KEY_PAD == 64, "whole-line copies' stores are conflict-free at 64");

// The TMA forward (forward<MASKED, true>): key and value tiles of BN rows x D land as D / 64 boxes of BN x 64 with
// the 128-byte swizzle, one tile pair per buffer and mbarrier, issued by thread 0 one tile ahead. With
// FLASH_WGMMA_PINGPONG's bit 1 no block barrier ends a tile: every thread arrives on the buffer's empty barrier when done with
// it, and thread 0 waits for that before loading the tile two on into it, so the groups may drift a tile apart.
constexpr int BOX_BYTES = BN * 64 * 2;
static_assert(BN == 64, "a k16 step of a swizzled value box starts 2048 bytes further: 16 rows of 128 bytes");

// Head bh of `heads` per batch row as a tensor map's coordinates (the maps are [B, H, T, D], either layout).
struct Plane {
    int h;
    int b;
};

__device__ __forceinline__ Plane plane(long long bh, int heads) { return {(int) (bh % heads), (int) (bh / heads)}; }

// Two tiles of the same 64 rows (from k0) of one head of two maps (keys and values; dK/dV's queries and output
// gradients) on one barrier, its bytes announced by the issuing thread's arrival.
__device__ __forceinline__ void issue_tiles(unsigned char* kt, unsigned char* vt, const wg::TensorMap* kmap, const wg::TensorMap* vmap,
                                            long long k0, Plane at, unsigned long long* bar) {
    wg::mbar_expect(bar, 2 * (D / 64) * BOX_BYTES);
#pragma unroll
    for (int j = 0; j < D / 64; j++) {
        wg::tma_load4(kt + j * BOX_BYTES, kmap, j * 64, (int) k0, at.h, at.b, bar);
        wg::tma_load4(vt + j * BOX_BYTES, vmap, j * 64, (int) k0, at.h, at.b, bar);
    }
}

// One tile (a key or value tile) alone on its barrier (dQ's).
__device__ __forceinline__ void issue_tile(unsigned char* tile, const wg::TensorMap* map, long long k0, Plane at,
                                           unsigned long long* bar) {
    wg::mbar_expect(bar, (D / 64) * BOX_BYTES);
#pragma unroll
    for (int j = 0; j < D / 64; j++) wg::tma_load4(tile + j * BOX_BYTES, map, j * 64, (int) k0, at.h, at.b, bar);
}

// A swizzled key (or value) tile as a K-major operand (rows are N: Q K^T's keys), k16 step kk: its box, then 32 bytes
// a step inside the box's rows.
__device__ __forceinline__ unsigned long long key_sw128(const unsigned char* tile, int kk) {
    return wg::descriptor_sw128(tile + (kk >> 2) * BOX_BYTES + (kk & 3) * 32);
}

// A swizzled value tile as P V's N-major operand, k16 step kk (also dQ's key tile in dS K).
__device__ __forceinline__ unsigned long long value_sw128(const unsigned char* vt, int kk) {
    return WGMMA_SW128_NMAJOR_LBO_ALONG_N ? wg::descriptor_sw128(vt + kk * 2048, BOX_BYTES, 1024)
                                          : wg::descriptor_sw128(vt + kk * 2048, 1024, BOX_BYTES);
}

// The forward's key tile rows [row0, row0 + BN) (rows `stride` apart) into a K_BYTES buffer.
__device__ __forceinline__ void load_keys(unsigned char* tile, const __nv_bfloat16* g, long long row0, long long t, long long stride) {
    if (FLASH_WGMMA_KEY_PAD == 0) {
        wg::load<BN, D>(tile, g, row0, t, threadIdx.x, THREADS, stride);
    } else {
        wg::load_cores<BN, D, true>(tile, g, row0, t, 128, K_LBO, threadIdx.x, THREADS, stride);
    }
}
constexpr unsigned V_ALONG_K = D / 8 * 128;
// Backward tiles (64 rows): 128 bytes to the next 8 rows, 1024 to the next 8 dims.
constexpr unsigned ROW8 = 128;
constexpr unsigned COL8 = BM / 8 * 128;

// An N-major operand's descriptor from its core-matrix distances along K and along N.
__device__ __forceinline__ unsigned long long nmajor(const void* tile, unsigned alongK, unsigned alongN) {
    return WGMMA_NMAJOR_LBO_ALONG_K ? wg::descriptor(tile, alongK, alongN) : wg::descriptor(tile, alongN, alongK);
}

using namespace amask;

__device__ __forceinline__ unsigned pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

// a[BN / 16][4]: x (an m64n64 accumulator) rounded to bf16 in the register A layout, one k16 step per four registers.
__device__ __forceinline__ void to_a(unsigned (*a)[4], const float* x) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
        a[kk][0] = pack(x[8 * kk], x[8 * kk + 1]);
        a[kk][1] = pack(x[8 * kk + 2], x[8 * kk + 3]);
        a[kk][2] = pack(x[8 * kk + 4], x[8 * kk + 5]);
        a[kk][3] = pack(x[8 * kk + 6], x[8 * kk + 7]);
    }
}

// Stores rows row0 and row0 + 8 (those before t) of a 64 x D fp32 accumulator into a head's rows (`stride` apart), as
// bf16 or fp32.
__device__ __forceinline__ void store(__nv_bfloat16* dst, const float* acc, long long row0, long long t, int tig, long long stride = D) {
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const int c = 8 * j + 2 * tig;
        if (row0 < t) *reinterpret_cast<unsigned*>(dst + row0 * stride + c) = pack(acc[4 * j], acc[4 * j + 1]);
        if (row0 + 8 < t) *reinterpret_cast<unsigned*>(dst + (row0 + 8) * stride + c) = pack(acc[4 * j + 2], acc[4 * j + 3]);
    }
}

__device__ __forceinline__ void store(float* dst, const float* acc, long long row0, long long t, int tig) {
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const int c = 8 * j + 2 * tig;
        if (row0 < t) *reinterpret_cast<float2*>(dst + row0 * D + c) = make_float2(acc[4 * j], acc[4 * j + 1]);
        if (row0 + 8 < t) *reinterpret_cast<float2*>(dst + (row0 + 8) * D + c) = make_float2(acc[4 * j + 2], acc[4 * j + 3]);
    }
}

// Calls f(i, seen) for each of this thread's elements i of an m64n64 score tile: element 4 j + e has row
// r0 + 8 (e >> 1) and column c0 + 8 j + 2 tig + (e & 1); seen whether its key is visible to its query. Rows are
// queries and columns keys (S), or with KEYS_AS_ROWS keys and queries (dK/dV's S^T; columns past t hidden). rseg,
// rgrp: the rows' segments and groups over packed rows.
template <bool MASKED, bool KEYS_AS_ROWS = false, typename F>
__device__ __forceinline__ void over_tile(F f, const int* seg, const int* grp, long long r0, long long c0, int tig, int t, int window,
                                          const int* rseg, const int* rgrp) {
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        int cseg[2];
        int cgrp[2];
        token_pair<MASKED>(seg, grp, c0 + 8 * j + 2 * tig, 1, t, KEYS_AS_ROWS ? -1 : -2, cseg, cgrp);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const long long col = c0 + 8 * j + 2 * tig + (e & 1);
            const long long row = r0 + (e >> 1) * 8;
            const long long query = KEYS_AS_ROWS ? col : row;
            const long long key = KEYS_AS_ROWS ? row : col;
            const int r = e >> 1;
            const int c = e & 1;
            f(4 * j + e, MASKED ? (KEYS_AS_ROWS ? visible_masked(query, key, window, cseg[c], rseg[r], cgrp[c], rgrp[r])
                                                : visible_masked(query, key, window, rseg[r], cseg[c], rgrp[r], cgrp[c]))
                                : (!KEYS_AS_ROWS || query < t) && visible(query, key, window));
        }
    }
}

// The query head and first query of warpgroup g. Grid: (B * Hq / 2, T / 64) with paired heads, else (B * Hq, T / 128);
// the last (longest) query tiles first.
struct Rows {
    long long bh;
    long long q0;
};

__device__ __forceinline__ bool paired(int hq, int hkv) { return (hq / hkv) % 2 == 0; }

__device__ __forceinline__ Rows rows_of(int g, int hq, int hkv) {
    const long long tile = gridDim.y - 1 - blockIdx.y;
    if (paired(hq, hkv)) {
        return {(long long) blockIdx.x * 2 + g, tile * BM};
    }
    return {(long long) blockIdx.x, tile * GROUPS * BM + g * BM};
}

// A forward or dQ block: this group's rows, the key/value head both groups read, and the block's key tiles
// [begin, end) (from the first group's first to the last group's last; over packed rows with groups the whole row),
// seg and grp moved to the block's batch row.
struct QueryBlock {
    Rows me;
    long long kvHead;
    long long begin;
    long long end;
};

template <bool MASKED>
__device__ __forceinline__ QueryBlock query_block(const int*& seg, const int*& grp, int t, int hq, int hkv, int window) {
    const Rows first = rows_of(0, hq, hkv);
    const Rows last = rows_of(GROUPS - 1, hq, hkv);
    QueryBlock b;
    b.me = rows_of(threadIdx.x / 128, hq, hkv);
    b.kvHead = (first.bh / hq) * hkv + (first.bh % hq) / (hq / hkv);
    long long unused;
    key_range<BN, BM>(first.q0, window, t, &b.begin, &unused);
    key_range<BN, BM>(last.q0, window, t, &unused, &b.end);
    mask_row<MASKED>(seg, grp, first.bh / hq, t, &b.begin, &b.end);  // (both groups are of one batch row)
    return b;
}

// TMA: k and v come as tensor maps of [B Hkv, T, D] (kmap, vmap; k and v unused), else as pointers.
template <bool MASKED, bool TMA>
__device__ void forward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const wg::TensorMap* kmap,
                        const wg::TensorMap* vmap, __nv_bfloat16* out, float* lse, const int* seg, const int* grp, int t, int hq,
                        int hkv, int window, float scale, int layout) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int g = threadIdx.x / 128;
    const int tid = threadIdx.x % 128;
    const int lane = tid & 31;
    const int tig = lane & 3;
    const QueryBlock block = query_block<MASKED>(seg, grp, t, hq, hkv, window);
    const Rows me = block.me;
    const long long kBegin = block.begin;
    const long long kEnd = block.end;
    long long myBegin, myEnd;  // this group's key tiles
    key_range<BN, BM>(me.q0, window, t, &myBegin, &myEnd);
    if (MASKED && grp != nullptr) {
        myBegin = 0;
        myEnd = t;
    }
    unsigned char* qs = smem + g * Q_BYTES;
    // TMA: both key buffers, then both value buffers, 1024-byte aligned; then a full barrier per buffer
    unsigned char* ks = TMA ? wg::align1024(smem + GROUPS * Q_BYTES) : smem + GROUPS * Q_BYTES;
    unsigned char* vs = ks + 2 * (TMA ? KV_BYTES : K_BYTES);
    unsigned long long* full = reinterpret_cast<unsigned long long*>(vs + 2 * KV_BYTES);
    constexpr bool PP = TMA && (FLASH_WGMMA_PINGPONG & 1) != 0;
    unsigned long long* empty = full + 2;  // PP: a barrier per buffer that every thread's arrival completes
    const Head kh = head(block.kvHead, hkv, t, D, layout, FLASH_LAYOUT_K);
    const Head vh = head(block.kvHead, hkv, t, D, layout, FLASH_LAYOUT_V);
    const Plane kv = plane(block.kvHead, hkv);
    for (int i = 0; i < GROUPS; i++) {
        const Rows r = rows_of(i, hq, hkv);
        const Head qh = head(r.bh, hq, t, D, layout, FLASH_LAYOUT_Q);
        wg::load<BM, D>(smem + i * Q_BYTES, q + qh.first, r.q0, t, threadIdx.x, THREADS, qh.stride);
    }
    if constexpr (TMA) {
        wg::cp_commit();
        if (threadIdx.x == 0) {
            wg::mbar_init(&full[0], 1);
            wg::mbar_init(&full[1], 1);
            if (PP) {
                wg::mbar_init(&empty[0], THREADS);
                wg::mbar_init(&empty[1], THREADS);
            }
        }
        wg::publish();  // the query tiles, and the barriers initialised
        if (threadIdx.x == 0 && kBegin < kEnd) issue_tiles(ks, vs, kmap, vmap, kBegin, kv, &full[0]);
    } else {
        load_keys(ks, k + kh.first, kBegin, t, kh.stride);
        wg::load_nmajor<BN, D>(vs, v + vh.first, kBegin, t, threadIdx.x, THREADS, vh.stride);
        wg::cp_commit();
    }

    const long long row0 = me.q0 + 16 * (tid / 32) + lane / 4;  // this thread's rows: row0 and row0 + 8
    int qseg[2];
    int qgrp[2];
    token_pair<MASKED>(seg, grp, row0, 8, t, -1, qseg, qgrp);
    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.f;
    float m[2] = {-inf(), -inf()};
    float l[2] = {0.f, 0.f};
    const float s2 = scale * LOG2E;
    int buffer = 0;
    int tile = 0;
    for (long long k0 = kBegin; k0 < kEnd; k0 += BN, buffer ^= 1, tile++) {
        // the next tiles into the other buffers, which the previous iteration's barrier freed
        if constexpr (TMA) {
            if (threadIdx.x == 0 && k0 + BN < kEnd) {
                if (PP && tile >= 1) wg::mbar_wait(&empty[buffer ^ 1], ((tile - 1) >> 1) & 1);  // both groups done with tile - 1
                issue_tiles(ks + (buffer ^ 1) * KV_BYTES, vs + (buffer ^ 1) * KV_BYTES, kmap, vmap, k0 + BN, kv, &full[buffer ^ 1]);
            }
            wg::mbar_wait(&full[buffer], (tile >> 1) & 1);  // this buffer's (tile / 2)-th filling
        } else {
            if (k0 + BN < kEnd) {
                load_keys(ks + (buffer ^ 1) * K_BYTES, k + kh.first, k0 + BN, t, kh.stride);
                wg::load_nmajor<BN, D>(vs + (buffer ^ 1) * KV_BYTES, v + vh.first, k0 + BN, t, threadIdx.x, THREADS, vh.stride);
            }
            wg::cp_commit();
            wg::cp_wait<1>();  // this tile (and the first time the query tiles)
            wg::publish_copies();
        }
        if (k0 < myEnd && k0 + BN > myBegin) {  // else every key of the tile is hidden from this group's queries
            const unsigned char* kt = ks + buffer * (TMA ? KV_BYTES : K_BYTES);
            const unsigned char* vt = vs + buffer * KV_BYTES;
            float s[BN / 2];
#pragma unroll
            for (int i = 0; i < BN / 2; i++) s[i] = 0.f;
            wg::fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const unsigned long long kd = TMA ? key_sw128(kt, kk) : wg::descriptor(kt + kk * 2 * K_LBO, K_LBO, 128);
                wg::m64n64k16(s, wg::descriptor(qs + kk * 2 * QK_LBO, QK_LBO, 128), kd, 1);
            }
            wg::commit();
            wg::wait<0>();
            float mx[2] = {m[0], m[1]};
            over_tile<MASKED>([&](int i, bool seen) {
                s[i] = seen ? s[i] * s2 : -inf();
                mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], s[i]);
            }, seg, grp, row0, k0, tig, t, window, qseg, qgrp);
            float corr[2];
            float ref[2];
            online_max(mx, m, l, corr, ref);
#pragma unroll
            for (int j = 0; j < D / 8; j++) {
                o[4 * j] *= corr[0];
                o[4 * j + 1] *= corr[0];
                o[4 * j + 2] *= corr[1];
                o[4 * j + 3] *= corr[1];
            }
            // P in the register A layout of m64n256k16, one k16 step (16 keys) per four registers
            unsigned p[BN / 16][4];
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                float e[8];
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    e[i] = exp2f(s[8 * kk + i] - ref[(i >> 1) & 1]);
                    l[(i >> 1) & 1] += e[i];
                }
                p[kk][0] = pack(e[0], e[1]);
                p[kk][1] = pack(e[2], e[3]);
                p[kk][2] = pack(e[4], e[5]);
                p[kk][3] = pack(e[6], e[7]);
            }
            wg::fence();
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                wg::m64n256k16_rs(o, p[kk], TMA ? value_sw128(vt, kk) : nmajor(vt + kk * 2 * V_ALONG_K, V_ALONG_K, 128), 1);
            }
            wg::commit();
            wg::wait<0>();
        }
        if constexpr (PP) {
            wg::mbar_arrive(&empty[buffer]);  // this thread is done with the tile's buffers
        } else {
            __syncthreads();  // this tile's buffers are read: the load two tiles on may overwrite them
        }
    }
    wg::cp_wait<0>();
    float inv[2];
    finish_rows(l, m, inv, lse + me.bh * t, row0, t, tig);
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        o[4 * j] *= inv[0];
        o[4 * j + 1] *= inv[0];
        o[4 * j + 2] *= inv[1];
        o[4 * j + 3] *= inv[1];
    }
    const Head oh = head(me.bh, hq, t, D, layout, FLASH_LAYOUT_O);
    store(out + oh.first, o, row0, t, tig, oh.stride);
}

// dQ with dK/dV (DQ, the TMA kernels with FLASH_WGMMA_PINGPONG's bit 2): group 1 writes its dS^T into the step's
// P^T hand-over buffer once the whole group has read its P^T, as a 64 x 64 bf16 K-major tile of dS (queries x keys).
__device__ __forceinline__ void store_ds(unsigned char* tile, const float* x, int tid, int lane, int tig) {
#pragma unroll
    for (int i = 0; i < BM / 2; i++) {
        const int query = 8 * (i / 4) + 2 * tig + (i & 1);
        const int key = 16 * (tid / 32) + lane / 4 + 8 * ((i >> 1) & 1);
        *reinterpret_cast<__nv_bfloat16*>(tile + (query >> 3) * ROW8 + (key >> 3) * COL8 + (query & 7) * 16 + (key & 7) * 2) =
                __float2bfloat16_rn(x[i]);
    }
}

// Then dQ[i0 + 64 rows] += dS K (the block's key tile), 64 dims at a time (m64n64, 32 floats a thread), each slice
// added into the fp32 [T, D] of the query head (dq) in L2: every key block of the head adds its share, in no fixed order.
// Each group takes half of the dims (slices c0 to c1): group 1 alone had three products a step to group 0's two.
__device__ __forceinline__ void add_dq(float* dq, const unsigned char* ds, const unsigned char* ks, long long i0, long long t, int tid,
                                       int lane, int tig, int c0, int c1) {
#pragma unroll 1
    for (int c = c0; c < c1; c++) {
        float q[BN / 2];
#pragma unroll
        for (int i = 0; i < BN / 2; i++) q[i] = 0.f;
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            wg::m64n64k16<1>(q, wg::descriptor(ds + kk * 2 * COL8, COL8, ROW8), nmajor(ks + kk * 2 * ROW8 + c * 8 * COL8, ROW8, COL8), 1);
        }
        wg::commit();
        wg::wait<0>();
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const long long row = i0 + 16 * (tid / 32) + lane / 4 + 8 * r;
                if (row < t) wg::red_add2(dq + row * D + 64 * c + 8 * j + 2 * tig, q[4 * j + 2 * r], q[4 * j + 2 * r + 1]);
            }
        }
    }
}

// Backward, dK and dV (the file's comment). Grid (B Hkv, or B Hq with shares, key tiles of 64).
// TMA: q and gout as tensor maps of [B Hq, T, D] (qmap, gmap; q and gout unused), the query and output-gradient tiles
// double-buffered on a full barrier per buffer; the block's own key and value tiles stay cp.async copies.
// TMA with FLASH_WGMMA_PINGPONG's bit 2: no block-wide barrier per step, so group 0 (P^T, dV) runs up to a step ahead of
// group 1 (dS^T, dK) and the tensor cores take one group's products while the other does its element-wise work. The
// P^T hand-over is double-buffered (named barriers 1 + b); group 0 arrives on barrier 3 + b when done with buffer b's
// tiles, and group 1, done with them too, stages step it + 2 into them: its thread 0 the TMA copies, every thread of it a
// row of lse and delta, each arriving on the buffer's full barrier (128 arrivals and the copies' bytes complete it).
// DQ: dQ too (store_ds, add_dq; each group half of the dims), into dqa (fp32 [B Hq, T, D], zeroed), so that no dQ kernel recomputes S and dP.
template <bool MASKED, bool TMA, bool DQ = false>
__device__ void backward_dkv(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* gout,
                             const wg::TensorMap* qmap, const wg::TensorMap* gmap, const float* lse, const float* delta,
                             __nv_bfloat16* gk, __nv_bfloat16* gv, float* pk, float* pv, float* dqa, const int* seg, const int* grp,
                             int t, int hq, int hkv, int window, float scale, int layout) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int g = threadIdx.x / 128;  // 0: P^T and dV; 1: dS^T and dK
    const int tid = threadIdx.x % 128;
    const int lane = tid & 31;
    const int tig = lane & 3;
    const long long j0 = (long long) blockIdx.y * BN;
    const bool shares = pk != nullptr;
    const long long unit = blockIdx.x;  // a query head with shares, else a key/value head
    const int group = hq / hkv;
    const long long kvHead = shares ? (unit / hq) * hkv + (unit % hq) / group : unit;
    const long long firstHead = shares ? unit : (kvHead / hkv) * hq + (kvHead % hkv) * group;
    const int heads = shares ? 1 : group;
    unsigned char* ks = smem;
    unsigned char* vs = ks + KV_BYTES;
    unsigned char* qs = TMA ? wg::align1024(vs + KV_BYTES) : vs + KV_BYTES;  // two buffers
    unsigned char* gs = qs + 2 * Q_BYTES;  // two buffers
    constexpr bool PP = TMA && (FLASH_WGMMA_PINGPONG & 2) != 0;
    static_assert(!DQ || PP, "dQ in dK/dV rides on the TMA kernel with its groups apart (its hand-over buffer per step)");
    float* xch = reinterpret_cast<float*>(gs + 2 * Q_BYTES);  // P^T, [BN * BM / 128][128 threads]; two with PP
    float* l2s = xch + (PP ? 2 : 1) * BN * BM;  // [2][BM] lse in base 2
    float* dls = l2s + 2 * BM;             // [2][BM] delta
    unsigned long long* full = reinterpret_cast<unsigned long long*>(dls + 2 * BM);  // TMA: a barrier per buffer
    const Head kh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_K);
    const Head vh = head(kvHead, hkv, t, D, layout, FLASH_LAYOUT_V);
    wg::load_cores<BN, D>(ks, k + kh.first, j0, t, ROW8, COL8, threadIdx.x, THREADS, kh.stride);
    wg::load_cores<BN, D>(vs, v + vh.first, j0, t, ROW8, COL8, threadIdx.x, THREADS, vh.stride);
    long long iBegin = j0 / BM * BM;
    long long iEnd = window > 0 ? j0 + BN - 1 + window : t;
    iEnd = iEnd < t ? iEnd : t;
    mask_row<MASKED>(seg, grp, kvHead / hkv, t, &iBegin, &iEnd);
    const int tiles = (int) ((iEnd - iBegin + BM - 1) / BM);
    const int total = heads * tiles;  // steps: (query head, query tile), heads outermost
    // step it's query and output-gradient tiles, lse and delta into buffer it & 1, which the step before it freed (with
    // PP: group 1 alone, see above)
    auto stage = [&](int it) {
        const int b = it & 1;
        const long long bh = firstHead + it / tiles;
        const long long i0 = iBegin + (long long) (it % tiles) * BM;
        const int stager = PP ? tid : threadIdx.x;  // this thread among the stagers: group 1 with PP, else the block
        auto issue = [&]() { issue_tiles(qs + b * Q_BYTES, gs + b * Q_BYTES, qmap, gmap, i0, plane(bh, hq), &full[b]); };
        if constexpr (TMA && !PP) {
            if (stager == 0) issue();
        } else if constexpr (!TMA) {
            const Head qh = head(bh, hq, t, D, layout, FLASH_LAYOUT_Q);
            const Head gh = head(bh, hq, t, D, layout, FLASH_LAYOUT_O);
            wg::load_cores<BM, D>(qs + b * Q_BYTES, q + qh.first, i0, t, ROW8, COL8, threadIdx.x, THREADS, qh.stride);
            wg::load_cores<BM, D>(gs + b * Q_BYTES, gout + gh.first, i0, t, ROW8, COL8, threadIdx.x, THREADS, gh.stride);
        }
        for (int r = stager; r < BM; r += PP ? 128 : THREADS) {
            const long long row = i0 + r;
            l2s[b * BM + r] = row < t ? lse[bh * t + row] * LOG2E : inf();  // rows past the end get P = 0
            dls[b * BM + r] = row < t ? delta[bh * t + row] : 0.f;
        }
        if constexpr (PP) {  // after the rows: each stager's arrival publishes them
            if (stager == 0) {
                issue();
            } else {
                wg::mbar_arrive(&full[b]);
            }
        }
    };
    if constexpr (TMA) {
        if (threadIdx.x == 0) {
            wg::mbar_init(&full[0], PP ? 128 : 1);
            wg::mbar_init(&full[1], PP ? 128 : 1);
        }
        __syncthreads();  // the barriers initialised before the first copy completes on one
    }
    if constexpr (PP) {
        if (g == 1) {
            for (int it = 0; it < 2 && it < total; it++) stage(it);
        }
        wg::cp_commit();
        wg::publish();  // the key and value tiles
    } else {
        if (total > 0) stage(0);
        wg::cp_commit();
    }
    const long long key0 = j0 + 16 * (tid / 32) + lane / 4;  // this thread's keys: key0 and key0 + 8
    int kseg[2];
    int kgrp[2];
    token_pair<MASKED>(seg, grp, key0, 8, t, -2, kseg, kgrp);
    float acc[D / 2];  // dV (group 0) or dK (group 1), 64 keys x D
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
    const float s2 = scale * LOG2E;
    for (int it = 0; it < total; it++) {
        const int b = it & 1;
        if constexpr (!PP) {
            if (it + 1 < total) stage(it + 1);
            wg::cp_commit();
            wg::cp_wait<1>();  // this step's tiles (and the first time the key and value tiles); with TMA, those two only
            wg::publish_copies();
        }
        if constexpr (TMA) wg::mbar_wait(&full[b], (it >> 1) & 1);
        float* pt = PP ? xch + b * BN * BM : xch;
        const long long i0 = iBegin + (long long) (it % tiles) * BM;
        const unsigned char* qt = qs + b * Q_BYTES;
        const unsigned char* gt = gs + b * Q_BYTES;
        const float* l2 = l2s + b * BM;
        const float* dl = dls + b * BM;
        float x[BM / 2];  // group 0: S^T, then P^T; group 1: dP^T, then dS^T (keys x queries)
#pragma unroll
        for (int i = 0; i < BM / 2; i++) x[i] = 0.f;
        const unsigned char* left = g == 0 ? ks : vs;
        const unsigned char* right = g == 0 ? qt : gt;
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            wg::m64n64k16(x, wg::descriptor(left + kk * 2 * COL8, COL8, ROW8),
                          TMA ? key_sw128(right, kk) : wg::descriptor(right + kk * 2 * COL8, COL8, ROW8), 1);
        }
        wg::commit();
        wg::wait<0>();
        if (g == 0) {
            over_tile<MASKED, true>([&](int i, bool seen) {
                const float p = seen ? exp2f(x[i] * s2 - l2[8 * (i >> 2) + 2 * tig + (i & 1)]) : 0.f;
                x[i] = p;
                pt[i * 128 + tid] = p;
            }, seg, grp, key0, i0, tig, t, window, kseg, kgrp);
            wg::bar_arrive(PP ? 1 + b : 1, THREADS);
        } else {
            wg::bar_sync(PP ? 1 + b : 1, THREADS);  // P^T handed over, element for element in the same accumulator layout
#pragma unroll
            for (int i = 0; i < BM / 2; i++) {
                const int col = 8 * (i / 4) + 2 * tig + (i & 1);
                x[i] = pt[i * 128 + tid] * (x[i] - dl[col]) * scale;
            }
        }
        unsigned a[BM / 16][4];
        to_a(a, x);
        if constexpr (DQ) {
            if (g == 1) {  // dS into the hand-over buffer, once every thread of the group has read its P^T
                wg::bar_sync(5, 128);
                store_ds(reinterpret_cast<unsigned char*>(pt), x, tid, lane, tig);
                wg::proxy_fence();
                wg::bar_sync(5, 128);
                // to group 0, for its half of dQ: it syncs once per step, and this group's next arrival needs its next
                // P^T, so one barrier serves every step
                wg::bar_arrive(6, THREADS);
            }
        }
        // dV += P^T dO or dK += dS^T Q: the tile's rows (queries) are the reduction, its dims the columns
        const unsigned char* rhs = g == 0 ? gt : qt;
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) {
            wg::m64n256k16_rs(acc, a[kk], TMA ? value_sw128(rhs, kk) : nmajor(rhs + kk * 2 * ROW8, ROW8, COL8), 1);
        }
        wg::commit();
        wg::wait<0>();
        // DQ: each group's half of dQ reads the dS in this step's hand-over buffer and the key tile, not the staged
        // buffers: group 0 adds its half once group 1's dS is there, after releasing buffer b and before it writes
        // the P^T of step it + 2; group 1 before it stages step it + 2 (whose P^T then lands in the hand-over buffer)
        float* const dq = DQ ? dqa + (firstHead + it / tiles) * t * D : nullptr;
        const unsigned char* const ds = reinterpret_cast<const unsigned char*>(pt);
        if constexpr (PP) {
            if (g == 0) {
                wg::bar_arrive(3 + b, THREADS);  // group 0 is done with buffer b
                if constexpr (DQ) {
                    wg::bar_sync(6, THREADS);
                    add_dq(dq, ds, ks, i0, t, tid, lane, tig, 0, D / 128);
                }
            } else {
                if constexpr (DQ) add_dq(dq, ds, ks, i0, t, tid, lane, tig, D / 128, D / 64);
                wg::bar_sync(3 + b, THREADS);
                if (it + 2 < total) stage(it + 2);
            }
        } else {
            __syncthreads();  // this step's buffers and the hand-over are read
        }
    }
    wg::cp_wait<0>();
    if (shares) {
        store((g == 0 ? pv : pk) + unit * t * D, acc, key0, t, tig);
    } else {
        const Head mine = g == 0 ? vh : kh;
        store((g == 0 ? gv : gk) + mine.first, acc, key0, t, tig, mine.stride);
    }
}

// Backward, dQ (the file's comment): blocks as the forward's. Key tiles double-buffered, the value tile single: the
// next one is copied once both groups have their dP.
// TMA: k and v as tensor maps (kmap, vmap; k and v unused): the key tiles double-buffered on a full barrier each, the
// value tile on its own, issued once both groups have their dP.
template <bool MASKED, bool TMA>
__device__ void backward_dq(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const wg::TensorMap* kmap,
                            const wg::TensorMap* vmap, const __nv_bfloat16* gout, const float* lse, const float* delta,
                            __nv_bfloat16* gq, const int* seg, const int* grp, int t, int hq, int hkv, int window, float scale,
                            int layout) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int g = threadIdx.x / 128;
    const int tid = threadIdx.x % 128;
    const int lane = tid & 31;
    const int tig = lane & 3;
    const QueryBlock block = query_block<MASKED>(seg, grp, t, hq, hkv, window);
    const Rows me = block.me;
    const long long kBegin = block.begin;
    const long long kEnd = block.end;
    unsigned char* qs = smem + g * Q_BYTES;
    unsigned char* gs = smem + (GROUPS + g) * Q_BYTES;
    unsigned char* ks = TMA ? wg::align1024(smem + 2 * GROUPS * Q_BYTES) : smem + 2 * GROUPS * Q_BYTES;  // two buffers
    unsigned char* vs = ks + 2 * KV_BYTES;
    unsigned long long* full = reinterpret_cast<unsigned long long*>(vs + KV_BYTES);  // TMA: the key buffers', then the value tile's
    const Head kh = head(block.kvHead, hkv, t, D, layout, FLASH_LAYOUT_K);
    const Head vh = head(block.kvHead, hkv, t, D, layout, FLASH_LAYOUT_V);
    const Plane kv = plane(block.kvHead, hkv);
    for (int i = 0; i < GROUPS; i++) {
        const Rows r = rows_of(i, hq, hkv);
        const Head qh = head(r.bh, hq, t, D, layout, FLASH_LAYOUT_Q);
        const Head gh = head(r.bh, hq, t, D, layout, FLASH_LAYOUT_O);
        wg::load_cores<BM, D>(smem + i * Q_BYTES, q + qh.first, r.q0, t, ROW8, COL8, threadIdx.x, THREADS, qh.stride);
        wg::load_cores<BM, D>(smem + (GROUPS + i) * Q_BYTES, gout + gh.first, r.q0, t, ROW8, COL8, threadIdx.x, THREADS, gh.stride);
    }
    if constexpr (TMA) {
        wg::cp_commit();
        if (threadIdx.x == 0) {
            for (int i = 0; i < 3; i++) wg::mbar_init(&full[i], 1);
        }
        wg::publish();  // the query and output-gradient tiles, and the barriers initialised
        if (threadIdx.x == 0 && kBegin < kEnd) {
            issue_tile(ks, kmap, kBegin, kv, &full[0]);
            issue_tile(vs, vmap, kBegin, kv, &full[2]);
        }
    } else {
        wg::load_cores<BN, D>(ks, k + kh.first, kBegin, t, ROW8, COL8, threadIdx.x, THREADS, kh.stride);
        wg::load_cores<BN, D>(vs, v + vh.first, kBegin, t, ROW8, COL8, threadIdx.x, THREADS, vh.stride);
        wg::cp_commit();
    }
    const long long row0 = me.q0 + 16 * (tid / 32) + lane / 4;
    int qseg[2];
    int qgrp[2];
    token_pair<MASKED>(seg, grp, row0, 8, t, -1, qseg, qgrp);
    float l2[2];
    float dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const long long row = row0 + r * 8;
        l2[r] = row < t ? lse[me.bh * t + row] * LOG2E : inf();  // rows past the end get P = 0
        dl[r] = row < t ? delta[me.bh * t + row] : 0.f;
    }
    float dq[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dq[i] = 0.f;
    const float s2 = scale * LOG2E;
    int buffer = 0;
    int tile = 0;
    for (long long k0 = kBegin; k0 < kEnd; k0 += BN, buffer ^= 1, tile++) {
        const bool more = k0 + BN < kEnd;
        if constexpr (TMA) {
            if (threadIdx.x == 0 && more) issue_tile(ks + (buffer ^ 1) * KV_BYTES, kmap, k0 + BN, kv, &full[buffer ^ 1]);
            wg::mbar_wait(&full[buffer], (tile >> 1) & 1);
            wg::mbar_wait(&full[2], tile & 1);  // the value tile's tile-th filling
        } else {
            if (more) {
                wg::load_cores<BN, D>(ks + (buffer ^ 1) * KV_BYTES, k + kh.first, k0 + BN, t, ROW8, COL8, threadIdx.x, THREADS, kh.stride);
            }
            wg::cp_commit();
            wg::cp_wait<1>();  // this key tile and this value tile
            wg::publish_copies();
        }
        const unsigned char* kt = ks + buffer * KV_BYTES;
        float s[BN / 2];
        float dp[BN / 2];
#pragma unroll
        for (int i = 0; i < BN / 2; i++) s[i] = dp[i] = 0.f;
        // every tile, even one hidden from this group (its P is 0): wgmma under a branch is serialized
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            wg::m64n64k16(s, wg::descriptor(qs + kk * 2 * COL8, COL8, ROW8), TMA ? key_sw128(kt, kk) : wg::descriptor(kt + kk * 2 * COL8, COL8, ROW8), 1);
        }
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            wg::m64n64k16(dp, wg::descriptor(gs + kk * 2 * COL8, COL8, ROW8), TMA ? key_sw128(vs, kk) : wg::descriptor(vs + kk * 2 * COL8, COL8, ROW8), 1);
        }
        wg::commit();
        wg::wait<0>();
        __syncthreads();  // the value tile is read by both groups: the next may land
        if constexpr (TMA) {
            if (threadIdx.x == 0 && more) issue_tile(vs, vmap, k0 + BN, kv, &full[2]);
        } else {
            if (more) wg::load_cores<BN, D>(vs, v + vh.first, k0 + BN, t, ROW8, COL8, threadIdx.x, THREADS, vh.stride);
            wg::cp_commit();
        }
        over_tile<MASKED>([&](int i, bool seen) {
            const float p = seen ? exp2f(s[i] * s2 - l2[(i >> 1) & 1]) : 0.f;
            s[i] = p * (dp[i] - dl[(i >> 1) & 1]) * scale;
        }, seg, grp, row0, k0, tig, t, window, qseg, qgrp);
        unsigned a[BN / 16][4];
        to_a(a, s);
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            wg::m64n256k16_rs(dq, a[kk], TMA ? value_sw128(kt, kk) : nmajor(kt + kk * 2 * ROW8, ROW8, COL8), 1);
        }
        wg::commit();
        wg::wait<0>();
        __syncthreads();  // this key tile is read: the copy two tiles on may overwrite it
    }
    wg::cp_wait<0>();
    const Head qh = head(me.bh, hq, t, D, layout, FLASH_LAYOUT_Q);
    store(gq + qh.first, dq, row0, t, tig, qh.stride);
}

}  // namespace fwg

// The kernels, unmasked and over packed rows (segments and groups after the pointers, as flash.cu's).
#define JT_FLASH_WGMMA(sfx, MASKED, MASK_PARAMS, MASK_ARGS) \
    extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_forward##sfx##_bf16_256( \
            const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out, float* lse MASK_PARAMS, \
            int t, int hq, int hkv, int window, float scale, int layout) { \
        fwg::forward<MASKED, false>(q, k, v, nullptr, nullptr, out, lse, MASK_ARGS, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_forward_tma##sfx##_bf16_256( \
            const __nv_bfloat16* q, const __grid_constant__ wg::TensorMap kmap, const __grid_constant__ wg::TensorMap vmap, \
            __nv_bfloat16* out, float* lse MASK_PARAMS, int t, int hq, int hkv, int window, float scale, int layout) { \
        fwg::forward<MASKED, true>(q, nullptr, nullptr, &kmap, &vmap, out, lse, MASK_ARGS, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_backward_dq##sfx##_bf16_256( \
            const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* gout, const float* lse, \
            const float* delta, __nv_bfloat16* gq MASK_PARAMS, int t, int hq, int hkv, int window, float scale, int layout) { \
        fwg::backward_dq<MASKED, false>(q, k, v, nullptr, nullptr, gout, lse, delta, gq, MASK_ARGS, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_backward_dq_tma##sfx##_bf16_256( \
            const __nv_bfloat16* q, const __grid_constant__ wg::TensorMap kmap, const __grid_constant__ wg::TensorMap vmap, \
            const __nv_bfloat16* gout, const float* lse, const float* delta, __nv_bfloat16* gq MASK_PARAMS, int t, int hq, int hkv, \
            int window, float scale, int layout) { \
        fwg::backward_dq<MASKED, true>(q, nullptr, nullptr, &kmap, &vmap, gout, lse, delta, gq, MASK_ARGS, t, hq, hkv, window, scale, layout); } \
    extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_backward_dkv##sfx##_bf16_256( \
            const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* gout, const float* lse, \
            const float* delta, __nv_bfloat16* gk, __nv_bfloat16* gv, float* pk, float* pv MASK_PARAMS, int t, int hq, int hkv, \
            int window, float scale, int layout) { \
        fwg::backward_dkv<MASKED, false>(q, k, v, gout, nullptr, nullptr, lse, delta, gk, gv, pk, pv, nullptr, MASK_ARGS, t, hq, hkv, window, \
                                         scale, layout); } \
    extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_backward_dkv_tma##sfx##_bf16_256( \
            const __grid_constant__ wg::TensorMap qmap, const __nv_bfloat16* k, const __nv_bfloat16* v, \
            const __grid_constant__ wg::TensorMap gmap, const float* lse, const float* delta, __nv_bfloat16* gk, __nv_bfloat16* gv, \
            float* pk, float* pv MASK_PARAMS, int t, int hq, int hkv, int window, float scale, int layout) { \
        fwg::backward_dkv<MASKED, true>(nullptr, k, v, nullptr, &qmap, &gmap, lse, delta, gk, gv, pk, pv, nullptr, MASK_ARGS, t, hq, hkv, window, \
                                        scale, layout); } \
    extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_backward_dkv_dq_tma##sfx##_bf16_256( \
            const __grid_constant__ wg::TensorMap qmap, const __nv_bfloat16* k, const __nv_bfloat16* v, \
            const __grid_constant__ wg::TensorMap gmap, const float* lse, const float* delta, __nv_bfloat16* gk, __nv_bfloat16* gv, \
            float* pk, float* pv, float* dqa MASK_PARAMS, int t, int hq, int hkv, int window, float scale, int layout) { \
        fwg::backward_dkv<MASKED, true, (FLASH_WGMMA_PINGPONG & 2) != 0>(nullptr, k, v, nullptr, &qmap, &gmap, lse, delta, gk, gv, pk, pv, dqa, \
                                                                         MASK_ARGS, t, hq, hkv, window, scale, layout); }

#define JT_NO_MASK_ARGS nullptr, nullptr
#define JT_MASK_PARAMS , const int* seg, const int* grp
#define JT_MASK_ARGS seg, grp
JT_FLASH_WGMMA(, false, , JT_NO_MASK_ARGS)
JT_FLASH_WGMMA(_masked, true, JT_MASK_PARAMS, JT_MASK_ARGS)

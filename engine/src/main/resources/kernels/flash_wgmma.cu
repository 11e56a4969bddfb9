// Fused causal attention forward on Hopper's wgmma (sm_90a), bf16 heads of 256: flash.cu's forward (same inputs,
// same visibility rule, same out and lse) with both products on warpgroup instructions. A block is two warpgroups
// that share each key and value tile: with an even number of query heads per key/value head, two query heads of one
// key/value head at the same 64 positions (one causal diagonal, the key tiles shared whole); otherwise 128
// consecutive queries of one head. Per key tile of BN keys: S = Q K^T (m64n64k16, both operands in shared memory),
// the online softmax in registers, then O += P V with P straight from registers (m64n256k16, V N-major). Key and
// value tiles are double-buffered: the copies of tile j + 1 (cp.async, all 256 threads) overlap the work on tile j.
// Unmasked only: packed rows (segments, groups) stay on flash.cu.
#include "wgmma.cuh"

// From FlashWgmmaKernels.java: keys per tile, and which of the N-major descriptor's offsets runs along K.
#if !defined(JT_ARCH_SPECIFIC) || !defined(FLASH_WGMMA_KEYS) || !defined(WGMMA_NMAJOR_LBO_ALONG_K)
#error "JT_ARCH_SPECIFIC, FLASH_WGMMA_KEYS and WGMMA_NMAJOR_LBO_ALONG_K come from FlashWgmmaKernels.java's KernelSource"
#endif

namespace fwg {

constexpr int D = 256;
constexpr int BM = 64;  // query rows of a warpgroup
constexpr int BN = FLASH_WGMMA_KEYS;
constexpr int GROUPS = 2;  // warpgroups of a block
constexpr int THREADS = 128 * GROUPS;
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;
static_assert(BN == 64, "S = Q K^T is one m64n64 accumulator per k16 step");

// Shared memory (FlashWgmmaKernels.shared()): both warpgroups' query tiles, then two key and two value tiles.
constexpr int Q_BYTES = BM * D * 2;
constexpr int KV_BYTES = BN * D * 2;

// Descriptor offsets: Q and K tiles K-major (64 rows: 1024 bytes to the next 8 columns, 128 to the next 8 rows); the
// V tile N-major (N = D: D / 8 * 128 bytes to the next 8 keys, 128 to the next 8 dims).
constexpr unsigned QK_LBO = BM / 8 * 128;
constexpr unsigned V_ALONG_K = D / 8 * 128;
constexpr unsigned V_LBO = WGMMA_NMAJOR_LBO_ALONG_K ? V_ALONG_K : 128;
constexpr unsigned V_SBO = WGMMA_NMAJOR_LBO_ALONG_K ? 128 : V_ALONG_K;

__device__ __forceinline__ float inf() { return __int_as_float(0x7f800000); }

__device__ __forceinline__ bool visible(long long query, long long key, long long window) {
    return key <= query && (window <= 0 || query - key < window);
}

__device__ __forceinline__ unsigned pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
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

// Key tiles [begin, end) that queries [q0, q0 + BM) can see.
__device__ __forceinline__ void key_range(long long q0, int window, int t, long long* begin, long long* end) {
    const long long b = window > 0 ? q0 - window + 1 : 0;
    *begin = b < 0 ? 0 : b / BN * BN;
    *end = q0 + BM < t ? q0 + BM : t;
}

__device__ void forward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out,
                        float* lse, int t, int hq, int hkv, int window, float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int g = threadIdx.x / 128;
    const int tid = threadIdx.x % 128;
    const int lane = tid & 31;
    const int tig = lane & 3;
    const Rows me = rows_of(g, hq, hkv);
    const Rows first = rows_of(0, hq, hkv);
    const Rows last = rows_of(GROUPS - 1, hq, hkv);
    const long long kvHead = (first.bh / hq) * hkv + (first.bh % hq) / (hq / hkv);  // both groups' key/value head
    unsigned char* qs = smem + g * Q_BYTES;
    unsigned char* ks = smem + GROUPS * Q_BYTES;
    unsigned char* vs = ks + 2 * KV_BYTES;
    const __nv_bfloat16* kh = k + kvHead * t * D;
    const __nv_bfloat16* vh = v + kvHead * t * D;
    // the block's key tiles: from the first group's first to the last group's last
    long long kBegin, kEnd, myBegin, myEnd, unused;
    key_range(first.q0, window, t, &kBegin, &unused);
    key_range(last.q0, window, t, &unused, &kEnd);
    key_range(me.q0, window, t, &myBegin, &myEnd);
    for (int i = 0; i < GROUPS; i++) {
        const Rows r = rows_of(i, hq, hkv);
        wg::load<BM, D>(smem + i * Q_BYTES, q + r.bh * t * D, r.q0, t, threadIdx.x, THREADS);
    }
    wg::load<BN, D>(ks, kh, kBegin, t, threadIdx.x, THREADS);
    wg::load_nmajor<BN, D>(vs, vh, kBegin, t, threadIdx.x, THREADS);
    wg::cp_commit();

    const long long row0 = me.q0 + 16 * (tid / 32) + lane / 4;  // this thread's rows: row0 and row0 + 8
    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.f;
    float m[2] = {-inf(), -inf()};
    float l[2] = {0.f, 0.f};
    const float s2 = scale * LOG2E;
    int buffer = 0;
    for (long long k0 = kBegin; k0 < kEnd; k0 += BN, buffer ^= 1) {
        // the next tiles into the other buffers, which the previous iteration's barrier freed
        if (k0 + BN < kEnd) {
            wg::load<BN, D>(ks + (buffer ^ 1) * KV_BYTES, kh, k0 + BN, t, threadIdx.x, THREADS);
            wg::load_nmajor<BN, D>(vs + (buffer ^ 1) * KV_BYTES, vh, k0 + BN, t, threadIdx.x, THREADS);
        }
        wg::cp_commit();
        wg::cp_wait<1>();  // this tile (and the first time the query tiles)
        wg::publish_copies();
        if (k0 < myEnd && k0 + BN > myBegin) {  // else every key of the tile is hidden from this group's queries
            const unsigned char* kt = ks + buffer * KV_BYTES;
            const unsigned char* vt = vs + buffer * KV_BYTES;
            float s[BN / 2];
#pragma unroll
            for (int i = 0; i < BN / 2; i++) s[i] = 0.f;
            wg::fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                wg::m64n64k16(s, wg::descriptor(qs + kk * 2 * QK_LBO, QK_LBO, 128), wg::descriptor(kt + kk * 2 * QK_LBO, QK_LBO, 128), 1);
            }
            wg::commit();
            wg::wait<0>();
            float mx[2] = {m[0], m[1]};
#pragma unroll
            for (int j = 0; j < BN / 8; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const long long key = k0 + 8 * j + 2 * tig + (e & 1);
                    const long long row = row0 + (e >> 1) * 8;
                    const float x = visible(row, key, window) ? s[4 * j + e] * s2 : -inf();
                    s[4 * j + e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            }
            float corr[2];
            float ref[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                ref[r] = mx[r] == -inf() ? 0.f : mx[r];  // a row with nothing visible yet stays at 0
                corr[r] = exp2f(m[r] - ref[r]);
                m[r] = mx[r];
                l[r] *= corr[r];
            }
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
                wg::m64n256k16_rs(o, p[kk], wg::descriptor(vt + kk * 2 * V_ALONG_K, V_LBO, V_SBO), 1);
            }
            wg::commit();
            wg::wait<0>();
        }
        __syncthreads();  // this tile's buffers are read: the load two tiles on may overwrite them
    }
    wg::cp_wait<0>();
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;
    }
    __nv_bfloat16* oh = out + me.bh * t * D;
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const int c = 8 * j + 2 * tig;
        if (row0 < t) *reinterpret_cast<unsigned*>(oh + row0 * D + c) = pack(o[4 * j] * inv[0], o[4 * j + 1] * inv[0]);
        if (row0 + 8 < t) *reinterpret_cast<unsigned*>(oh + (row0 + 8) * D + c) = pack(o[4 * j + 2] * inv[1], o[4 * j + 3] * inv[1]);
    }
    if (tig == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const long long row = row0 + r * 8;
            if (row < t) lse[me.bh * t + row] = l[r] > 0.f ? m[r] * LN2 + logf(l[r]) : -inf();
        }
    }
}

}  // namespace fwg

extern "C" __global__ void __launch_bounds__(fwg::THREADS, 1) flash_wgmma_forward_bf16_256(
        const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, int t, int hq,
        int hkv, int window, float scale) {
    fwg::forward(q, k, v, out, lse, t, hq, hkv, window, scale);
}

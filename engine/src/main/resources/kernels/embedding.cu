// Embedding lookup and its deterministic backward.
//
// Forward: a row gather that does not look at the dtype: rows move as units of 16, 8, 4 or 2 bytes (the widest
// that the row size and both base addresses allow). An id outside [0, V) gives a zero row.
//
// Backward, without float atomics, as a stable counting sort of the token indices by id followed by one
// segmented sum per distinct id:
//   1. embedding_count:  counts[v] = number of tokens with id v (integer atomics: the result is exact)
//   2. embedding_scan:   offsets[v] = sum of counts below v; offsets[V] = number of valid tokens (one block)
//   3. embedding_rank:   rank[i] = number of j < i with ids[j] == ids[i] (tiled all-pairs comparison in shared
//                        memory: N^2/2 integer compares), sorted[offsets[ids[i]] + rank[i]] = i, so each id's
//                        tokens lie in ascending i
//   4. embedding_accumulate: for each id (the block at its first sorted position), every column sums its
//                        tokens' gradOut in ascending i in fp32 and adds the sum to gradTable once.
#include "rows.cuh"

template <typename U> __device__ __forceinline__ U zero_unit();
template <> __device__ __forceinline__ unsigned short zero_unit<unsigned short>() { return 0; }
template <> __device__ __forceinline__ unsigned int zero_unit<unsigned int>() { return 0u; }
template <> __device__ __forceinline__ uint2 zero_unit<uint2>() { return make_uint2(0u, 0u); }
template <> __device__ __forceinline__ uint4 zero_unit<uint4>() { return make_uint4(0u, 0u, 0u, 0u); }

// out[i, u] = table[ids[i], u] over rows of `units` units.
template <typename U>
__device__ void gather(const int* ids, const U* table, U* out, i64 n, i64 units, i64 v) {
    JT_FOR(e, n * units) {
        i64 i = e / units;
        i64 u = e - i * units;
        int id = ids[i];
        out[e] = (id >= 0 && id < v) ? table[(i64) id * units + u] : zero_unit<U>();
    }
}

extern "C" __global__ void embedding_gather_2(const int* ids, const unsigned short* table, unsigned short* out, i64 n, i64 units, i64 v) {
    gather<unsigned short>(ids, table, out, n, units, v);
}
extern "C" __global__ void embedding_gather_4(const int* ids, const unsigned int* table, unsigned int* out, i64 n, i64 units, i64 v) {
    gather<unsigned int>(ids, table, out, n, units, v);
}
extern "C" __global__ void embedding_gather_8(const int* ids, const uint2* table, uint2* out, i64 n, i64 units, i64 v) {
    gather<uint2>(ids, table, out, n, units, v);
}
extern "C" __global__ void embedding_gather_16(const int* ids, const uint4* table, uint4* out, i64 n, i64 units, i64 v) {
    gather<uint4>(ids, table, out, n, units, v);
}

// counts [V] must be zero on entry.
extern "C" __global__ void embedding_count(const int* ids, int* counts, i64 n, i64 v) {
    JT_FOR(i, n) {
        int id = ids[i];
        if (id >= 0 && id < v) atomicAdd(counts + id, 1);
    }
}

// Exclusive scan of counts [V] into offsets [V + 1] by one block of 1024 threads, 1024 entries per step.
extern "C" __global__ void embedding_scan(const int* counts, int* offsets, i64 v) {
    __shared__ int warpTotals[32];
    __shared__ int carry;
    if (threadIdx.x == 0) carry = 0;
    __syncthreads();
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    for (i64 base = 0; base < v; base += blockDim.x) {
        i64 idx = base + threadIdx.x;
        int c = idx < v ? counts[idx] : 0;
        int inc = c;  // inclusive scan within the warp
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            int t = __shfl_up_sync(JT_FULL_MASK, inc, o);
            if (lane >= o) inc += t;
        }
        if (lane == 31) warpTotals[warp] = inc;
        __syncthreads();
        int before = carry;
        for (int w = 0; w < warp; w++) before += warpTotals[w];
        if (idx < v) offsets[idx] = before + inc - c;
        __syncthreads();  // everyone has read carry and warpTotals
        if (threadIdx.x == 0) {
            int total = carry;
            for (int w = 0; w < warps; w++) total += warpTotals[w];
            carry = total;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) offsets[v] = carry;
}

// Tokens per block of embedding_rank (EmbeddingKernels.java).
#ifndef RANK_TILE
#error "RANK_TILE comes from EmbeddingKernels.java's KernelSource"
#endif

// Blocks of RANK_TILE threads, one token each; grid = ceil(n / RANK_TILE).
extern "C" __global__ void embedding_rank(const int* ids, const int* offsets, int* sorted, i64 n, i64 v) {
    __shared__ int tile[RANK_TILE];
    const i64 i = (i64) blockIdx.x * RANK_TILE + threadIdx.x;
    const int id = i < n ? ids[i] : -1;
    int rank = 0;
    for (i64 t = 0; t <= blockIdx.x; t++) {
        i64 j = t * RANK_TILE + threadIdx.x;
        tile[threadIdx.x] = j < n ? ids[j] : -1;
        __syncthreads();
        if (t < blockIdx.x) {
#pragma unroll 16
            for (int k = 0; k < RANK_TILE; k++) rank += tile[k] == id;
        } else {
            for (int k = 0; k < (int) threadIdx.x; k++) rank += tile[k] == id;
        }
        __syncthreads();
    }
    if (i < n && id >= 0 && id < v) sorted[offsets[id] + rank] = (int) i;
}

// One block per sorted position; the block at the first position of an id does that id's columns.
template <typename G, typename T>
__device__ void accumulate(const int* ids, const int* sorted, const int* offsets, const int* counts,
                           const G* gradOut, T* gradTable, i64 n, i64 d, i64 v) {
    typedef typename Acc<G>::type A;
    typedef typename Acc<T>::type AT;
    const i64 total = offsets[v];
    for (i64 p = blockIdx.x; p < total; p += gridDim.x) {
        const int id = ids[sorted[p]];
        if (offsets[id] != p) continue;  // not the first token of its id (uniform over the block)
        const int c = counts[id];
        for (i64 col = (i64) blockIdx.y * blockDim.x + threadIdx.x; col < d; col += (i64) gridDim.y * blockDim.x) {
            A s = 0;
#pragma unroll 4
            for (int k = 0; k < c; k++) s += load_acc<G>(gradOut[(i64) sorted[p + k] * d + col]);
            T* dst = gradTable + (i64) id * d + col;
            if constexpr (sizeof(A) > sizeof(AT)) {
                *dst = store_as<T>((A) load_acc<T>(*dst) + s);  // one rounding from the wider type
            } else {
                *dst = store_acc<T>(load_acc<T>(*dst) + (AT) s);
            }
        }
    }
}

#define JT_EMB_ACC(gs, G, ts, T) \
    extern "C" __global__ void embedding_accumulate_##gs##_##ts(const int* ids, const int* sorted, const int* offsets, const int* counts, \
                                                               const G* gradOut, T* gradTable, i64 n, i64 d, i64 v) { \
        accumulate<G, T>(ids, sorted, offsets, counts, gradOut, gradTable, n, d, v); }
// Every pair of float dtypes (the contract's are gradTable in gradOut's dtype or F32).
#define JT_EMB_ACC_G(gs, G) \
    JT_EMB_ACC(gs, G, f64, double) JT_EMB_ACC(gs, G, f32, float) JT_EMB_ACC(gs, G, bf16, __nv_bfloat16) JT_EMB_ACC(gs, G, f16, __half)
JT_FLOAT_TYPES(JT_EMB_ACC_G)

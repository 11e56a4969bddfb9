// Hopper's warpgroup matrix multiply (wgmma, sm_90a), the building block of the causal attention kernels to come
// (issue 14): one warpgroup (4 consecutive warps, 128 threads) multiplies a 64 x K tile of A by the transpose of a
// N x K tile of B, both bf16 in shared memory and read by the tensor cores through matrix descriptors, into fp32
// accumulators in registers. This file holds the pieces and a probe kernel that exercises them whole, so the shared
// memory layout and the descriptors are checked against the cpu (WgmmaProbeGpuTest) before attention builds on them.
//
// Layout ("no swizzle", K-major): a tile of R rows by K columns is stored as core matrices of 8 rows x 8 elements
// (16 bytes a row, 128 contiguous bytes), core matrix (r8, k8) at byte (k8 * R / 8 + r8) * 128. A descriptor gives the
// tile's start, the byte distance between core matrices adjacent in K (the leading byte offset: R / 8 * 128) and in
// M or N (the stride byte offset: 128). One m64nNk16 instruction reads two core matrices along K; the next k16 step
// starts 2 * LBO bytes further. (PTX ISA 9.7.15.5.1.2.1, over the matrix normalized to 128-bit elements: K-major
// without swizzle, LBO is the offset between the two columns of an 8 x 2 tile, SBO from one 8 rows to the next. For an
// MN-major operand, P V's V, it reads: LBO from one 8 columns to the next, SBO from one row to the next: the next
// layout to probe.)
//
// Accumulators: thread t of the warpgroup holds, for j < N / 8, d[4j..4j+3] = C(row, col), C(row, col + 1),
// C(row + 8, col), C(row + 8, col + 1), row = 16 (t / 32) + (t % 32) / 4, col = 8 j + 2 (t % 4): mma.sync's C layout,
// tiled over N.

#include "common.cuh"

#if !defined(JT_ARCH_SPECIFIC) || !defined(WGMMA_PROBE_K)
#error "JT_ARCH_SPECIFIC and WGMMA_PROBE_K come from WgmmaKernels.java's KernelSource"
#endif

namespace wg {

// The shared-memory byte offset of element (r, k) of an R-row, K-major tile in the no-swizzle core-matrix layout.
template <int R>
__device__ __forceinline__ unsigned offset(int r, int k) {
    return (unsigned) (((k >> 3) * (R / 8) + (r >> 3)) * 128 + (r & 7) * 16 + (k & 7) * 2);
}

// Copies a row-major [R][K] bf16 tile from global memory into the layout above, 16 bytes (8 elements) a copy.
template <int R, int K, int THREADS>
__device__ __forceinline__ void load(unsigned char* tile, const __nv_bfloat16* g) {
    for (int i = threadIdx.x; i < R * K / 8; i += THREADS) {
        const int r = i / (K / 8);
        const int k = (i % (K / 8)) * 8;
        const unsigned dst = (unsigned) __cvta_generic_to_shared(tile + offset<R>(r, k));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(g + (long long) r * K + k));
    }
    asm volatile("cp.async.commit_group;\n" ::);
}

// Copies a row-major [K][N] bf16 tile (N contiguous: an N-major B, as P V's V) into core matrices of 8 k-rows of 8
// consecutive n (16 bytes), core (n8, k8) at byte (k8 * N / 8 + n8) * 128: 128 bytes to the next along N, N / 8 * 128
// to the next along K.
template <int K, int N, int THREADS>
__device__ __forceinline__ void load_nmajor(unsigned char* tile, const __nv_bfloat16* g) {
    for (int i = threadIdx.x; i < K * N / 8; i += THREADS) {
        const int k = i / (N / 8);
        const int n = (i % (N / 8)) * 8;
        const unsigned dst = (unsigned) __cvta_generic_to_shared(tile + ((k >> 3) * (N / 8) + (n >> 3)) * 128 + (k & 7) * 16);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(g + (long long) k * N + n));
    }
    asm volatile("cp.async.commit_group;\n" ::);
}

// Waits for this thread's tile copies and publishes the tiles to the block's tensor cores, which read shared memory
// through the async proxy: the copies are ordered before them by a proxy fence, then a barrier (HOPPER.md).
__device__ __forceinline__ void publish() {
    asm volatile("cp.async.wait_group 0;\n" ::);
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
}

// A matrix descriptor: start address, leading (K) and stride (M/N) byte offsets, each in 16-byte units; no swizzle.
__device__ __forceinline__ unsigned long long descriptor(const void* tile, unsigned lbo, unsigned sbo) {
    const unsigned addr = (unsigned) __cvta_generic_to_shared(tile);
    return (unsigned long long) ((addr & 0x3FFFF) >> 4) | ((unsigned long long) ((lbo >> 4) & 0x3FFF) << 16)
           | ((unsigned long long) ((sbo >> 4) & 0x3FFF) << 32);
}

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// d[32] (+)= A (64 x 16, descriptor a, K-major) x B (16 x 64, descriptor b: K-major, i.e. B^T's rows, or with TRANS_B
// N-major); accumulate 0 overwrites d.
template <int TRANS_B = 0>
__device__ __forceinline__ void m64n64k16(float* d, unsigned long long a, unsigned long long b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, %35;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B));
}

// Writes a 64 x 64 fp32 accumulator tile (the layout in the file's comment) to row-major c.
__device__ __forceinline__ void store64(float* c, const float* d) {
    const int t = threadIdx.x;
    const int row = 16 * (t / 32) + (t % 32) / 4;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const int col = 8 * j + 2 * (t % 4);
        c[row * 64 + col] = d[4 * j];
        c[row * 64 + col + 1] = d[4 * j + 1];
        c[(row + 8) * 64 + col] = d[4 * j + 2];
        c[(row + 8) * 64 + col + 1] = d[4 * j + 3];
    }
}

}  // namespace wg

// c [64][64] fp32 = a [64][K] x b [64][K]^T, bf16 row-major inputs; one block of one warpgroup (128 threads), 2 x 64 K
// x 2 bytes of shared memory.
extern "C" __global__ void __launch_bounds__(128) wgmma_probe_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b, float* c) {
    constexpr int K = WGMMA_PROBE_K;
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* as = smem;
    unsigned char* bs = smem + 64 * K * 2;
    wg::load<64, K, 128>(as, a);
    wg::load<64, K, 128>(bs, b);
    wg::publish();
    float d[32] = {};  // the first step overwrites it (accumulate 0); zeroed only so nothing is read unset
    constexpr unsigned LBO = 64 / 8 * 128;  // next core matrix along K
    constexpr unsigned SBO = 128;           // next 8 rows
    wg::fence();
#pragma unroll
    for (int s = 0; s < K / 16; s++) {
        wg::m64n64k16(d, wg::descriptor(as + s * 2 * LBO, LBO, SBO), wg::descriptor(bs + s * 2 * LBO, LBO, SBO), s > 0);
    }
    wg::commit();
    wg::wait<0>();
    wg::store64(c, d);
}

// The N-major B of P V (V is [keys][head dims], dims contiguous), probed: c [64][64] = a [64][K] x b [K][64], b
// row-major, in wg::load_nmajor's layout: 128 bytes to the next core matrix along N, 1024 to the next along K. Which
// of those the descriptor's leading and stride byte offsets name is what the probe finds out: WgmmaLayoutProbe runs
// it with both assignments.
extern "C" __global__ void __launch_bounds__(128) wgmma_probe_nmajor_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b,
                                                                          float* c, int lbo, int sbo) {
    constexpr int K = WGMMA_PROBE_K;
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* as = smem;
    unsigned char* bs = smem + 64 * K * 2;
    wg::load<64, K, 128>(as, a);
    wg::load_nmajor<K, 64, 128>(bs, b);
    wg::publish();
    float d[32] = {};
    constexpr unsigned A_LBO = 64 / 8 * 128;
    wg::fence();
#pragma unroll
    for (int s = 0; s < K / 16; s++) {
        // a k16 step is two k8 rows of core matrices further in b: 2 x 1024 bytes
        wg::m64n64k16<1>(d, wg::descriptor(as + s * 2 * A_LBO, A_LBO, 128), wg::descriptor(bs + s * 2 * 1024, lbo, sbo), s > 0);
    }
    wg::commit();
    wg::wait<0>();
    wg::store64(c, d);
}

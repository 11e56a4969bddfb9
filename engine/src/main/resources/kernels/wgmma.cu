// Probes of wgmma.cuh's layouts and descriptors: one warpgroup's products of bf16 tiles, checked against the cpu
// (WgmmaProbeGpuTest; bench WgmmaLayoutProbe tries the N-major operand's descriptor offsets both ways).
#include "wgmma.cuh"

#if !defined(JT_ARCH_SPECIFIC) || !defined(WGMMA_PROBE_K)
#error "JT_ARCH_SPECIFIC and WGMMA_PROBE_K come from WgmmaKernels.java's KernelSource"
#endif


// c [64][64] fp32 = a [64][K] x b [64][K]^T, bf16 row-major inputs; one block of one warpgroup (128 threads), 2 x 64 K
// x 2 bytes of shared memory.
extern "C" __global__ void __launch_bounds__(128) wgmma_probe_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b, float* c) {
    constexpr int K = WGMMA_PROBE_K;
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* as = smem;
    unsigned char* bs = smem + 64 * K * 2;
    wg::load<64, K>(as, a, 0, 64, threadIdx.x, 128);
    wg::load<64, K>(bs, b, 0, 64, threadIdx.x, 128);
    wg::cp_commit();
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
    wg::load<64, K>(as, a, 0, 64, threadIdx.x, 128);
    wg::load_nmajor<K, 64>(bs, b, 0, K, threadIdx.x, 128);
    wg::cp_commit();
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

// Probes of wgmma.cuh's layouts and descriptors: one warpgroup's products of bf16 tiles, checked against the cpu
// (WgmmaProbeGpuTest; bench WgmmaLayoutProbe tries the N-major operand's descriptor offsets both ways): copied by
// cp.async into the no-swizzle layout, or by TMA into the 128-byte swizzled one.
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
    wg::store<64>(c, d);
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
    wg::store<64>(c, d);
}

// The TMA path probed: c [64][64] = a [64][K] x b [64][K]^T as wgmma_probe_bf16, both tiles copied by TMA in 64 x 64
// boxes with the 128-byte swizzle (TensorMap.java's B128), read through swizzled descriptors. Shared memory: 1 KiB of
// slack (the boxes start 1024-byte aligned), both tiles, the mbarrier.
extern "C" __global__ void __launch_bounds__(128) wgmma_probe_tma_bf16(const __grid_constant__ wg::TensorMap a,
                                                                       const __grid_constant__ wg::TensorMap b, float* c) {
    constexpr int K = WGMMA_PROBE_K;
    constexpr int BOX = 64 * 64 * 2;
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* as = wg::align1024(smem);
    unsigned char* bs = as + 64 * K * 2;
    unsigned long long* bar = reinterpret_cast<unsigned long long*>(bs + 64 * K * 2);
    if (threadIdx.x == 0) wg::mbar_init(bar, 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        wg::mbar_expect(bar, 2 * 64 * K * 2);
        for (int j = 0; j < K / 64; j++) {
            wg::tma_load(as + j * BOX, &a, j * 64, 0, bar);
            wg::tma_load(bs + j * BOX, &b, j * 64, 0, bar);
        }
    }
    wg::mbar_wait(bar, 0);
    float d[32] = {};
    wg::fence();
#pragma unroll
    for (int s = 0; s < K / 16; s++) {
        const int at = (s / 4) * BOX + (s % 4) * 32;  // the box, then 32 bytes a k16 step inside its rows
        wg::m64n64k16(d, wg::descriptor_sw128(as + at), wg::descriptor_sw128(bs + at), s > 0);
    }
    wg::commit();
    wg::wait<0>();
    wg::store<64>(c, d);
}

// The N-major TMA path probed (P V's V): c [64][256] = a [64][64] x b [64][256], a's fragments read from global memory
// into registers (the A layout P takes in attention), b row-major (N contiguous) copied by TMA in four 64 x 64 boxes
// with the 128-byte swizzle; the descriptor's leading and stride byte offsets are arguments (CUTLASS's MN-major B128:
// LBO 8192, between boxes along N; SBO 1024, between 8-row groups along K), as the no-swizzle N-major probe had them.
extern "C" __global__ void __launch_bounds__(128) wgmma_probe_tma_nmajor_bf16(const __nv_bfloat16* a, const __grid_constant__ wg::TensorMap b,
                                                                              float* c, int lbo, int sbo) {
    constexpr int BOX = 64 * 64 * 2;
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* bs = wg::align1024(smem);
    unsigned long long* bar = reinterpret_cast<unsigned long long*>(bs + 4 * BOX);
    if (threadIdx.x == 0) wg::mbar_init(bar, 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        wg::mbar_expect(bar, 4 * BOX);
        for (int j = 0; j < 4; j++) wg::tma_load(bs + j * BOX, &b, j * 64, 0, bar);
    }
    // a's k16 steps in mma.sync's A fragment layout: rows r and r + 8, column pairs c and c + 8
    const int t = threadIdx.x;
    const int r = 16 * (t / 32) + (t % 32) / 4;
    unsigned frag[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const int col = 16 * kk + 2 * (t % 4);
        frag[kk][0] = *reinterpret_cast<const unsigned*>(a + r * 64 + col);
        frag[kk][1] = *reinterpret_cast<const unsigned*>(a + (r + 8) * 64 + col);
        frag[kk][2] = *reinterpret_cast<const unsigned*>(a + r * 64 + col + 8);
        frag[kk][3] = *reinterpret_cast<const unsigned*>(a + (r + 8) * 64 + col + 8);
    }
    wg::mbar_wait(bar, 0);
    float d[128] = {};
    wg::fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        wg::m64n256k16_rs(d, frag[kk], wg::descriptor_sw128(bs + kk * 2048, lbo, sbo), kk > 0);
    }
    wg::commit();
    wg::wait<0>();
    wg::store<256>(c, d);
}

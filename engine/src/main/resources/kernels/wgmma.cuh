// Hopper's warpgroup matrix multiply (wgmma, sm_90a), the building block of the causal attention kernels
// (flash_wgmma.cu, issue 14): one warpgroup (4 consecutive warps, 128 threads) multiplies a 64 x K tile of A by a
// K x N tile of B, bf16, A in shared memory or registers and B in shared memory, read by the tensor cores through
// matrix descriptors, into fp32 accumulators in registers. This header holds the pieces (layouts, loaders,
// descriptors, instructions); wgmma.cu probes them against the cpu (WgmmaProbeGpuTest, bench WgmmaLayoutProbe).
//
// Layouts ("no swizzle"): tiles are stored as core matrices of 8 rows of 16 bytes (8 elements), 128 contiguous bytes.
// K-major (A, or B given as B^T's rows: q.k^T's k): core matrix (r8, k8) of an R-row tile at byte (k8 R / 8 + r8) 128.
// N-major (B's rows contiguous along N: P V's V): core matrix (n8, k8) at byte (k8 N / 8 + n8) 128, each of its rows
// 8 consecutive n of one k. A descriptor gives the tile's start, the byte distance between core matrices adjacent
// along K (the leading byte offset, LBO) and along M or N (the stride byte offset, SBO): K-major LBO = R / 8 * 128 and
// SBO = 128; N-major LBO = N / 8 * 128 and SBO = 128 (CUTLASS's canonical no-swizzle layouts; the layout probe tries
// the N-major pair both ways). One k16 instruction reads two core matrices along K; the next starts 2 LBO further.
//
// Accumulators: thread t of the warpgroup holds, for j < N / 8, d[4j..4j+3] = C(row, col), C(row, col + 1),
// C(row + 8, col), C(row + 8, col + 1), row = 16 (t / 32) + (t % 32) / 4, col = 8 j + 2 (t % 4): mma.sync's C layout,
// tiled over N. A register A operand has mma.sync's A layout over the same rows.

#pragma once
#include "common.cuh"

namespace wg {

// The shared-memory byte offset of element (r, k) of an R-row, K-major tile in the no-swizzle core-matrix layout.
template <int R>
__device__ __forceinline__ unsigned offset(int r, int k) {
    return (unsigned) (((k >> 3) * (R / 8) + (r >> 3)) * 128 + (r & 7) * 16 + (k & 7) * 2);
}

// Copies rows [row0, row0 + ROWS) of a row-major [t][COLS] bf16 matrix (rows `stride` elements apart) into core
// matrices of 8 rows x 8 columns, core (r8, c8) at byte r8 * rs + c8 * cs, each of its rows one matrix row's 8
// columns (16 bytes); rows at or past t read as zeros. 16 bytes a cp.async, by threads tid of n. Eight consecutive threads fill the eight rows of one core
// matrix, 128 contiguous bytes of shared memory, so the stores meet no bank conflict; a warp reads 64 contiguous
// bytes of each of 8 rows. The same tile serves as a K-major operand whose rows are M or N and as an N-major one whose
// rows are K: only the descriptor's offsets differ (the layouts in the file's comment).
// WHOLE_LINES: eight consecutive threads copy one row's 128 contiguous bytes instead (its eight core matrices along
// the row, cs apart): a warp reads four whole 128-byte lines, half the L2 requests. Its stores meet no bank conflict
// when cs is 64 bytes off a multiple of 128 (a padded tile): a row's even and odd core matrices then fill the two
// halves of the banks.
template <int ROWS, int COLS, bool WHOLE_LINES = false>
__device__ __forceinline__ void load_cores(unsigned char* tile, const __nv_bfloat16* g, long long row0, long long t, unsigned rs,
                                           unsigned cs, int tid, int n, long long stride = COLS) {
    static_assert(!WHOLE_LINES || COLS % 64 == 0, "whole 128-byte runs");
    for (int i = tid; i < ROWS * COLS / 8; i += n) {
        const int r = WHOLE_LINES ? (i >> 3) % ROWS : ((i >> 3) / (COLS / 8)) * 8 + (i & 7);
        const int c = WHOLE_LINES ? ((i & 7) + 8 * ((i >> 3) / ROWS)) * 8 : ((i >> 3) % (COLS / 8)) * 8;
        const bool inside = row0 + r < t;
        const __nv_bfloat16* src = inside ? g + (row0 + r) * stride + c : g;
        const unsigned dst = (unsigned) __cvta_generic_to_shared(tile + (r >> 3) * rs + (c >> 3) * cs + (r & 7) * 16);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(inside ? 16 : 0));
    }
}

// An R x K K-major tile (offset<R>'s layout) from rows [row0, row0 + R) of a row-major [t][K] matrix.
template <int R, int K>
__device__ __forceinline__ void load(unsigned char* tile, const __nv_bfloat16* g, long long row0, long long t, int tid, int n,
                                     long long stride = K) {
    load_cores<R, K>(tile, g, row0, t, 128, R / 8 * 128, tid, n, stride);
}

// A K x N N-major tile (core (n8, k8) at byte (k8 N / 8 + n8) 128: 128 bytes to the next along N, N / 8 * 128 to the
// next along K) from rows [row0, row0 + K) of a row-major [t][N] matrix (N contiguous, as P V's V).
template <int K, int N>
__device__ __forceinline__ void load_nmajor(unsigned char* tile, const __nv_bfloat16* g, long long row0, long long t, int tid, int n,
                                            long long stride = N) {
    load_cores<K, N>(tile, g, row0, t, N / 8 * 128, 128, tid, n, stride);
}

__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Publishes tiles copied by this block's threads (their cp.async groups waited for) to the tensor cores, which read
// shared memory through the async proxy: a proxy fence, then a barrier (HOPPER.md).
__device__ __forceinline__ void publish_copies() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
}

// Waits for all of this thread's copies, then publishes them.
__device__ __forceinline__ void publish() {
    cp_wait<0>();
    publish_copies();
}

// Makes this thread's shared-memory stores visible to the async proxy (wgmma's operand reads), before a barrier.
__device__ __forceinline__ void proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// *p += {a, b} (two consecutive floats, 8-byte aligned) as one reduction in L2 (sm_90's vector red).
__device__ __forceinline__ void red_add2(float* p, float a, float b) {
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
}

// Named barrier id (1 to 15; 0 is __syncthreads') over count threads, for warpgroups that hand each other tiles:
// the producers arrive (their shared-memory writes before it are then visible to the waiters), the consumers wait.
__device__ __forceinline__ void bar_arrive(int id, int count) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory"); }
__device__ __forceinline__ void bar_sync(int id, int count) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory"); }

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

// d[128] (+)= A (64 x 16, bf16 in registers: a[4] per thread in mma.sync's A layout, rows 16 (warp % 4) + lane / 4
// and + 8, columns 2 (lane % 4) + {0, 1} and + 8) x B (16 x 256, descriptor b, N-major: 16 rows of a [keys][dims]
// tile such as attention's V); accumulate 0 overwrites d. A comes from registers, so P goes from the softmax
// straight into the product, never through shared memory.
__device__ __forceinline__ void m64n256k16_rs(float* d, const unsigned* a, unsigned long long b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
                 "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
                 "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"
                 "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,"
                 "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"
                 "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,"
                 "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
                 "{%128,%129,%130,%131}, %132, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                   "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                   "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                   "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                   "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                   "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                   "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                   "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                   "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}

// Writes a 64 x N fp32 accumulator (m64nN's, the layout in the file's comment) to row-major c.
template <int N>
__device__ __forceinline__ void store(float* c, const float* d) {
    const int t = threadIdx.x;
    const int row = 16 * (t / 32) + (t % 32) / 4;
#pragma unroll
    for (int j = 0; j < N / 8; j++) {
        const int col = 8 * j + 2 * (t % 4);
        c[row * N + col] = d[4 * j];
        c[row * N + col + 1] = d[4 * j + 1];
        c[(row + 8) * N + col] = d[4 * j + 2];
        c[(row + 8) * N + col + 1] = d[4 * j + 3];
    }
}

// ---- TMA (cp.async.bulk.tensor) and the 128-byte swizzled layout

// A TMA descriptor as a kernel receives it by value, `const __grid_constant__ wg::TensorMap map` (CUtensorMap: 128
// opaque bytes, encoded on the host by TensorMap.java).
struct alignas(64) TensorMap {
    unsigned long long opaque[16];
};

__device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned) __cvta_generic_to_shared(p); }

// An mbarrier in shared memory that count arrivals complete, made visible to the TMA unit (the async proxy); one
// thread initialises it, then the block synchronises before anyone waits on it.
__device__ __forceinline__ void mbar_init(unsigned long long* bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// This thread's arrival, announcing bytes that TMA copies will complete on the barrier.
__device__ __forceinline__ void mbar_expect(unsigned long long* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}

// This thread's plain arrival (its shared-memory writes before it are visible to the barrier's waiters).
__device__ __forceinline__ void mbar_arrive(unsigned long long* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

// Waits until the barrier's phase of this parity has completed (its arrivals made and its bytes landed).
__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
    asm volatile("{\n.reg .pred p;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT;\n}\n"
                 ::"r"(smem_addr(bar)), "r"(parity) : "memory");
}

// Copies the box of map at element (col, row) into shared memory at dst, its bytes completing on bar: one instruction,
// issued by one thread. Rows or columns past the matrix read as zeros.
__device__ __forceinline__ void tma_load(void* dst, const TensorMap* map, int col, int row, unsigned long long* bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(smem_addr(dst)), "l"(reinterpret_cast<unsigned long long>(map)), "r"(col), "r"(row), "r"(smem_addr(bar))
                 : "memory");
}

// tma_load's four-dimensional form: the box at (col, row) of head h of batch row b ([B, H, rows, cols] with any
// strides: heads-major or tokens-major); rows past a head's end read as zeros.
__device__ __forceinline__ void tma_load4(void* dst, const TensorMap* map, int col, int row, int h, int b, unsigned long long* bar) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
                 ::"r"(smem_addr(dst)), "l"(reinterpret_cast<unsigned long long>(map)), "r"(col), "r"(row), "r"(h), "r"(b),
                   "r"(smem_addr(bar))
                 : "memory");
}

// An operand in the 128-byte swizzled layout that TMA's B128 boxes leave: box rows of 64 bf16 (128 bytes), the 16-byte
// chunks of row r at chunk position c ^ (r % 8), a box 1024-byte aligned (the swizzle is a function of the address
// bits). K-major (rows are M or N): 8-row groups 1024 bytes apart (SBO), the leading offset unused when a k16 step (32
// bytes) lies inside a row; step s of a 64-column box starts 32 s bytes in. N-major (rows are K, as P V's V; CUTLASS's
// MN-major B128, which the TMA N-major probe checks): LBO between 64-column boxes along N, SBO between 8-row groups
// along K; step s starts 2048 s bytes in.
__device__ __forceinline__ unsigned long long descriptor_sw128(const void* tile, unsigned lbo = 16, unsigned sbo = 1024) {
    return descriptor(tile, lbo, sbo) | (1ull << 62);  // layout type 1: the 128-byte swizzle
}

// The first 1024-byte aligned address at or after p (swizzled boxes must start there): 1 KiB of slack covers it.
__device__ __forceinline__ unsigned char* align1024(unsigned char* p) {
    return p + ((1024 - (smem_addr(p) & 1023)) & 1023);
}

}  // namespace wg

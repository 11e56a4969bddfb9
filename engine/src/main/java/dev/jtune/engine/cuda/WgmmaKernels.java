package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;

import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelParam.TENSOR_MAP;

/**
 * Typed launches of kernels/wgmma.cu: Hopper's warpgroup matrix multiply (sm_90a) and its shared-memory layout and
 * descriptors, which the causal attention kernels are to be built on (issue 14). For now one probe, an A B^T product
 * of one 64 x {@link #PROBE_K} by 64 x {@link #PROBE_K} bf16 tile pair checked against the cpu, so the layout is known
 * right before anything depends on it. Loading the module needs an sm_90 GPU ({@link KernelSource#targetFor}).
 */
public final class WgmmaKernels {
    /** The probe's reduction length (WGMMA_PROBE_K): 8 k16 steps, 32 KiB of shared memory for both tiles. */
    public static final int PROBE_K = 128;
    /** The probe's output tile: 64 x 64. */
    public static final int PROBE_ROWS = 64;

    static final KernelSource SOURCE = KernelSource.builder("wgmma.cu")
            .define(KernelSource.ARCH_SPECIFIC, 1)
            .define("WGMMA_PROBE_K", PROBE_K)
            .kernel("wgmma_probe_bf16", PTR, PTR, PTR)
            .kernel("wgmma_probe_nmajor_bf16", PTR, PTR, PTR, I32, I32)
            .kernel("wgmma_probe_tma_bf16", TENSOR_MAP, TENSOR_MAP, PTR)
            .kernel("wgmma_probe_tma_nmajor_bf16", PTR, TENSOR_MAP, PTR, I32, I32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;

    public WgmmaKernels(KernelCompiler compiler, CudaStream stream) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
    }

    /** Shared bytes of the probe: both tiles in bf16. */
    static int probeShared() {
        return 2 * PROBE_ROWS * PROBE_K * 2;
    }

    /** Shared bytes of the TMA probe: 1 KiB of slack to align the boxes to 1024 bytes, both tiles, the mbarrier. */
    static int probeTmaShared() {
        return 1024 + probeShared() + 8;
    }

    /**
     * {@link #probe}'s product with both tiles copied by TMA ({@link TensorMap}, boxes of 64 x 64 with the 128-byte
     * swizzle) and read through swizzled descriptors: the load path the attention kernels are to move to.
     */
    public void probeTma(Tensor a, Tensor b, Tensor c) {
        check(a, DType.BF16, PROBE_ROWS, PROBE_K, "a");
        check(b, DType.BF16, PROBE_ROWS, PROBE_K, "b");
        check(c, DType.F32, PROBE_ROWS, PROBE_ROWS, "c");
        TensorMap ma = TensorMap.of(a, PROBE_ROWS, 64, TensorMap.Swizzle.B128);
        TensorMap mb = TensorMap.of(b, PROBE_ROWS, 64, TensorMap.Swizzle.B128);
        try (KernelArgs args = new KernelArgs()) {
            args.tensorMap(ma).tensorMap(mb).pointer(c.address());
            module.function("wgmma_probe_tma_bf16").launch(stream, 1, 128, probeTmaShared(), args);
        }
    }

    /** The N-major TMA probe's width: m64n256, as attention's P V. */
    public static final int PROBE_N = 256;
    /** The N-major TMA probe's reduction length: one 64-row box, four k16 steps. */
    public static final int PROBE_TMA_K = 64;

    /** Shared bytes of the N-major TMA probe: 1 KiB of slack, b's four 64 x 64 boxes, the mbarrier. */
    static int probeTmaNMajorShared() {
        return 1024 + PROBE_TMA_K * PROBE_N * 2 + 8;
    }

    /**
     * c [64, 256] F32 = a [64, 64] x b [64, 256]: b row-major (N-major, as attention's V) copied by TMA in 64 x 64
     * boxes with the 128-byte swizzle, its descriptor given {@code lbo} and {@code sbo} (CUTLASS's MN-major B128 has
     * 8192, the distance between boxes along N, and 1024, between 8-row groups along K); a's fragments in registers.
     */
    public void probeTmaNMajor(Tensor a, Tensor b, Tensor c, int lbo, int sbo) {
        check(a, DType.BF16, PROBE_ROWS, PROBE_TMA_K, "a");
        check(b, DType.BF16, PROBE_TMA_K, PROBE_N, "b");
        check(c, DType.F32, PROBE_ROWS, PROBE_N, "c");
        TensorMap mb = TensorMap.of(b, PROBE_TMA_K, 64, TensorMap.Swizzle.B128);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(a.address()).tensorMap(mb).pointer(c.address()).i32(lbo).i32(sbo);
            module.function("wgmma_probe_tma_nmajor_bf16").launch(stream, 1, 128, probeTmaNMajorShared(), args);
        }
    }

    /** c [64, 64] F32 = a [64, PROBE_K] x b [64, PROBE_K]^T, a and b BF16 contiguous, on one warpgroup's tensor cores. */
    public void probe(Tensor a, Tensor b, Tensor c) {
        check(a, DType.BF16, PROBE_ROWS, PROBE_K, "a");
        check(b, DType.BF16, PROBE_ROWS, PROBE_K, "b");
        check(c, DType.F32, PROBE_ROWS, PROBE_ROWS, "c");
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(a.address()).pointer(b.address()).pointer(c.address());
            module.function("wgmma_probe_bf16").launch(stream, 1, 128, probeShared(), args);
        }
    }

    /**
     * c [64, 64] F32 = a [64, PROBE_K] x b [PROBE_K, 64], b row-major (N-major, as attention's V), its descriptor given
     * the leading and stride byte offsets {@code lbo} and {@code sbo}: the layout question P V's product depends on
     * (kernels/wgmma.cu; bench WgmmaLayoutProbe tries both assignments).
     */
    public void probeNMajor(Tensor a, Tensor b, Tensor c, int lbo, int sbo) {
        check(a, DType.BF16, PROBE_ROWS, PROBE_K, "a");
        check(b, DType.BF16, PROBE_K, PROBE_ROWS, "b");
        check(c, DType.F32, PROBE_ROWS, PROBE_ROWS, "c");
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(a.address()).pointer(b.address()).pointer(c.address()).i32(lbo).i32(sbo);
            module.function("wgmma_probe_nmajor_bf16").launch(stream, 1, 128, probeShared(), args);
        }
    }

    private static void check(Tensor t, DType dtype, long rows, long cols, String what) {
        if (t.dtype() != dtype || t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols || !t.isContiguous() || t.address() % 16 != 0) {
            throw new dev.jtune.engine.ShapeException("wgmma probe: " + what + " must be " + dtype + " [" + rows + ", " + cols
                    + "], contiguous and 16-byte aligned, got " + t.describe());
        }
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import static dev.jtune.engine.cuda.KernelParam.F32;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.PTR;

/**
 * Typed launch of kernels/flash_wgmma.cu: the fused attention forward on Hopper's warpgroup instructions (sm_90a) for
 * bf16 heads of {@link #HEAD_DIM}, unmasked, the same results as {@link FlashKernels}' mma.sync forward. A block is
 * two warpgroups sharing each key and value tile: two query heads of one key/value head when the heads per key/value
 * head are even ({@link #pairsHeads}), else 128 consecutive queries of one head.
 */
public final class FlashWgmmaKernels {
    /** The one head size compiled (Gemma 3's): O is 64 x 256 fp32 per warpgroup, 128 registers a thread. */
    public static final int HEAD_DIM = 256;
    /** Keys per tile (FLASH_WGMMA_KEYS): S is one m64n64 accumulator. */
    static final int KEYS = 64;
    /** Query rows per warpgroup, warpgroups per block. */
    static final int ROWS = 64;
    static final int GROUPS = 2;
    static final int THREADS = 128 * GROUPS;
    /**
     * Whether the N-major (V) descriptor's leading byte offset is the distance between core matrices along K, as
     * CUTLASS's canonical no-swizzle layout has it (WGMMA_NMAJOR_LBO_ALONG_K; bench WgmmaLayoutProbe checks it on the GPU).
     */
    static final boolean NMAJOR_LBO_ALONG_K = true;

    static final KernelSource SOURCE = KernelSource.builder("flash_wgmma.cu")
            .define(KernelSource.ARCH_SPECIFIC, 1)
            .define("FLASH_WGMMA_KEYS", KEYS)
            .define("WGMMA_NMAJOR_LBO_ALONG_K", NMAJOR_LBO_ALONG_K ? 1 : 0)
            .kernel("flash_wgmma_forward_bf16_256", PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private boolean raised;

    public FlashWgmmaKernels(KernelCompiler compiler, CudaStream stream) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
    }

    /** Whether the kernel takes this forward: bf16, head size {@link #HEAD_DIM}, no packed-row mask, on sm_90. */
    public static boolean supports(String arch, DType dtype, long headDim, boolean masked) {
        return "sm_90".equals(arch) && dtype == DType.BF16 && headDim == HEAD_DIM && !masked;
    }

    /** Two query heads of one key/value head per block (an even number of query heads per key/value head). */
    static boolean pairsHeads(long hq, long hkv) {
        return (hq / hkv) % 2 == 0;
    }

    /** Shared bytes: both warpgroups' query tiles, two key and two value tiles (double-buffered), bf16. */
    static int shared() {
        return 2 * (GROUPS * ROWS + 4 * KEYS) * HEAD_DIM;
    }

    /** Grid (x, y): (B Hq / 2, query tiles of 64) with paired heads, else (B Hq, query tiles of 128). */
    static long[] grid(long batch, long hq, long hkv, long t) {
        return pairsHeads(hq, hkv)
                ? new long[] {batch * hq / 2, Math.ceilDiv(t, ROWS)}
                : new long[] {batch * hq, Math.ceilDiv(t, (long) GROUPS * ROWS)};
    }

    /**
     * out [B, Hq, T, D] and lse [B, Hq, T] of causal attention (window 0: unbounded), the contract of
     * {@link FlashKernels#forward} without segments; q [B, Hq, T, D], k and v [B, Hkv, T, D] contiguous bf16.
     */
    public void forward(Tensor q, Tensor k, Tensor v, long window, double scale, Tensor out, Tensor lse) {
        if (q.dtype() != DType.BF16 || q.dim(3) != HEAD_DIM) {
            throw new UnsupportedOpException("wgmma attention: bf16 heads of " + HEAD_DIM + " only, got " + q.describe());
        }
        if (q.dim(2) > Integer.MAX_VALUE / 2) {
            throw new UnsupportedOpException("wgmma attention: sequence length " + q.dim(2) + " is too long for the kernel");
        }
        CudaFunction f = module.function("flash_wgmma_forward_bf16_256");
        synchronized (this) {
            if (!raised) {
                f.maxDynamicSharedMemory(shared());
                raised = true;
            }
        }
        long[] grid = grid(q.dim(0), q.dim(1), k.dim(1), q.dim(2));
        if (grid[0] == 0 || grid[1] == 0) {
            return;
        }
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(out.address()).pointer(lse.address())
                    .i32((int) q.dim(2)).i32((int) q.dim(1)).i32((int) k.dim(1)).i32((int) Math.min(window, Integer.MAX_VALUE))
                    .f32((float) scale);
            f.launch(stream, grid[0], grid[1], THREADS, 1, shared(), args);
        }
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import static dev.jtune.engine.cuda.KernelParam.F32;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelParam.TENSOR_MAP;

/**
 * Typed launches of kernels/flash_wgmma.cu: fused attention forward and backward on Hopper's warpgroup instructions
 * (sm_90a) for bf16 heads of {@link #HEAD_DIM}, also over packed rows, the contract of {@link FlashKernels}' mma.sync
 * kernels. A forward or dQ block is two warpgroups sharing each key and value tile: two query heads of one key/value
 * head when the heads per key/value head are even ({@link #pairsHeads}), else 128 consecutive queries of one head. A dK/dV block
 * owns 64 keys, its two warpgroups splitting the products so that S and dP are each computed once; long spans of
 * grouped heads get a block per query head and fp32 shares, by {@link FlashKernels}' rule and workspace. With
 * {@link #DQ_IN_DKV} (an experiment) the dK/dV block also adds dS K into an fp32 dQ, and no dQ kernel runs.
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
     * Whether an N-major operand's descriptor gives the distance between core matrices along K as its leading byte
     * offset, as CUTLASS's canonical no-swizzle layout has it (WGMMA_NMAJOR_LBO_ALONG_K). Bench WgmmaLayoutProbe checks
     * it on the GPU; {@code -Djtune.cuda.wgmmaNMajorLboAlongK=false} swaps the two offsets, so that one device call can
     * try both until the probe has settled it.
     */
    static final boolean NMAJOR_LBO_ALONG_K = Boolean.parseBoolean(System.getProperty("jtune.cuda.wgmmaNMajorLboAlongK", "true"));

    /**
     * Bytes of padding between the forward's key-tile core-matrix columns (FLASH_WGMMA_KEY_PAD, 0 or 64): with 64
     * each key row is copied 128 contiguous bytes at a time (half the L2 requests) without bank conflicts. An
     * experiment ({@code -Djtune.cuda.wgmmaKeyPad=64}): ncu found the forward bound by L2 throughput.
     */
    static final int KEY_PAD = Integer.getInteger("jtune.cuda.wgmmaKeyPad", 0);

    /**
     * The streamed tiles by TMA (128-byte swizzled boxes, one thread issuing them ahead on mbarriers) instead of every
     * thread's cp.async: the forward's and dQ's key and value tiles, dK/dV's query and output-gradient tiles. On by
     * default since the seventeenth session (the GPU suite green with it; 8K causal forward 0.29 ms, backward 1.69 on an
     * H100 against cp.async's 0.63 / 2.62); {@code -Djtune.cuda.wgmmaTma=false} goes back to cp.async.
     */
    static final boolean TMA = Boolean.parseBoolean(System.getProperty("jtune.cuda.wgmmaTma", "true"));

    /** Which TMA kernels run their two groups apart instead of in lockstep (FLASH_WGMMA_PINGPONG's bits). */
    enum PingPong {
        NONE(0), FORWARD(1), DKV(2), BOTH(3);

        final int mask;

        PingPong(int mask) {
            this.mask = mask;
        }

        /** {@code -Djtune.cuda.wgmmaPingPong}: none (or false), forward, dkv, both (or true). */
        static PingPong parse(String v) {
            return switch (v.toLowerCase(java.util.Locale.ROOT)) {
                case "none", "false" -> NONE;
                case "forward" -> FORWARD;
                case "dkv" -> DKV;
                case "both", "true" -> BOTH;
                default -> throw new IllegalArgumentException("-Djtune.cuda.wgmmaPingPong=" + v + ": none, forward, dkv or both");
            };
        }

        boolean forward() {
            return (mask & 1) != 0;
        }

        boolean dkv() {
            return (mask & 2) != 0;
        }
    }

    /**
     * The TMA forward's and dK/dV's two groups apart instead of in lockstep (FLASH_WGMMA_PINGPONG); ncu found the
     * lockstep dK/dV's groups waiting on each other at the P^T hand-over (SM issue 23%). Measured (seventeenth session,
     * H100, 8K causal): dK/dV apart 1.44 ms against 1.69 in lockstep, the forward apart 0.36 against 0.29; so dK/dV only
     * by default ({@code -Djtune.cuda.wgmmaPingPong=none|forward|dkv|both}).
     */
    static final PingPong PINGPONG = PingPong.parse(System.getProperty("jtune.cuda.wgmmaPingPong", "dkv"));

    /**
     * dQ computed by the dK/dV kernel from its own dS (FlashAttention-2's backward: five products per tile pair instead
     * of seven, the dQ kernel's S and dP not recomputed), added into an fp32 [B, Hq, T, D] workspace in L2 (vector
     * reductions, in no fixed order: dQ's last bits then vary between runs) and converted into gradQ once. Needs the TMA
     * dK/dV with its groups apart ({@link #TMA}, {@link #PINGPONG} dkv). An experiment, off by default
     * ({@code -Djtune.cuda.wgmmaDqInDkv=true}; ptxas: 238 registers, no spills). Measured (H100, twenty-third
     * session): correct (FlashWgmmaGpuTest in the suite, the goldens with the flag) but barely faster: backward at 8K causal 1.440 -> 1.379 ms,
     * 32K 20.63 -> 20.29, window 512 0.558 -> 0.507 (predicted 1.2 and 16.5): the fifth product and the reductions
     * (64 KB of fp32 adds per tile pair, ~34 GB a 32K layer) cost about what the dQ kernel did. Off: its dQ is not
     * reproducible bit for bit and its workspace adds 32 MiB at 8K for ~4%.
     */
    static final boolean DQ_IN_DKV = Boolean.parseBoolean(System.getProperty("jtune.cuda.wgmmaDqInDkv", "false"));

    /**
     * Whether a 128-byte swizzled N-major descriptor's leading offset is the distance between 64-column boxes along N
     * (CUTLASS's MN-major B128; WGMMA_SW128_NMAJOR_LBO_ALONG_N). The TMA N-major probe checks it;
     * {@code -Djtune.cuda.wgmmaSw128NMajorLboAlongN=false} swaps the two.
     */
    static final boolean SW128_NMAJOR_LBO_ALONG_N = Boolean.parseBoolean(System.getProperty("jtune.cuda.wgmmaSw128NMajorLboAlongN", "true"));

    static final KernelSource SOURCE = FlashKernels.layoutDefines(KernelSource.builder("flash_wgmma.cu"))
            .define(KernelSource.ARCH_SPECIFIC, 1)
            .define("FLASH_WGMMA_KEYS", KEYS)
            .define("WGMMA_NMAJOR_LBO_ALONG_K", NMAJOR_LBO_ALONG_K ? 1 : 0)
            .define("FLASH_WGMMA_KEY_PAD", KEY_PAD)
            .define("WGMMA_SW128_NMAJOR_LBO_ALONG_N", SW128_NMAJOR_LBO_ALONG_N ? 1 : 0)
            .define("FLASH_WGMMA_PINGPONG", PINGPONG.mask)
            // pointers (the masked kernels' segments and groups after them), then t, hq, hkv, window, scale and layout
            .kernel("flash_wgmma_forward_bf16_256", PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dq_bf16_256", PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dkv_bf16_256", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_forward_masked_bf16_256", PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_forward_tma_bf16_256", PTR, TENSOR_MAP, TENSOR_MAP, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_forward_tma_masked_bf16_256", PTR, TENSOR_MAP, TENSOR_MAP, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dq_tma_bf16_256", PTR, TENSOR_MAP, TENSOR_MAP, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dq_tma_masked_bf16_256",
                    PTR, TENSOR_MAP, TENSOR_MAP, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dkv_tma_bf16_256",
                    TENSOR_MAP, PTR, PTR, TENSOR_MAP, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dkv_dq_tma_bf16_256",
                    TENSOR_MAP, PTR, PTR, TENSOR_MAP, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dkv_dq_tma_masked_bf16_256",
                    TENSOR_MAP, PTR, PTR, TENSOR_MAP, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dkv_tma_masked_bf16_256",
                    TENSOR_MAP, PTR, PTR, TENSOR_MAP, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dq_masked_bf16_256", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .kernel("flash_wgmma_backward_dkv_masked_bf16_256",
                    PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final Set<String> raised = ConcurrentHashMap.newKeySet();

    public FlashWgmmaKernels(KernelCompiler compiler, CudaStream stream) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
    }

    /**
     * Whether the backward computes dQ in the dK/dV kernel ({@link #DQ_IN_DKV}) for q of this dtype and head size, on
     * a GPU where the kernels apply: the launcher's rule and the meta device's (which assumes sm_90).
     */
    public static boolean dqInDkv(DType dtype, long headDim) {
        return DQ_IN_DKV && dqInDkvAvailable() && dtype == DType.BF16 && headDim == HEAD_DIM;
    }

    /**
     * The fp32 dQ workspace [B, Hq, T, D] (zeroed) where {@link #dqInDkv} holds, else null, in the current scope: the
     * one rule of the launch and of the meta device's prediction.
     */
    public static Tensor dqWorkspace(Tensor q) {
        return dqWorkspace(q, dqInDkv(q.dtype(), q.dim(3)));
    }

    private static Tensor dqWorkspace(Tensor q, boolean dqInDkv) {
        return dqInDkv ? Tensor.zeros(q.shape(), DType.F32, q.device()) : null;
    }

    /** Whether this build's kernels can compute dQ in dK/dV (the TMA dK/dV with its groups apart), flag or not. */
    static boolean dqInDkvAvailable() {
        return TMA && PINGPONG.dkv();
    }

    /** Whether the kernels take this attention: bf16, head size {@link #HEAD_DIM}, on sm_90. */
    public static boolean supports(String arch, DType dtype, long headDim) {
        return "sm_90".equals(arch) && dtype == DType.BF16 && headDim == HEAD_DIM;
    }

    /** Two query heads of one key/value head per block (an even number of query heads per key/value head). */
    static boolean pairsHeads(long hq, long hkv) {
        return (hq / hkv) % 2 == 0;
    }

    /**
     * Shared bytes of the forward: both warpgroups' query tiles, two key tiles (each 8-column core group padded by
     * {@link #KEY_PAD}) and two value tiles (double-buffered), bf16.
     */
    static int shared() {
        return 2 * (GROUPS * ROWS + 2 * KEYS) * HEAD_DIM + 2 * (HEAD_DIM / 8) * (KEYS / 8 * 128 + KEY_PAD);
    }

    /**
     * Shared bytes of the TMA forward: both warpgroups' query tiles, 1 KiB of slack (swizzled boxes start 1024-byte
     * aligned), two key and two value tiles, a full barrier per buffer (and with {@link #PINGPONG} on the forward an
     * empty one).
     */
    static int tmaShared() {
        return tmaShared(PINGPONG.forward());
    }

    static int tmaShared(boolean pingPong) {
        return 2 * (GROUPS * ROWS + 4 * KEYS) * HEAD_DIM + 1024 + 2 * 8 + (pingPong ? 2 * 8 : 0);
    }

    /** Shared bytes of dQ: both warpgroups' query and output-gradient tiles, two key tiles and a value tile, bf16. */
    static int dqShared() {
        return 2 * (2 * GROUPS * ROWS + 3 * KEYS) * HEAD_DIM;
    }

    /** Shared bytes of the TMA dQ: dQ's tiles, 1 KiB to align the swizzled boxes, three full barriers. */
    static int tmaDqShared() {
        return dqShared() + 1024 + 3 * 8;
    }

    /**
     * Shared bytes of dK/dV: the key and value tiles, two query and two output-gradient tiles (bf16), the P^T hand-over
     * (fp32, keys x queries) and two buffers of the queries' lse and delta (fp32).
     */
    static int dkvShared() {
        return 2 * (2 * KEYS + 4 * ROWS) * HEAD_DIM + 4 * KEYS * ROWS + 4 * 4 * ROWS;
    }

    /**
     * Shared bytes of the TMA dK/dV: dK/dV's, 1 KiB to align the swizzled boxes, two full barriers; with
     * {@link #PINGPONG} on dK/dV a second P^T hand-over buffer.
     */
    static int tmaDkvShared() {
        return tmaDkvShared(PINGPONG.dkv());
    }

    static int tmaDkvShared(boolean pingPong) {
        return dkvShared() + 1024 + 2 * 8 + (pingPong ? 4 * KEYS * ROWS : 0);
    }

    /** Grid (x, y): (B Hq / 2, query tiles of 64) with paired heads, else (B Hq, query tiles of 128). */
    static long[] grid(long batch, long hq, long hkv, long t) {
        return pairsHeads(hq, hkv)
                ? new long[] {batch * hq / 2, Math.ceilDiv(t, ROWS)}
                : new long[] {batch * hq, Math.ceilDiv(t, (long) GROUPS * ROWS)};
    }

    /**
     * out [B, Hq, T, D] and lse [B, Hq, T] of causal attention (window 0: unbounded), the contract of
     * {@link FlashKernels#forward}; q [B, Hq, T, D], k and v [B, Hkv, T, D] bf16, each operand heads-major or
     * tokens-major ({@link FlashKernels.Operand}); segments and groups I32 [B, T] or null (packed rows).
     */
    public void forward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, long window, double scale, Tensor out, Tensor lse) {
        check(q);
        int layout = FlashKernels.layout(q, k, v, out);
        long[] grid = grid(q.dim(0), q.dim(1), k.dim(1), q.dim(2));
        if (grid[0] == 0 || grid[1] == 0) {
            return;
        }
        try (KernelArgs args = new KernelArgs()) {
            if (TMA) { // k and v as [B Hkv, T, D] stacks of 64 x 64 swizzled boxes
                args.pointer(q.address()).tensorMap(tiles(k)).tensorMap(tiles(v)).pointer(out.address()).pointer(lse.address());
            } else {
                args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(out.address()).pointer(lse.address());
            }
            FlashKernels.mask(args, segments, groups);
            FlashKernels.shape(args, q, k, window, scale, layout);
            launch(name(TMA ? "flash_wgmma_forward_tma" : "flash_wgmma_forward", segments, groups), grid[0], grid[1],
                    TMA ? tmaShared() : shared(), args);
        }
    }

    /**
     * gradQ, gradK, gradV of {@link #forward}, given its lse and delta = rowsum(gradOut * out) [B, Hq, T] fp32: the
     * contract of {@link FlashKernels#backward}. {@code flash} sums the per-query-head fp32 shares of
     * long spans of grouped heads ({@link FlashKernels#splitsKeyValueHeads}).
     */
    public void backward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse, Tensor delta,
                         long window, double scale, Tensor gradQ, Tensor gradK, Tensor gradV, FlashKernels flash) {
        backward(q, k, v, segments, groups, gradOut, lse, delta, window, scale, gradQ, gradK, gradV, flash, dqInDkv(q.dtype(), q.dim(3)));
    }

    /**
     * The same, dQ from the dK/dV kernel or not as {@code dqInDkv} says (tests run both paths in one JVM): it needs the
     * TMA dK/dV with its groups apart.
     */
    void backward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse, Tensor delta,
                  long window, double scale, Tensor gradQ, Tensor gradK, Tensor gradV, FlashKernels flash, boolean dqInDkv) {
        check(q);
        if (dqInDkv && !dqInDkvAvailable()) {
            throw new UnsupportedOpException("wgmma attention: dQ in dK/dV needs the TMA kernels with dK/dV's groups apart"
                    + " (-Djtune.cuda.wgmmaTma=true, -Djtune.cuda.wgmmaPingPong=dkv or both)");
        }
        int layout = FlashKernels.layout(q, k, v, gradOut, gradQ, gradK, gradV);
        long[] grid = grid(q.dim(0), q.dim(1), k.dim(1), q.dim(2));
        if (grid[0] == 0 || grid[1] == 0) {
            return;
        }
        if (!dqInDkv) {
            dq(q, k, v, segments, groups, gradOut, lse, delta, window, scale, gradQ, layout, grid);
        }
        boolean split = FlashKernels.splitsKeyValueHeads(q, k, window);
        try (Scope shares = FlashKernels.openWorkspace()) {
            Tensor[] share = FlashKernels.backwardWorkspace(q, k, window);
            Tensor dqa = dqWorkspace(q, dqInDkv);
            try (KernelArgs args = new KernelArgs()) {
                if (TMA) { // q and gradOut as [B Hq, T, D] stacks of 64 x 64 swizzled boxes
                    args.tensorMap(tiles(q)).pointer(k.address()).pointer(v.address()).tensorMap(tiles(gradOut));
                } else {
                    args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(gradOut.address());
                }
                args.pointer(lse.address()).pointer(delta.address()).pointer(gradK.address()).pointer(gradV.address())
                        .pointer(share[0] == null ? 0L : share[0].address()).pointer(share[1] == null ? 0L : share[1].address());
                if (dqa != null) {
                    args.pointer(dqa.address());
                }
                FlashKernels.mask(args, segments, groups);
                FlashKernels.shape(args, q, k, window, scale, layout);
                long units = split ? q.dim(0) * q.dim(1) : k.dim(0) * k.dim(1);
                String kernel = dqa != null ? "flash_wgmma_backward_dkv_dq_tma" : TMA ? "flash_wgmma_backward_dkv_tma" : "flash_wgmma_backward_dkv";
                launch(name(kernel, segments, groups), units, Math.ceilDiv(q.dim(2), KEYS), TMA ? tmaDkvShared() : dkvShared(), args);
            }
            if (split) {
                long group = q.dim(1) / k.dim(1);
                flash.reduceHeads(share[0], gradK, group);
                flash.reduceHeads(share[1], gradV, group);
            }
            if (dqa != null) {
                Ops.copyInto(dqa, gradQ); // rounded to bf16 once, into gradQ's layout
            }
        }
    }

    /** The dQ kernel (blocks as the forward's). */
    private void dq(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse, Tensor delta,
                    long window, double scale, Tensor gradQ, int layout, long[] grid) {
        try (KernelArgs args = new KernelArgs()) {
            if (TMA) {
                args.pointer(q.address()).tensorMap(tiles(k)).tensorMap(tiles(v));
            } else {
                args.pointer(q.address()).pointer(k.address()).pointer(v.address());
            }
            args.pointer(gradOut.address()).pointer(lse.address()).pointer(delta.address()).pointer(gradQ.address());
            FlashKernels.mask(args, segments, groups);
            FlashKernels.shape(args, q, k, window, scale, layout);
            launch(name(TMA ? "flash_wgmma_backward_dq_tma" : "flash_wgmma_backward_dq", segments, groups), grid[0], grid[1],
                    TMA ? tmaDqShared() : dqShared(), args);
        }
    }

    private static void check(Tensor q) {
        if (q.dtype() != DType.BF16 || q.dim(3) != HEAD_DIM) {
            throw new UnsupportedOpException("wgmma attention: bf16 heads of " + HEAD_DIM + " only, got " + q.describe());
        }
        if (q.dim(2) > Integer.MAX_VALUE / 2) {
            throw new UnsupportedOpException("wgmma attention: sequence length " + q.dim(2) + " is too long for the kernel");
        }
    }

    /**
     * The TMA map of a [B, H, T, D] tensor, heads-major or tokens-major (keys, values, queries, output gradients): per
     * head, boxes of 64 rows x 64 dims with the 128-byte swizzle.
     */
    private static TensorMap tiles(Tensor kv) {
        return TensorMap.ofHeads(kv, KEYS, 64, TensorMap.Swizzle.B128);
    }

    /** flash.cu's naming (_masked for packed rows) with this file's element type and head size. */
    private static String name(String kernel, Tensor segments, Tensor groups) {
        return FlashKernels.masked(kernel, segments, groups) + "_bf16_" + HEAD_DIM;
    }

    /** Launches a kernel on grid (x, y) of THREADS-thread blocks, its dynamic shared memory limit raised on first use. */
    private void launch(String kernel, long x, long y, int shared, KernelArgs args) {
        CudaFunction f = module.function(kernel);
        if (raised.add(kernel)) {
            f.maxDynamicSharedMemory(shared);
        }
        f.launch(stream, x, y, THREADS, 1, shared, args);
    }
}

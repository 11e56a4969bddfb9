package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Typed launches of kernels/flash.cu: fused causal attention, forward in one kernel and backward in two (dQ; dK
 * with dV). Blocks of 128 threads own 64 rows (queries, or keys for dK/dV); the tile sizes per head size are the
 * kernel's (see JT_FLASH_SIZES there), and the shared memory they need is raised above 48 KiB once per kernel.
 */
public final class FlashKernels {
    private static final int THREADS = 128;
    private static final int ROWS = 64;
    private static final int PAD = 8;
    /**
     * Visible keys per query from which grouped heads get a dK/dV block each (H100, 4 query heads / 1 kv head of 256,
     * backward at 8192 tokens: causal 2.89 ms split vs 4.29 ms not; window 512 0.67 ms split vs 0.47 ms not).
     */
    private static final long SPLIT_SPAN = 2048;

    /** Keys per tile (forward, dQ), and columns and queries per tile of the dK/dV kernel, per head size. */
    private record Tiles(int forwardKeys, int dqKeys, int dkvColumns, int dkvQueries) {
    }

    private static final Map<Integer, Tiles> TILES = Map.of(
            32, new Tiles(64, 64, 32, 64),
            64, new Tiles(64, 64, 64, 64),
            128, new Tiles(64, 64, 128, 32),
            256, new Tiles(64, 32, 128, 32));

    private final CudaModule module;
    private final CudaStream stream;
    private final Set<String> raised = ConcurrentHashMap.newKeySet();

    public FlashKernels(KernelCompiler compiler, CudaStream stream) {
        this.module = compiler.module("flash.cu");
        this.stream = stream;
    }

    public static boolean supports(DType dtype, long headDim) {
        return (dtype == DType.BF16 || dtype == DType.F16) && TILES.containsKey((int) headDim);
    }

    public void forward(Tensor q, Tensor k, Tensor v, long window, double scale, Tensor out, Tensor lse) {
        Tiles tiles = tiles(q);
        int d = (int) q.dim(3);
        int shared = q.dtype().byteSize() * (ROWS + 2 * tiles.forwardKeys()) * (d + PAD);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(out.address()).pointer(lse.address());
            shape(args, q, k, window, scale);
            launch("flash_forward", q, q.dim(0) * q.dim(1), shared, args);
        }
    }

    public void backward(Tensor q, Tensor k, Tensor v, Tensor gradOut, Tensor lse, Tensor delta, long window, double scale,
                  Tensor gradQ, Tensor gradK, Tensor gradV) {
        Tiles tiles = tiles(q);
        int d = (int) q.dim(3);
        int elem = q.dtype().byteSize();
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(gradOut.address())
                    .pointer(lse.address()).pointer(delta.address()).pointer(gradQ.address());
            shape(args, q, k, window, scale);
            launch("flash_backward_dq", q, q.dim(0) * q.dim(1), elem * (2 * ROWS + 2 * tiles.dqKeys()) * (d + PAD), args);
        }
        // long spans of grouped heads: one dK/dV block per query head, whose fp32 shares one more kernel sums per
        // key/value head; otherwise one block per key/value head
        long group = q.dim(1) / k.dim(1);
        boolean split = splitsKeyValueHeads(q, k, window);
        try (Scope shares = openWorkspace()) {
            Tensor[] share = backwardWorkspace(q, k, window);
            Tensor pk = share[0];
            Tensor pv = share[1];
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(gradOut.address())
                        .pointer(lse.address()).pointer(delta.address()).pointer(gradK.address()).pointer(gradV.address())
                        .pointer(pk == null ? 0L : pk.address()).pointer(pv == null ? 0L : pv.address());
                shape(args, q, k, window, scale);
                int shared = elem * (2 * ROWS + 2 * tiles.dkvQueries()) * (d + PAD) + 2 * Float.BYTES * tiles.dkvQueries();
                launch("flash_backward_dkv", q, (split ? q.dim(0) * q.dim(1) : k.dim(0) * k.dim(1)) * (d / tiles.dkvColumns()), shared, args);
            }
            if (split) {
                reduceHeads(pk, gradK, group);
                reduceHeads(pv, gradV, group);
            }
        }
    }

    /**
     * Whether {@link #backward} gives every query head its own dK/dV block (grouped heads over a span of at least
     * SPLIT_SPAN visible keys), whose fp32 shares one more kernel then sums per key/value head.
     */
    public static boolean splitsKeyValueHeads(Tensor q, Tensor k, long window) {
        long group = q.dim(1) / k.dim(1);
        long span = window > 0 ? Math.min(window, q.dim(2)) : q.dim(2);
        return group > 1 && span >= SPLIT_SPAN;
    }

    /** The scope {@link #backward}'s workspace lives in (category WORKSPACE). */
    public static Scope openWorkspace() {
        return Scope.open("flash dK/dV shares", MemoryCategory.WORKSPACE);
    }

    /**
     * {@link #backward}'s workspace, allocated in the current scope: the fp32 dK and dV shares [B, Hq, T, D] when it
     * {@linkplain #splitsKeyValueHeads splits key/value heads}, else none ({null, null}). The one rule of this launch
     * and of the meta backend's prediction.
     */
    public static Tensor[] backwardWorkspace(Tensor q, Tensor k, long window) {
        if (!splitsKeyValueHeads(q, k, window)) {
            return new Tensor[2];
        }
        return new Tensor[] {Tensor.empty(q.shape(), DType.F32, q.device()), Tensor.empty(q.shape(), DType.F32, q.device())};
    }

    /** out [B, Hkv, T, D] = the sum over each key/value head's group of query heads' shares [B, Hq, T, D]. */
    private void reduceHeads(Tensor shares, Tensor out, long group) {
        long rows = out.dim(0) * out.dim(1);
        long n = out.dim(2) * out.dim(3);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(shares.address()).pointer(out.address()).i64(rows).i32((int) group).i64(n);
            long blocks = Math.max(1, Math.ceilDiv(rows * n / 4, 256));
            module.function("flash_reduce_heads_" + ElementwiseKernels.suffix(out.dtype())).launch(stream, blocks, 256, 0, args);
        }
    }

    private static Tiles tiles(Tensor q) {
        if (!supports(q.dtype(), q.dim(3))) {
            throw new UnsupportedOpException("fused attention: no cuda kernel for " + q.dtype() + " heads of size " + q.dim(3)
                    + " (BF16 or F16 with head size 32, 64, 128 or 256)");
        }
        if (q.dim(2) > Integer.MAX_VALUE / 2) {
            throw new UnsupportedOpException("fused attention: sequence length " + q.dim(2) + " is too long for the cuda kernel");
        }
        return TILES.get((int) q.dim(3));
    }

    private static void shape(KernelArgs args, Tensor q, Tensor k, long window, double scale) {
        args.i32((int) q.dim(2)).i32((int) q.dim(1)).i32((int) k.dim(1)).i32((int) Math.min(window, Integer.MAX_VALUE)).f32((float) scale);
    }

    /** Grid (blocks per row tile, tiles of 64 rows); the kernel's shared memory limit raised on first use. */
    private void launch(String kernel, Tensor q, long blocks, int shared, KernelArgs args) {
        String name = kernel + "_" + ElementwiseKernels.suffix(q.dtype()) + "_" + q.dim(3);
        CudaFunction f = module.function(name);
        if (shared > 48 * 1024 && raised.add(name)) {
            f.maxDynamicSharedMemory(shared);
        }
        long tiles = Math.ceilDiv(q.dim(2), ROWS);
        if (blocks > 0 && tiles > 0) {
            f.launch(stream, blocks, tiles, THREADS, 1, shared, args);
        }
    }
}

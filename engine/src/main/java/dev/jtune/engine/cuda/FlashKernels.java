package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

import static dev.jtune.engine.cuda.KernelParam.F32;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/flash.cu: fused causal attention, forward in one kernel and backward in two (dQ; dK
 * with dV), each also over packed rows (the _masked kernels, with segments and groups). Blocks of {@link #WARPS} warps own {@link #ROWS} rows (queries, or keys for dK/dV); the tile sizes per
 * head size are declared here and compiled into the kernels as defines, and the shared memory they need is raised
 * above 48 KiB once per kernel.
 */
public final class FlashKernels {
    /** Warps per block, each owning 16 rows of a tile (FLASH_WARPS). */
    static final int WARPS = 4;
    static final int THREADS = WARPS * 32;
    static final int ROWS = WARPS * 16;
    /** Elements of padding after each row of a shared tile, against bank conflicts (FLASH_PAD). */
    static final int PAD = 8;
    /** Shared memory a kernel gets without opting in. */
    static final int DEFAULT_SHARED = 48 * 1024;
    /**
     * Visible keys per query from which grouped heads get a dK/dV block each (H100, 4 query heads / 1 kv head of 256,
     * backward at 8192 tokens: causal 2.89 ms split vs 4.29 ms not; window 512 0.67 ms split vs 0.47 ms not).
     */
    private static final long SPLIT_SPAN = 2048;
    /**
     * Sequence length from which grouped heads share one dK/dV block again, however long their span: the unsplit grid
     * then has blocks to spare, and the split's two fp32 shares [B, Hq, T, D] are large (256 MiB at 32K tokens of 4
     * heads of 256). Measured on an H100 (wgmma, 4 query heads / 1 kv head, causal backward): 8K 1.436 ms split vs
     * 2.325 not; 16K 5.410 vs 5.357; 32K 20.99 vs 21.10, with a 0.375 GiB peak instead of 0.563.
     * {@code -Djtune.cuda.dkvSplitUntil=N} moves it.
     */
    private static final long SPLIT_UNTIL = Long.getLong("jtune.cuda.dkvSplitUntil", 16384);

    /**
     * Keys per tile (forward, dQ), and columns and queries per tile of the dK/dV kernel, for one head size. The fp32
     * accumulators of a warp's 16 rows must fit in registers (forward D / 2 + BN / 2 floats a thread; dQ D / 2 + BN;
     * dK/dV C + BQ).
     */
    record Tiles(int forwardKeys, int dqKeys, int dkvColumns, int dkvQueries) {
    }

    /** The supported head sizes and their tiles; flash.cu instantiates its kernels for exactly these head sizes. */
    static final SortedMap<Integer, Tiles> TILES = Collections.unmodifiableSortedMap(new TreeMap<>(java.util.Map.of(
            32, new Tiles(64, 64, 32, 64),
            64, new Tiles(64, 64, 64, 64),
            128, new Tiles(64, 64, 128, 32),
            256, new Tiles(64, 32, 128, 32))));
    static final List<String> TYPES = List.of("bf16", "f16");

    /**
     * The operands a launch's {@code layout} argument marks tokens-major (kernels/attention.cuh's FLASH_LAYOUT_*): [B,
     * T, H, D] memory viewed as [B, H, T, D], the layout the projections write and o_proj reads, so that no transposing
     * copy is made on either side; unmarked operands are contiguous [B, H, T, D] (heads-major). A gradient has its
     * input's layout; O is the forward's output and the backward's output gradient.
     */
    public enum Operand {
        Q(1), K(2), V(4), O(8);

        final int bit;

        Operand(int bit) {
            this.bit = bit;
        }
    }

    /** kernels/flash.cu: block shape, padding, the tiles of every head size (FLASH_KEYS_D, ...), the kernels' parameters. */
    static final KernelSource SOURCE = source();

    /** The layout bits' defines, for each source that includes attention.cuh. */
    static KernelSource.Builder layoutDefines(KernelSource.Builder b) {
        for (Operand o : Operand.values()) {
            b.define("FLASH_LAYOUT_" + o.name(), o.bit);
        }
        return b;
    }

    private static KernelSource source() {
        KernelSource.Builder b = layoutDefines(KernelSource.builder("flash.cu")).define("FLASH_WARPS", WARPS).define("FLASH_PAD", PAD);
        TILES.forEach((d, t) -> {
            b.define("FLASH_KEYS_" + d, t.forwardKeys())
                    .define("FLASH_DQ_KEYS_" + d, t.dqKeys())
                    .define("FLASH_DKV_COLUMNS_" + d, t.dkvColumns())
                    .define("FLASH_DKV_QUERIES_" + d, t.dkvQueries());
            // pointers, then t, hq, hkv, window, scale and layout; the masked kernels' segments and groups follow the pointers
            b.kernels(names("flash_forward_%s_" + d, TYPES), PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32);
            b.kernels(names("flash_backward_dq_%s_" + d, TYPES), PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32);
            b.kernels(names("flash_backward_dkv_%s_" + d, TYPES),
                    PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32);
            b.kernels(names("flash_forward_masked_%s_" + d, TYPES), PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32);
            b.kernels(names("flash_backward_dq_masked_%s_" + d, TYPES),
                    PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32);
            b.kernels(names("flash_backward_dkv_masked_%s_" + d, TYPES),
                    PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32, I32);
        });
        return b.kernels(names("flash_reduce_heads_%s", TYPES), PTR, PTR, I64, I32, I64, I32, I64).build();
    }

    private final CudaModule module;
    private final CudaStream stream;
    private final Set<String> raised = ConcurrentHashMap.newKeySet();

    public FlashKernels(KernelCompiler compiler, CudaStream stream) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
    }

    public static boolean supports(DType dtype, long headDim) {
        return (dtype == DType.BF16 || dtype == DType.F16) && TILES.containsKey((int) headDim);
    }

    public void forward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, long window, double scale, Tensor out,
                        Tensor lse) {
        Tiles tiles = tiles(q);
        int d = (int) q.dim(3);
        int shared = forwardShared(q.dtype().byteSize(), d, tiles);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(out.address()).pointer(lse.address());
            mask(args, segments, groups);
            shape(args, q, k, window, scale, layout(q, k, v, out));
            launch(masked("flash_forward", segments, groups), q, q.dim(0) * q.dim(1), shared, args);
        }
    }

    public void backward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse, Tensor delta,
                         long window, double scale, Tensor gradQ, Tensor gradK, Tensor gradV) {
        Tiles tiles = tiles(q);
        int d = (int) q.dim(3);
        int elem = q.dtype().byteSize();
        int layout = layout(q, k, v, gradOut, gradQ, gradK, gradV);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(q.address()).pointer(k.address()).pointer(v.address()).pointer(gradOut.address())
                    .pointer(lse.address()).pointer(delta.address()).pointer(gradQ.address());
            mask(args, segments, groups);
            shape(args, q, k, window, scale, layout);
            launch(masked("flash_backward_dq", segments, groups), q, q.dim(0) * q.dim(1), dqShared(elem, d, tiles), args);
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
                mask(args, segments, groups);
                shape(args, q, k, window, scale, layout);
                long heads = split ? q.dim(0) * q.dim(1) : k.dim(0) * k.dim(1);
                launch(masked("flash_backward_dkv", segments, groups), q, heads * (d / tiles.dkvColumns()), dkvShared(elem, d, tiles), args);
            }
            if (split) {
                reduceHeads(pk, gradK, group);
                reduceHeads(pv, gradV, group);
            }
        }
    }

    /** Shared bytes of the forward kernel: the query tile and a key and a value tile, padded rows. */
    static int forwardShared(int elementBytes, int d, Tiles t) {
        return elementBytes * (ROWS + 2 * t.forwardKeys()) * (d + PAD);
    }

    /** Shared bytes of the dQ kernel: query and output-gradient tiles, a key and a value tile. */
    static int dqShared(int elementBytes, int d, Tiles t) {
        return elementBytes * (2 * ROWS + 2 * t.dqKeys()) * (d + PAD);
    }

    /** Shared bytes of the dK/dV kernel: key, value, query and output-gradient tiles, then the queries' fp32 lse and delta. */
    static int dkvShared(int elementBytes, int d, Tiles t) {
        return elementBytes * (2 * ROWS + 2 * t.dkvQueries()) * (d + PAD) + 2 * Float.BYTES * t.dkvQueries();
    }

    /**
     * Whether grouped heads get a dK/dV block each (their fp32 shares summed after): from {@link #SPLIT_SPAN} visible
     * keys per query ({@code window} 0: causal over all {@code t}).
     */
    static boolean splitHeads(long group, long window, long t) {
        long span = window > 0 ? Math.min(window, t) : t;
        return group > 1 && span >= SPLIT_SPAN && t < SPLIT_UNTIL;
    }

    /**
     * Whether {@link #backward} gives every query head its own dK/dV block (grouped heads over a span of at least
     * SPLIT_SPAN visible keys), whose fp32 shares one more kernel then sums per key/value head.
     */
    public static boolean splitsKeyValueHeads(Tensor q, Tensor k, long window) {
        return splitHeads(q.dim(1) / k.dim(1), window, q.dim(2));
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

    /**
     * out [B, Hkv, T, D] (heads-major or tokens-major) = the sum over each key/value head's group of query heads' shares
     * [B, Hq, T, D] (contiguous).
     */
    void reduceHeads(Tensor shares, Tensor out, long group) {
        long rows = out.dim(0) * out.dim(1);
        long n = out.dim(2) * out.dim(3);
        int tokens = out.isContiguous() ? 0 : (int) out.dim(1);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(shares.address()).pointer(out.address()).i64(rows).i32((int) group).i64(n).i32(tokens).i64(out.dim(3));
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

    /** The masked kernel's name with segments (packed rows), else the unmasked one's. */
    static String masked(String kernel, Tensor segments, Tensor groups) {
        if (segments == null && groups != null) {
            throw new IllegalArgumentException("fused attention: groups need segments");
        }
        return segments == null ? kernel : kernel + "_masked";
    }

    /** The masked kernels' segments and groups (I32 [B, T] contiguous; groups may be null); nothing unmasked. */
    static void mask(KernelArgs args, Tensor segments, Tensor groups) {
        if (segments != null) {
            args.pointer(segments.address()).pointer(groups == null ? 0L : groups.address());
        }
    }

    /**
     * Whether {@code t} [B, H, T, D] is tokens-major: not contiguous, and laid out as a contiguous [B, T, H, D] (dims of
     * size 1 aside, whose strides address nothing).
     */
    public static boolean tokensMajor(Tensor t) {
        if (t.rank() != 4 || t.isContiguous()) {
            return false;
        }
        long d = t.dim(3);
        long[] expected = {t.dim(2) * t.dim(1) * d, d, t.dim(1) * d, 1};
        for (int i = 0; i < 4; i++) {
            if (t.dim(i) != 1 && t.stride(i) != expected[i]) {
                return false;
            }
        }
        return true;
    }

    /**
     * The launch's {@code layout} argument for q, k, v and o (the output, or the output gradient) and, in the backward,
     * the gradients of q, k and v, each of which must have its input's layout; every operand is heads-major or
     * tokens-major.
     */
    static int layout(Tensor q, Tensor k, Tensor v, Tensor o, Tensor... grads) {
        Tensor[] operands = {q, k, v, o};
        int bits = 0;
        for (Operand which : Operand.values()) {
            Tensor t = operands[which.ordinal()];
            boolean tokens = tokensMajor(t);
            if (!tokens && !t.isContiguous()) {
                throw new ShapeException("fused attention: " + which + " must be contiguous [B, H, T, D] or a [B, T, H, D] tensor viewed as"
                        + " [B, H, T, D], got " + t.describe() + " with strides " + Arrays.toString(t.strides()));
            }
            Tensor grad = which.ordinal() < grads.length ? grads[which.ordinal()] : null;
            if (grad != null && tokens != tokensMajor(grad)) {
                throw new ShapeException("fused attention: the gradient of " + which + " must have its layout, got " + grad.describe()
                        + " with strides " + Arrays.toString(grad.strides()));
            }
            bits |= tokens ? which.bit : 0;
        }
        return bits;
    }

    /** The kernels' trailing arguments: t, hq, hkv, window, scale and the {@link #layout} bits. */
    static void shape(KernelArgs args, Tensor q, Tensor k, long window, double scale, int layout) {
        args.i32((int) q.dim(2)).i32((int) q.dim(1)).i32((int) k.dim(1)).i32((int) Math.min(window, Integer.MAX_VALUE)).f32((float) scale)
                .i32(layout);
    }

    /** Grid (blocks per row tile, tiles of 64 rows); the kernel's shared memory limit raised on first use. */
    private void launch(String kernel, Tensor q, long blocks, int shared, KernelArgs args) {
        String name = kernel + "_" + ElementwiseKernels.suffix(q.dtype()) + "_" + q.dim(3);
        CudaFunction f = module.function(name);
        if (shared > DEFAULT_SHARED && raised.add(name)) {
            f.maxDynamicSharedMemory(shared);
        }
        long tiles = Math.ceilDiv(q.dim(2), ROWS);
        if (blocks > 0 && tiles > 0) {
            f.launch(stream, blocks, tiles, THREADS, 1, shared, args);
        }
    }
}

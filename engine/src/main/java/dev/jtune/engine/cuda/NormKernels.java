package dev.jtune.engine.cuda;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;

import java.util.List;

import static dev.jtune.engine.cuda.KernelParam.F64;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.VEC;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/norm.cu: RMSNorm forward and backward, plain or with the residual stream's add fused
 * (forward: sum = x + h written and normalised in one pass; backward: the sum's other gradient added before the
 * rounding). The weight gradient goes through per-row-slot partial sums (in the block's shared memory when they fit,
 * added into one line a block of a scratch buffer; else the scratch's own lines) that a second kernel adds in a fixed
 * order (deterministic).
 */
public final class NormKernels {
    /** Upper bound of the weight-gradient scratch; the backward's grid shrinks to stay below it. */
    static final long PARTIAL_BYTES = 32L << 20;
    /** A block's row slots' lines stay in its shared memory up to this size (the default limit: no opt-in needed). */
    static final int SHARED_SLOT_BYTES = 48 << 10;
    /** A weight-reduce block: columns (threads in x) and slot rows (threads in y); norm.cu's part[ROWS][COLUMNS + 1]. */
    static final int REDUCE_COLUMNS = 32;
    static final int REDUCE_ROWS = 32;
    /**
     * The fused norm and rotation, on rows of at most 32 chunks: the heads of a row whose chunks a lane loads together
     * (four: a Gemma q row whole, a k row with three idle). Each is 16 bytes of registers a lane, twice in the backward.
     */
    static final int NORM_ROPE_GROUP = 4;
    /**
     * The plain norms' rows under the warp-a-row layout ({@link RowLaunch}: up to 1,024 elements) of at most 32 x this
     * many 16-byte chunks are held in registers by the {@code _held} kernels, loaded together, instead of read twice
     * (Gemma 270M's 640 in bf16: 3 chunks a lane; ptxas 60-96 registers, no spills, the other kernels unchanged).
     */
    static final int NORM_HELD = 3;

    /** {@code -Djtune.cuda.normHeld=false}: the two-pass kernels for every row (to time one against the other). */
    static final boolean HELD_NORMS = Boolean.parseBoolean(System.getProperty("jtune.cuda.normHeld", "true"));

    /** The plain norms' kernel name suffixes: per element, vectorised, vectorised with the row held ({@link #heldNormRows}). */
    private static final List<String> NORM_VEC = List.of("", "_vec", "_vec_held");
    /** The fused norm and rotation's largest block: a warp a row, {@link RowLaunch#WARP_ROWS_PER_BLOCK} warps. */
    static final int NORM_ROPE_THREADS = 32 * RowLaunch.WARP_ROWS_PER_BLOCK;
    /**
     * Blocks an SM of the fused norm and rotation's 16-bit forward (its launch bounds: 80 registers, no spills) and the
     * cap of its grid on held rows ({@link #heldRows}), whose warps then take several rows each, the next one's loads in
     * flight while this one's angles are computed, and compute the block's inverse frequencies once.
     */
    static final int NORM_ROPE_BLOCKS = 3;

    /** kernels/norm.cu: the weight-reduce block shape and the kernels' parameters. */
    static final KernelSource SOURCE = KernelSource.builder("norm.cu")
            .define("NORM_REDUCE_COLUMNS", REDUCE_COLUMNS)
            .define("NORM_REDUCE_ROWS", REDUCE_ROWS)
            .define("NORM_ROPE_GROUP", NORM_ROPE_GROUP)
            .define("NORM_HELD", NORM_HELD)
            .define("NORM_ROPE_THREADS", NORM_ROPE_THREADS)
            .define("NORM_ROPE_BLOCKS", NORM_ROPE_BLOCKS)
            .kernels(names("rms_norm_%s_%s%s", FLOATS, FLOATS, NORM_VEC), PTR, PTR, PTR, PTR, I64, I64, F64, I32)
            .kernels(names("rms_norm_backward_%s_%s%s", FLOATS, FLOATS, NORM_VEC), PTR, PTR, PTR, PTR, PTR, PTR, I64, I64, I32, I32)
            .kernels(names("rms_norm_residual_%s_%s%s", FLOATS, FLOATS, NORM_VEC), PTR, PTR, PTR, PTR, PTR, PTR, I64, I64, F64, I32)
            .kernels(names("rms_norm_residual_backward_%s_%s%s", FLOATS, FLOATS, NORM_VEC), PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, I64, I32, I32)
            .kernels(names("rms_norm_weight_reduce_%s", List.of("f32", "f64")), PTR, PTR, I64, I64, I64)
            .kernels(names("rms_norm_rope_%s_%s%s", FLOATS, FLOATS, VEC), PTR, PTR, PTR, PTR, PTR, I64, I64, I64, I64,
                    I64, I64, I64, I64, I64, I64, F64, I32, F64, F64, I32)
            .kernels(names("rms_norm_rope_backward_%s_%s%s", FLOATS, FLOATS, VEC), PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, I64, I64, I64,
                    I64, I64, I64, I64, I64, I64, I64, I64, I64, I32, F64, F64, I32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final CachingAllocator allocator;
    private final int multiprocessors;
    private final long maxBlocks;

    public NormKernels(KernelCompiler compiler, CudaStream stream, CudaContext context, CachingAllocator allocator) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.allocator = allocator;
        this.multiprocessors = context.multiprocessors();
        this.maxBlocks = (long) multiprocessors * 32;
    }

    /**
     * Bytes of the partial sums {@link #rmsNormBackward} allocates for the weight gradient of x [n, d] of dtype
     * {@code x} on a GPU of {@code multiprocessors} SMs (0 when it allocates none): the one size rule of this launch
     * and of the meta backend's prediction.
     */
    public static long weightGradientWorkspaceBytes(long n, long d, DType x, int multiprocessors) {
        if (n == 0 || d == 0) {
            return 0;
        }
        return weightGradientLaunch(n, d, accumulatorBytes(x), multiprocessors, (long) multiprocessors * 32).scratchBytes();
    }

    private static int accumulatorBytes(DType x) {
        return x == DType.F64 ? 8 : 4;
    }

    public void rmsNorm(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd) {
        rmsNorm(x, null, null, weight, eps, offsetOne, out, rstd);
    }

    /** With h (and sum) null the plain norm of x; else sum = x + h and its norm (the residual kernels). */
    public void rmsNorm(Tensor x, Tensor h, Tensor sum, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd) {
        rmsNorm(x, h, sum, weight, eps, offsetOne, out, rstd, HELD_NORMS);
    }

    /** {@code mayHold}: whether rows {@link #heldNormRows} takes may run the {@code _held} kernels (tests compare both). */
    void rmsNorm(Tensor x, Tensor h, Tensor sum, Tensor weight, double eps, boolean offsetOne, Tensor out, Tensor rstd, boolean mayHold) {
        long d = RowLaunch.lastDim(x);
        if (x.numel() == 0 || d == 0) {
            return;
        }
        long n = x.numel() / d;
        StatTypes.require("rmsNorm", "rstd", rstd, StatTypes.of(x.dtype()));
        boolean residual = h != null;
        int vec = residual ? RowLaunch.vectorWidth(RowLaunch.perAccess(x), d, x, h, sum, out) : RowLaunch.vectorWidth(RowLaunch.perAccess(x), d, x, out);
        RowLaunch rows = RowLaunch.of(n, d, maxBlocks);
        String name = kernelName(residual ? "rms_norm_residual_" : "rms_norm_", "rmsNorm", x, weight, vec) + heldSuffix(mayHold, rows, d, vec);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(x.address());
            if (residual) {
                args.pointer(h.address()).pointer(sum.address());
            }
            args.pointer(weight.address()).pointer(out.address()).pointer(rstd.address()).i64(n).i64(d).f64(eps).i32(offsetOne ? 1 : 0);
            rows.launch(module.function(name), stream, args);
        }
    }

    public void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradX, Tensor gradWeight) {
        rmsNormBackward(x, weight, rstd, offsetOne, gradOut, null, gradX, gradWeight);
    }

    /** With gradSum (null: none) added to gradX as the unfused add would add it: the residual kernels, x being the sum. */
    public void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradSum, Tensor gradX,
                                Tensor gradWeight) {
        rmsNormBackward(x, weight, rstd, offsetOne, gradOut, gradSum, gradX, gradWeight, HELD_NORMS);
    }

    /** {@code mayHold}: as {@link #rmsNorm}'s. */
    void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor gradOut, Tensor gradSum, Tensor gradX,
                         Tensor gradWeight, boolean mayHold) {
        long d = RowLaunch.lastDim(x);
        if (d == 0) {
            return;
        }
        long n = x.numel() / d;
        if (gradWeight != null) {
            StatTypes.require("rmsNormBackward", "gradWeight", gradWeight, StatTypes.of(x.dtype()));
        }
        if (n == 0) {
            if (gradWeight != null) {
                Backends.of(gradWeight).fill(gradWeight, 0.0);
            }
            return;
        }
        StatTypes.require("rmsNormBackward", "rstd", rstd, StatTypes.of(x.dtype()));
        boolean residual = gradSum != null;
        int vec = residual ? RowLaunch.vectorWidth(RowLaunch.perAccess(x), d, x, gradOut, gradSum, gradX)
                : RowLaunch.vectorWidth(RowLaunch.perAccess(x), d, x, gradOut, gradX);
        String name = kernelName(residual ? "rms_norm_residual_backward_" : "rms_norm_backward_", "rmsNormBackward", x, weight, vec);
        if (gradWeight == null) {
            RowLaunch rows = RowLaunch.of(n, d, maxBlocks);
            try (KernelArgs args = backwardArgs(x, weight, rstd, gradOut, gradSum, gradX, 0, n, d, offsetOne, false)) {
                rows.launch(module.function(name + heldSuffix(mayHold, rows, d, vec)), stream, args);
            }
            return;
        }
        int accBytes = accumulatorBytes(x.dtype());
        WeightGradientLaunch launch = weightGradientLaunch(n, d, accBytes, multiprocessors, maxBlocks);
        Block partial = allocator.allocate(launch.scratchBytes(), MemoryCategory.WORKSPACE);
        try {
            try (KernelArgs args = backwardArgs(x, weight, rstd, gradOut, gradSum, gradX, partial.address(), n, d, offsetOne, launch.slotsShared())) {
                RowLaunch rows = launch.rows();
                module.function(name + heldSuffix(mayHold, rows, d, vec)).launch(stream, rows.grid(), 1, rows.blockX(), rows.blockY(), launch.sharedBytes(), args);
            }
            reduceWeightGradient(partial, launch.lines(), d, vec, accBytes, gradWeight);
        } finally {
            allocator.free(partial); // stream order keeps the block's next user behind these kernels
        }
    }

    /**
     * RMSNorm then RoPE over x [B, H, T, D] (strided on B, H, T) into out [B, H, T, D], rstd [B * T * H] in (b, t, h)
     * order: {@code RmsNormRopeKernel}'s contract.
     */
    public void rmsNormRope(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                            Tensor rstd) {
        rmsNormRope(x, weight, eps, offsetOne, positions, base, scaling, out, rstd, HELD_FORWARD);
    }

    /** {@code mayHold}: whether rows {@link #heldRows} takes may run the held path (tests compare both). */
    void rmsNormRope(Tensor x, Tensor weight, double eps, boolean offsetOne, Tensor positions, double base, double scaling, Tensor out,
                     Tensor rstd, boolean mayHold) {
        long bt = x.dim(0) * x.dim(2);
        long d = x.dim(3);
        if (x.numel() == 0) {
            return;
        }
        StatTypes.require("rmsNormRope", "rstd", rstd, StatTypes.of(x.dtype()));
        NormRopeLaunch launch = normRopeLaunch(bt, d, accumulatorBytes(x.dtype()), false, multiprocessors, maxBlocks);
        int vec = stridedVectorWidth(d, x, out);
        String name = kernelName("rms_norm_rope_", "rmsNormRope", x, weight, vec);
        boolean held = mayHold && heldRows(d, vec);
        long grid = held ? Math.min(launch.grid(), (long) NORM_ROPE_BLOCKS * multiprocessors) : launch.grid();
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(x.address()).pointer(weight.address()).pointer(positions.address()).pointer(out.address()).pointer(rstd.address())
                    .i64(x.dim(0)).i64(x.dim(1)).i64(x.dim(2)).i64(d);
            strides(args, x);
            strides(args, out);
            args.f64(eps).i32(offsetOne ? 1 : 0).f64(base).f64(scaling).i32(held ? 1 : 0);
            module.function(name).launch(stream, grid, 1, 32, launch.warps(), launch.sharedBytes(), args);
        }
    }

    /** The backward of {@link #rmsNormRope}: gradX strided as given; gradWeight null when not wanted. */
    public void rmsNormRopeBackward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                                    Tensor gradOut, Tensor gradX, Tensor gradWeight) {
        rmsNormRopeBackward(x, weight, rstd, offsetOne, positions, base, scaling, gradOut, gradX, gradWeight, HELD);
    }

    /** {@code mayHold}: as {@link #rmsNormRope}'s. */
    void rmsNormRopeBackward(Tensor x, Tensor weight, Tensor rstd, boolean offsetOne, Tensor positions, double base, double scaling,
                             Tensor gradOut, Tensor gradX, Tensor gradWeight, boolean mayHold) {
        long bt = x.dim(0) * x.dim(2);
        long d = x.dim(3);
        if (gradWeight != null) {
            StatTypes.require("rmsNormRopeBackward", "gradWeight", gradWeight, StatTypes.of(x.dtype()));
        }
        if (x.numel() == 0) {
            if (gradWeight != null) {
                Backends.of(gradWeight).fill(gradWeight, 0.0);
            }
            return;
        }
        StatTypes.require("rmsNormRopeBackward", "rstd", rstd, StatTypes.of(x.dtype()));
        int accBytes = accumulatorBytes(x.dtype());
        NormRopeLaunch launch = normRopeLaunch(bt, d, accBytes, true, multiprocessors, maxBlocks);
        int vec = stridedVectorWidth(d, x, gradOut, gradX);
        String name = kernelName("rms_norm_rope_backward_", "rmsNormRopeBackward", x, weight, vec);
        Block partial = gradWeight == null ? null : allocator.allocate(launch.scratchBytes(), MemoryCategory.WORKSPACE);
        try {
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(x.address()).pointer(weight.address()).pointer(rstd.address()).pointer(positions.address())
                        .pointer(gradOut.address()).pointer(gradX.address()).pointer(partial == null ? 0 : partial.address())
                        .i64(x.dim(0)).i64(x.dim(1)).i64(x.dim(2)).i64(d);
                strides(args, x);
                strides(args, gradOut);
                strides(args, gradX);
                args.i32(offsetOne ? 1 : 0).f64(base).f64(scaling).i32(mayHold && heldRows(d, vec) ? 1 : 0);
                module.function(name).launch(stream, launch.grid(), 1, 32, launch.warps(), launch.sharedBytes(), args);
            }
            if (partial != null) {
                reduceWeightGradient(partial, launch.grid(), d, vec, accBytes, gradWeight);
            }
        } finally {
            if (partial != null) {
                allocator.free(partial);
            }
        }
    }

    /**
     * gradWeight [d] = the sum of the scratch's {@code lines} lines of d accumulators, in order; the lines laid out as
     * the backward of vector width {@code vec} wrote them.
     */
    private void reduceWeightGradient(Block partial, long lines, long d, int vec, int accBytes, Tensor gradWeight) {
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(partial.address()).pointer(gradWeight.address()).i64(lines).i64(d).i64(vec);
            module.function("rms_norm_weight_reduce_" + (accBytes == 8 ? "f64" : "f32"))
                    .launch(stream, Math.ceilDiv(d, REDUCE_COLUMNS), 1, REDUCE_COLUMNS, REDUCE_ROWS, 0, args);
        }
    }

    /** norm.cu's instantiation {@code <prefix><x's dtype>_<weight's dtype>[_vec]}; {@code op} names an unsupported dtype's op. */
    private static String kernelName(String prefix, String op, Tensor x, Tensor weight, int vec) {
        return prefix + ElementwiseKernels.floatSuffix(op, x.dtype()) + "_" + ElementwiseKernels.floatSuffix(op, weight.dtype())
                + RowLaunch.vecSuffix(vec);
    }

    /** A [B, H, T, D] tensor's strides on B, H and T. */
    private static void strides(KernelArgs args, Tensor t) {
        args.i64(t.stride(0)).i64(t.stride(1)).i64(t.stride(2));
    }

    /**
     * {@link RowLaunch#vectorWidth}'s width for rows of {@code d} elements at strided starts: 1 unless every tensor's
     * strides on B, H and T are multiples of it too (each row then starts as aligned as the tensor).
     */
    static int stridedVectorWidth(long d, Tensor... tensors) {
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(tensors[0]), d, tensors);
        for (Tensor t : tensors) {
            for (int axis = 0; axis < 3; axis++) {
                if (t.dim(axis) > 1 && t.stride(axis) % vec != 0) {
                    return 1;
                }
            }
        }
        return vec;
    }

    /**
     * Bytes of the weight-gradient scratch {@link #rmsNormRopeBackward} allocates for {@code bt} (b, t) rows of head
     * dimension d: the meta backend's prediction and the launch's one rule.
     */
    public static long normRopeWorkspaceBytes(long bt, long d, DType x, int multiprocessors) {
        if (bt == 0 || d == 0) {
            return 0;
        }
        return normRopeLaunch(bt, d, accumulatorBytes(x), true, multiprocessors, (long) multiprocessors * 32).scratchBytes();
    }

    /**
     * The fused norm and rotation's launch: a warp a (b, t) row, as many warps a block (at most 8) as their row buffers
     * (2 rows of D accumulators a warp forward, 3 backward) and the block's invFreq [D / 2] floats fit in
     * {@link #SHARED_SLOT_BYTES}; the backward's grid at most 4 blocks a multiprocessor (its blocks' weight-gradient
     * lines are the scratch) and within {@link #PARTIAL_BYTES}.
     */
    static NormRopeLaunch normRopeLaunch(long bt, long d, int accBytes, boolean backward, int multiprocessors, long maxBlocks) {
        long perWarp = (backward ? 3 : 2) * d * accBytes;
        long frequencies = 4 * (d / 2);
        long warps = Math.min(RowLaunch.WARP_ROWS_PER_BLOCK, (SHARED_SLOT_BYTES - frequencies) / perWarp);
        if (warps < 1) {
            throw new UnsupportedOpException("rmsNormRope: head dimension " + d + " is larger than the cuda kernel supports ("
                    + maxNormRopeHeadDim(accBytes) + " for " + (accBytes == 8 ? "F64" : "16/32-bit") + " tensors)");
        }
        long grid = Math.max(1, Math.min(Math.ceilDiv(bt, warps), maxBlocks));
        if (backward) {
            grid = Math.max(1, Math.min(Math.min(grid, 4L * multiprocessors), PARTIAL_BYTES / (d * accBytes)));
        }
        return new NormRopeLaunch(grid, (int) warps, Math.toIntExact(warps * perWarp + frequencies), d * accBytes);
    }

    /**
     * Whether the plain norms' {@code _held} kernels take rows of {@code d} elements, {@code vec} an access, laid out as
     * {@code rows}: vectorised, a warp a row, at most {@link #NORM_HELD} chunks a lane (they run unless
     * {@link #HELD_NORMS} is off).
     */
    static boolean heldNormRows(RowLaunch rows, long d, int vec) {
        return vec > 1 && rows.blockX() == 32 && d / vec <= 32L * NORM_HELD;
    }

    /** The plain norms' kernel name suffix: {@code _held} where {@code mayHold} and {@link #heldNormRows} say so. */
    private static String heldSuffix(boolean mayHold, RowLaunch rows, long d, int vec) {
        return mayHold && heldNormRows(rows, d, vec) ? "_held" : "";
    }

    /**
     * Whether the fused norm and rotation holds rows of {@code d} elements, {@code vec} an access, in registers (norm.cu's
     * held path): a lane a chunk, so at most 32 chunks, and an even number of them (a rotation pair's two chunks sit
     * half a row apart, in two lanes); it runs unless {@link #HELD} is off.
     */
    static boolean heldRows(long d, int vec) {
        long chunks = d / vec;
        return d % vec == 0 && chunks >= 2 && chunks <= 32 && chunks % 2 == 0;
    }

    /**
     * Where the fused norm and rotation's held path runs ({@code -Djtune.cuda.normRopeHeld=both|backward|none}). Measured
     * on an H100 at 8K after a warm-up (NormRopeTiming, Gemma's q [4 heads] / k [1 head], twenty-fifth session): forward
     * 32.7 / 15.8 us held against 41.1 / 17.8 through shared memory, backward 43.8 / 18.2 against 57.2 / 21.3: held both
     * ways. (The twenty-fourth session's ~100 us, timed without a warm-up, were the GPU's idle clocks.)
     */
    static final String HELD_WHERE = System.getProperty("jtune.cuda.normRopeHeld", "both");
    static final boolean HELD_FORWARD = HELD_WHERE.equals("both");
    static final boolean HELD = HELD_WHERE.equals("both") || HELD_WHERE.equals("backward");

    /** The largest head dimension {@link #normRopeLaunch} takes: one warp's buffers (backward's three) beside invFreq. */
    public static long maxNormRopeHeadDim(int accBytes) {
        long d = SHARED_SLOT_BYTES / (3L * accBytes + 2);
        return d - d % 2;
    }

    /**
     * A fused norm and rotation launch: blocks, warps a block (blockDim = (32, warps)), dynamic shared bytes, and the bytes
     * of one weight-gradient line (d accumulators).
     */
    record NormRopeLaunch(long grid, int warps, int sharedBytes, long lineBytes) {
        /** The backward's weight-gradient scratch: one line a block. */
        long scratchBytes() {
            return grid * lineBytes;
        }
    }

    /** The backward kernels' arguments; gradSum's pointer only for the residual kernel (gradSum not null). */
    private static KernelArgs backwardArgs(Tensor x, Tensor weight, Tensor rstd, Tensor gradOut, Tensor gradSum, Tensor gradX, long partial,
                                           long n, long d, boolean offsetOne, boolean slotsShared) {
        KernelArgs args = new KernelArgs();
        args.pointer(x.address()).pointer(weight.address()).pointer(rstd.address()).pointer(gradOut.address());
        if (gradSum != null) {
            args.pointer(gradSum.address());
        }
        return args.pointer(gradX.address()).pointer(partial).i64(n).i64(d).i32(offsetOne ? 1 : 0).i32(slotsShared ? 1 : 0);
    }

    /**
     * The backward's launch when it sums weight-gradient partials: {@link RowLaunch#of}'s shape with the grid cut to
     * at most 4 blocks per multiprocessor and to a scratch of accumulators within {@link #PARTIAL_BYTES} (at least one
     * block). A block's row slots keep their lines in its shared memory when they fit in {@link #SHARED_SLOT_BYTES}
     * (then the scratch has one line a block), else in the scratch (one line a slot).
     */
    static WeightGradientLaunch weightGradientLaunch(long n, long d, int accBytes, int multiprocessors, long maxBlocks) {
        RowLaunch shape = RowLaunch.of(n, d, maxBlocks);
        long slotLines = (long) shape.blockY() * d * accBytes;
        boolean shared = slotLines <= SHARED_SLOT_BYTES;
        long perBlock = shared ? d * accBytes : slotLines;
        long blocks = Math.max(1, Math.min(Math.min(shape.grid(), 4L * multiprocessors), PARTIAL_BYTES / perBlock));
        return new WeightGradientLaunch(new RowLaunch(blocks, shape.blockX(), shape.blockY()), shared, d, accBytes);
    }

    /**
     * A weight-gradient backward's launch: its rows' shape, and whether its slots' lines stay in shared memory
     * ({@code slotsShared}: one scratch line a block) or live in the scratch (one line a slot).
     */
    record WeightGradientLaunch(RowLaunch rows, boolean slotsShared, long d, int accBytes) {
        /** Lines of d accumulators in the scratch, which the reduce adds. */
        long lines() {
            return slotsShared ? rows.grid() : rows.slots();
        }

        long scratchBytes() {
            return lines() * d * accBytes;
        }

        /** Dynamic shared memory a block asks for: its slots' lines, when they stay there. */
        int sharedBytes() {
            return slotsShared ? Math.toIntExact(rows.blockY() * d * accBytes) : 0;
        }
    }
}

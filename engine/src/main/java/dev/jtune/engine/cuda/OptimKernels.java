package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.engine.memory.CachingAllocator;
import dev.jtune.engine.optim.FlatLayout;

import static dev.jtune.engine.cuda.KernelParam.F64;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.VEC;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/optim.cu: the AdamW step (per tensor, or over a group's flat buffers in one launch), the
 * deterministic sum of squares and the clip coefficient.
 */
public final class OptimKernels {
    private static final int THREADS = 256;

    /** kernels/optim.cu's kernels and their parameters. */
    static final KernelSource SOURCE = KernelSource.builder("optim.cu")
            .define("FLAT_ALIGNMENT", FlatLayout.ALIGNMENT)
            .kernels(names("adamw_%s_%s", FLOATS, FLOATS), PTR, PTR, PTR, PTR, PTR, I32, I64, F64, F64, F64, F64, F64, F64, F64)
            .kernels(names("adamw_flat_%s_%s", FLOATS, FLOATS), PTR, I32, PTR, PTR, PTR, PTR, PTR, I32, I64, F64, F64, F64, F64, F64, F64, F64)
            .kernels(names("cast_flat_%s_%s", FLOATS, FLOATS), PTR, I32, PTR, I64)
            .kernels(names("sum_squares_%s%s", FLOATS, VEC), PTR, I64, PTR)
            .kernels(names("sum_squares_finish_%s", java.util.List.of("f32", "f64")), PTR, I64, PTR, I32)
            .kernel("clip_coefficient", PTR, I32, F64, PTR, I32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final CachingAllocator allocator;
    private final long maxBlocks;
    private final long partialBlocks;
    private final int multiprocessors;

    public OptimKernels(KernelCompiler compiler, CudaStream stream, CudaContext context, CachingAllocator allocator) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.allocator = allocator;
        this.maxBlocks = (long) context.multiprocessors() * 32;
        this.partialBlocks = (long) context.multiprocessors() * 4;
        this.multiprocessors = context.multiprocessors();
    }

    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
        long n = param.numel();
        if (n == 0) {
            return;
        }
        DType p = param.dtype();
        DType g = grad.dtype();
        StatTypes.require("adamw", "m", m, StatTypes.of(p));
        StatTypes.require("adamw", "v", v, StatTypes.of(p));
        int gradScaleF64 = gradScale == null ? 0 : StatTypes.scalarFlag("adamw", "gradScale", gradScale);
        String name = "adamw_" + ElementwiseKernels.floatSuffix("adamw", p) + "_" + ElementwiseKernels.floatSuffix("adamw", g);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(param.address()).pointer(grad.address()).pointer(m.address()).pointer(v.address())
                    .pointer(gradScale == null ? 0 : gradScale.address()).i32(gradScaleF64).i64(n);
            constants(args, step);
            long blocks = Math.min(Math.ceilDiv(n, THREADS), maxBlocks);
            module.function(name).launch(stream, blocks, THREADS, 0, args);
        }
    }

    /** The step's scalars as both AdamW kernels take them, computed in double on the host. */
    private static void constants(KernelArgs args, AdamWStep step) {
        args.f64(1 - step.lr() * step.weightDecay())
                .f64(1 - step.beta1())
                .f64(step.beta2())
                .f64(1 - step.beta2())
                .f64(step.eps())
                .f64(step.lr() / step.biasCorrection1())
                .f64(Math.sqrt(step.biasCorrection2()));
    }

    /**
     * One AdamW step of every parameter of a flat group in one launch (fused.AdamWKernel#flatStep's contract): blocks
     * of {@link FlatLayout#ALIGNMENT} threads, one aligned tile of the flat buffers at a time, at most
     * {@code 32 x SMs} blocks striding over the tiles.
     */
    public void adamwFlat(ParameterTable params, Tensor grad, Tensor master, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
        FlatLayout layout = params.layout();
        long n = layout.numel();
        if (n == 0 || layout.entries().isEmpty()) {
            return;
        }
        DType p = params.dtype();
        DType g = grad.dtype();
        StatTypes.require("adamwFlat", "m", m, StatTypes.of(p));
        StatTypes.require("adamwFlat", "v", v, StatTypes.of(p));
        if (master != null) {
            StatTypes.require("adamwFlat", "master", master, DType.F32);
        }
        int gradScaleF64 = gradScale == null ? 0 : StatTypes.scalarFlag("adamwFlat", "gradScale", gradScale);
        String name = "adamw_flat_" + ElementwiseKernels.floatSuffix("adamwFlat", p) + "_" + ElementwiseKernels.floatSuffix("adamwFlat", g);
        Tensor table = params.current();
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(table.address()).i32(layout.entries().size()).pointer(grad.address())
                    .pointer(master == null ? 0 : master.address()).pointer(m.address()).pointer(v.address())
                    .pointer(gradScale == null ? 0 : gradScale.address()).i32(gradScaleF64).i64(n);
            constants(args, step);
            long blocks = Math.min(n / FlatLayout.ALIGNMENT, maxBlocks);
            module.function(name).launch(stream, blocks, FlatLayout.ALIGNMENT, 0, args);
        }
    }

    /**
     * Every parameter of a flat group converted into {@code out} (1-D, {@code layout.numel()} elements of another float
     * dtype) at its entry's offset, in one launch (fused.FlatCastKernel's contract), tiled as {@link #adamwFlat}.
     */
    public void castFlat(ParameterTable params, Tensor out) {
        FlatLayout layout = params.layout();
        long n = layout.numel();
        if (n == 0 || layout.entries().isEmpty()) {
            return;
        }
        String name = "cast_flat_" + ElementwiseKernels.floatSuffix("castFlat", params.dtype()) + "_"
                + ElementwiseKernels.floatSuffix("castFlat", out.dtype());
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(params.current().address()).i32(layout.entries().size()).pointer(out.address()).i64(n);
            long blocks = Math.min(n / FlatLayout.ALIGNMENT, maxBlocks);
            module.function(name).launch(stream, blocks, FlatLayout.ALIGNMENT, 0, args);
        }
    }

    /**
     * Bytes of the block partials {@link #sumOfSquares} allocates for x on a GPU of {@code multiprocessors} SMs (0 when
     * it allocates none): the one size rule of this launch and of the meta backend's prediction.
     */
    public static long sumOfSquaresWorkspaceBytes(Tensor x, int multiprocessors) {
        long n = x.numel();
        if (n == 0) {
            return 0;
        }
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(x), n, x);
        return sumOfSquaresParts(n, vec, (long) multiprocessors * 4) * (x.dtype() == DType.F64 ? 8 : 4);
    }

    /** Blocks of the first pass, each summing THREADS * 4 vectors: at most {@code partialBlocks}. */
    private static long sumOfSquaresParts(long n, int vec, long partialBlocks) {
        return Math.max(1, Math.min(Math.ceilDiv(n / vec, THREADS * 4L), partialBlocks));
    }

    /** out[0] += sum of x^2: a fixed grid of block partials (fixed for a given size and GPU), added in order. */
    public void sumOfSquares(Tensor x, Tensor out) {
        long n = x.numel();
        if (n == 0) {
            return;
        }
        int outF64 = StatTypes.scalarFlag("sumOfSquares", "out", out);
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(x), n, x);
        String sfx = ElementwiseKernels.floatSuffix("sumOfSquares", x.dtype());
        int accBytes = x.dtype() == DType.F64 ? 8 : 4;
        long parts = sumOfSquaresParts(n, vec, partialBlocks);
        Block partial = allocator.allocate(sumOfSquaresWorkspaceBytes(x, multiprocessors), MemoryCategory.WORKSPACE);
        try {
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(x.address()).i64(n).pointer(partial.address());
                module.function("sum_squares_" + sfx + RowLaunch.vecSuffix(vec)).launch(stream, parts, THREADS, 0, args);
            }
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(partial.address()).i64(parts).pointer(out.address()).i32(outF64);
                module.function("sum_squares_finish_" + (accBytes == 8 ? "f64" : "f32")).launch(stream, 1, THREADS, 0, args);
            }
        } finally {
            allocator.free(partial); // stream order keeps the block's next user behind these kernels
        }
    }

    public void clipCoefficient(Tensor sumOfSquares, double maxNorm, Tensor coef) {
        int ssF64 = StatTypes.scalarFlag("clipCoefficient", "sumOfSquares", sumOfSquares);
        int coefF64 = StatTypes.scalarFlag("clipCoefficient", "coef", coef);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(sumOfSquares.address()).i32(ssF64).f64(maxNorm).pointer(coef.address()).i32(coefF64);
            module.function("clip_coefficient").launch(stream, 1, 32, 0, args);
        }
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.VEC;
import static dev.jtune.engine.cuda.KernelSource.names;

/** Typed launches of kernels/loss.cu: cross-entropy forward and backward, and the count of non-ignored labels. */
public final class LossKernels {
    private static final int COUNT_THREADS = 1024;

    /**
     * How many of a thread's chunks of a row the cross-entropy forward loads before it uses the first. One 16-byte
     * load in flight a thread read Gemma's 262,144-entry rows at ~2.1 TB/s (H100); 2 keeps its 32 registers (two
     * 1,024-thread blocks an SM) and doubles the bytes in flight, 4 took 46 (one block). The backward, at ~85% of the
     * memory's rate with its stores in flight, loads one at a time.
     */
    static final int CE_LOADS = 2;

    /** kernels/loss.cu's kernels and their parameters. */
    static final KernelSource SOURCE = KernelSource.builder("loss.cu")
            .define("CE_LOADS", CE_LOADS)
            .kernels(names("cross_entropy_%s%s", FLOATS, VEC), PTR, PTR, PTR, PTR, I64, I64, I32)
            .kernels(names("cross_entropy_backward_%s%s", FLOATS, VEC), PTR, PTR, PTR, PTR, I32, PTR, I64, I64, I64, I32)
            .kernel("count_not_equal", PTR, I64, I32, PTR, I32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;

    public LossKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 32;
    }

    public void crossEntropy(Tensor logits, Tensor labels, int ignoreIndex, Tensor loss, Tensor lse) {
        long n = logits.dim(0);
        long v = logits.dim(1);
        if (n == 0) {
            return;
        }
        StatTypes.require("crossEntropy", "loss", loss, StatTypes.of(logits.dtype()));
        StatTypes.require("crossEntropy", "lse", lse, StatTypes.of(logits.dtype()));
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(logits), v, logits);
        String name = "cross_entropy_" + ElementwiseKernels.floatSuffix("crossEntropy", logits.dtype()) + RowLaunch.vecSuffix(vec);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(logits.address()).pointer(labels.address()).pointer(loss.address()).pointer(lse.address())
                    .i64(n).i64(v).i32(ignoreIndex);
            RowLaunch.of(n, v, maxBlocks).launch(module.function(name), stream, args);
        }
    }

    /** logits [N, v] are the vocabulary's columns [firstColumn, firstColumn + v). */
    public void crossEntropyBackward(Tensor logits, long firstColumn, Tensor labels, Tensor lse, int ignoreIndex, Tensor scale,
                                     Tensor gradLogits) {
        if (firstColumn < 0) {
            throw new ShapeException("crossEntropyBackward: first column " + firstColumn + " is negative");
        }
        long n = logits.dim(0);
        long v = logits.dim(1);
        if (n == 0 || v == 0) {
            return;
        }
        StatTypes.require("crossEntropyBackward", "lse", lse, StatTypes.of(logits.dtype()));
        int scaleF64 = StatTypes.scalarFlag("crossEntropyBackward", "scale", scale);
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(logits), v, logits, gradLogits);
        String name = "cross_entropy_backward_" + ElementwiseKernels.floatSuffix("crossEntropyBackward", logits.dtype())
                + RowLaunch.vecSuffix(vec);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(logits.address()).pointer(labels.address()).pointer(lse.address()).pointer(scale.address())
                    .i32(scaleF64).pointer(gradLogits.address()).i64(n).i64(v).i64(firstColumn).i32(ignoreIndex);
            RowLaunch.of(n, v, maxBlocks).launch(module.function(name), stream, args);
        }
    }

    public void countNotEqual(Tensor labels, int value, Tensor out) {
        int outF64 = StatTypes.scalarFlag("countNotEqual", "out", out);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(labels.address()).i64(labels.numel()).i32(value).pointer(out.address()).i32(outF64);
            module.function("count_not_equal").launch(stream, 1, COUNT_THREADS, 0, args);
        }
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.VEC;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/loss.cu (cross-entropy forward and backward, and the count of non-ignored labels) and
 * kernels/loss_cluster.cu (the loss and its gradient in one pass, on GPUs with thread-block clusters).
 */
public final class LossKernels {
    private static final int COUNT_THREADS = 1024;

    /**
     * How many of a thread's chunks of a row the cross-entropy forward loads before it uses the first. One 16-byte
     * load in flight a thread read Gemma's 262,144-entry rows at ~2.1 TB/s (H100); 2 keeps its 32 registers (two
     * 1,024-thread blocks an SM) and doubles the bytes in flight, 4 took 46 (one block). The backward, at ~85% of the
     * memory's rate with its stores in flight, loads one at a time. {@code -Djtune.cuda.crossEntropyLoads=1} gives the
     * one-load kernel back, to time one against the other (H100, 8K: forward + backward 4.868 ms with 2; the one-load
     * pair was 5.03 ms in an earlier session's profile, not re-timed beside it).
     */
    static final int CE_LOADS = crossEntropyLoads();

    private static int crossEntropyLoads() {
        int loads = Integer.getInteger("jtune.cuda.crossEntropyLoads", 2);
        if (loads < 1 || loads > 4) {
            throw new IllegalArgumentException("-Djtune.cuda.crossEntropyLoads=" + loads + ": 1 to 4 chunks in flight a thread");
        }
        return loads;
    }

    /** kernels/loss.cu's kernels and their parameters. */
    static final KernelSource SOURCE = KernelSource.builder("loss.cu")
            .define("CE_LOADS", CE_LOADS)
            .kernels(names("cross_entropy_%s%s", FLOATS, VEC), PTR, PTR, PTR, PTR, I64, I64, I32)
            .kernels(names("cross_entropy_backward_%s%s", FLOATS, VEC), PTR, PTR, PTR, PTR, I32, PTR, I64, I64, I64, I32)
            .kernel("count_not_equal", PTR, I64, I32, PTR, I32)
            .build();

    /**
     * Blocks of one thread-block cluster, over which {@link #crossEntropyWithGradient}'s kernel splits a row: the
     * portable maximum, so that a row of Gemma's 262,144 bf16 logits needs 512 threads a block (two blocks an SM).
     */
    static final int CE_CLUSTER = 8;

    /**
     * 16-byte chunks of its row that each thread of that kernel holds in registers: 128 bytes, 32 of the 64 registers
     * a thread has when 2,048 share an SM (ptxas: 64 for bf16, f16 and f32, no spills; f64 spills 8 bytes).
     */
    static final int CE_HELD = 8;

    /**
     * The switch of {@link #crossEntropyWithGradient}'s one-pass kernel, read at each call. Off: measured slower on an
     * H100 (CrossEntropyTiming, chunks of 512: 5.023 ms against the two kernels' 4.868 at 8K, 20.03 against 19.46 at 32K).
     */
    public static final String CLUSTER_PROPERTY = "jtune.cuda.crossEntropyCluster";

    /** kernels/loss_cluster.cu: sm_90 and later (clusters), compiled only where the device has them. */
    static final KernelSource CLUSTER_SOURCE = KernelSource.builder("loss_cluster.cu")
            .define("CE_CLUSTER", CE_CLUSTER)
            .define("CE_HELD", CE_HELD)
            .kernels(names("cross_entropy_with_gradient_%s", FLOATS), PTR, PTR, PTR, PTR, PTR, I32, PTR, I64, I32)
            .build();

    private final KernelCompiler compiler;
    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;
    private final boolean clusters;
    private CudaModule clusterModule;

    public LossKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.compiler = compiler;
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 32;
        this.clusters = context.attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH) != 0;
    }

    /**
     * Threads a block of the one-pass kernel needs for rows of {@code rowLength} elements, {@code perAccess} to a
     * 16-byte chunk: whole warps, enough that the cluster's threads hold every chunk, or 0 when a row does not fit in
     * 1,024-thread blocks (or is not whole chunks).
     */
    static int clusterThreads(long rowLength, int perAccess) {
        if (rowLength <= 0 || rowLength % perAccess != 0) {
            return 0;
        }
        long chunks = rowLength / perAccess;
        long threads = Math.ceilDiv(Math.ceilDiv(chunks, (long) CE_CLUSTER * CE_HELD), 32) * 32;
        return threads <= 1024 ? (int) threads : 0;
    }

    /** Whether {@link #crossEntropyWithGradient} runs the one-pass kernel for these operands (the conditions it names). */
    boolean onePass(Tensor logits, Tensor gradLogits) {
        long n = logits.dim(0);
        long v = logits.dim(1);
        int perAccess = RowLaunch.perAccess(logits);
        return n > 0 && n * CE_CLUSTER <= Integer.MAX_VALUE && clusters && Boolean.getBoolean(CLUSTER_PROPERTY)
                && clusterThreads(v, perAccess) > 0 && RowLaunch.vectorWidth(perAccess, v, logits, gradLogits) == perAccess;
    }

    /**
     * {@link #crossEntropy} and {@link #crossEntropyBackward} over whole rows, with grad = logits allowed: in one pass
     * (loss_cluster.cu, each logit read once and its gradient written once) when {@link #CLUSTER_PROPERTY} is true,
     * the device has clusters and the rows fit {@link #clusterThreads} with every operand 16-byte aligned; otherwise
     * the two kernels, as before.
     */
    public void crossEntropyWithGradient(Tensor logits, Tensor labels, int ignoreIndex, Tensor scale, Tensor loss, Tensor lse,
                                         Tensor gradLogits) {
        long n = logits.dim(0);
        long v = logits.dim(1);
        if (!onePass(logits, gradLogits)) {
            crossEntropy(logits, labels, ignoreIndex, loss, lse);
            crossEntropyBackward(logits, 0, labels, lse, ignoreIndex, scale, gradLogits);
            return;
        }
        StatTypes.require("crossEntropy", "loss", loss, StatTypes.of(logits.dtype()));
        StatTypes.require("crossEntropy", "lse", lse, StatTypes.of(logits.dtype()));
        int scaleF64 = StatTypes.scalarFlag("crossEntropy", "scale", scale);
        if (clusterModule == null) {
            clusterModule = compiler.module(CLUSTER_SOURCE);
        }
        int threads = clusterThreads(v, RowLaunch.perAccess(logits));
        String name = "cross_entropy_with_gradient_" + ElementwiseKernels.floatSuffix("crossEntropy", logits.dtype());
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(logits.address()).pointer(labels.address()).pointer(loss.address()).pointer(lse.address())
                    .pointer(scale.address()).i32(scaleF64).pointer(gradLogits.address()).i64(v).i32(ignoreIndex);
            clusterModule.function(name).launch(stream, n * CE_CLUSTER, threads, 0, args); // one cluster a row
        }
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

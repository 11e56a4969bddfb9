package dev.jtune.engine.cuda;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import java.util.List;

import static dev.jtune.engine.cuda.KernelParam.F64;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.VEC;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/softmax.cu: softmax / log-softmax and backward, row dot products, and the masked
 * attention softmax with its backward. Row-wise kernels use {@link RowLaunch}.
 */
public final class SoftmaxKernels {
    private static final int THREADS = 256;
    /** attention_softmax's vector width: 4 F32 scores per 16-byte access. */
    static final int ATTENTION_VEC = 4;

    /** kernels/softmax.cu: ATTENTION_VEC and the kernels' parameters (attention: F32 scores with any probs, F64 with F64). */
    static final KernelSource SOURCE = KernelSource.builder("softmax.cu")
            .define("ATTENTION_VEC", ATTENTION_VEC)
            .kernels(names("softmax_%s%s", FLOATS, VEC), PTR, PTR, I64, I64, I32)
            .kernels(names("softmax_backward_%s%s", FLOATS, VEC), PTR, PTR, PTR, I64, I64, I32)
            .kernels(names("row_dot_%s%s", FLOATS, VEC), PTR, PTR, PTR, I64, I64)
            .kernels(names("attention_softmax_f32_%s%s", FLOATS, VEC), PTR, PTR, PTR, I64, I64, I64, I64, I64, I64, F64, I32)
            .kernels(names("attention_softmax_f64_f64%s", VEC), PTR, PTR, PTR, I64, I64, I64, I64, I64, I64, F64, I32)
            .kernels(names("attention_softmax_masked_f32_%s", FLOATS), PTR, PTR, PTR, I64, I64, I64, I64, I64, I64, F64, I32, PTR, PTR)
            .kernels(List.of("attention_softmax_masked_f64_f64"), PTR, PTR, PTR, I64, I64, I64, I64, I64, I64, F64, I32, PTR, PTR)
            .kernels(names("attention_softmax_backward_f32_%s_%s", FLOATS, FLOATS), PTR, PTR, PTR, PTR, I64, I64, F64)
            .kernels(List.of("attention_softmax_backward_f64_f64_f64"), PTR, PTR, PTR, PTR, I64, I64, F64)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;

    public SoftmaxKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 32;
    }

    public void softmax(Tensor x, boolean log, Tensor out) {
        long c = RowLaunch.lastDim(x);
        if (x.numel() == 0) {
            return;
        }
        long rows = x.numel() / c;
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(x), c, x, out);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(x.address()).pointer(out.address()).i64(rows).i64(c).i32(log ? 1 : 0);
            launchRows("softmax", x.dtype(), vec, rows, c, args);
        }
    }

    public void softmaxBackward(Tensor out, Tensor gradOut, boolean log, Tensor gradX) {
        long c = RowLaunch.lastDim(out);
        if (out.numel() == 0) {
            return;
        }
        long rows = out.numel() / c;
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(out), c, out, gradOut, gradX);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(out.address()).pointer(gradOut.address()).pointer(gradX.address()).i64(rows).i64(c).i32(log ? 1 : 0);
            launchRows("softmax_backward", out.dtype(), vec, rows, c, args);
        }
    }

    public void rowDot(Tensor a, Tensor b, Tensor out) {
        long rows = a.dim(0);
        long c = a.dim(1);
        if (rows == 0) {
            return;
        }
        if (c == 0) {
            Backends.of(out).fill(out, 0.0);
            return;
        }
        StatTypes.require("rowDot", "out", out, StatTypes.of(a.dtype()));
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(a), c, a, b);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(a.address()).pointer(b.address()).pointer(out.address()).i64(rows).i64(c);
            launchRows("row_dot", a.dtype(), vec, rows, c, args);
        }
    }

    public void attentionSoftmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, Tensor segments,
                                 Tensor groups, double scale, Tensor probs, Tensor lse, boolean lseIn) {
        long rows = scores.dim(0);
        long c = scores.dim(1);
        if (rows == 0) {
            return;
        }
        if (rowsPerHead <= 0) {
            throw new IllegalArgumentException("attentionSoftmax: rowsPerHead must be positive, got " + rowsPerHead);
        }
        String ss = scoresSuffix("attentionSoftmax", scores.dtype(), probs.dtype());
        StatTypes.require("attentionSoftmax", "lse", lse, scores.dtype());
        if (segments == null && groups != null) {
            throw new IllegalArgumentException("attentionSoftmax: groups need segments");
        }
        // packed rows: the masked kernel, one element at a time
        int vec = segments != null ? 1 : RowLaunch.vectorWidth(ATTENTION_VEC, c, scores, probs);
        String name = (segments != null ? "attention_softmax_masked_" : "attention_softmax_") + ss + "_"
                + ElementwiseKernels.floatSuffix("attentionSoftmax", probs.dtype()) + (segments != null ? "" : RowLaunch.vecSuffix(vec));
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(scores.address()).pointer(probs.address()).pointer(lse.address()).i64(rows).i64(c)
                    .i64(rowStart).i64(rowsPerHead).i64(colStart).i64(window).f64(scale).i32(lseIn ? 1 : 0);
            if (segments != null) {
                args.pointer(segments.address()).pointer(groups == null ? 0L : groups.address());
            }
            RowLaunch.of(rows, c, maxBlocks).launch(module.function(name), stream, args);
        }
    }

    public void attentionSoftmaxBackward(Tensor probs, Tensor gradProbs, Tensor delta, double scale, Tensor gradScores) {
        long rows = probs.dim(0);
        long c = probs.dim(1);
        if (rows == 0 || c == 0) {
            return;
        }
        String ss = scoresSuffix("attentionSoftmaxBackward", gradProbs.dtype(), probs.dtype());
        if (ss.equals("f64") && gradScores.dtype() != DType.F64) {
            throw new UnsupportedOpException("attentionSoftmaxBackward: with F64 gradProbs the cuda kernels take F64 gradScores, got "
                    + gradScores.dtype());
        }
        StatTypes.require("attentionSoftmaxBackward", "delta", delta, gradProbs.dtype());
        String name = "attention_softmax_backward_" + ss + "_" + ElementwiseKernels.floatSuffix("attentionSoftmaxBackward", probs.dtype())
                + "_" + ElementwiseKernels.floatSuffix("attentionSoftmaxBackward", gradScores.dtype());
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(probs.address()).pointer(gradProbs.address()).pointer(delta.address()).pointer(gradScores.address())
                    .i64(rows).i64(c).f64(scale);
            long gridX = Math.min(Math.ceilDiv(c, THREADS), 1024);
            long gridY = Math.min(rows, 65535);
            module.function(name).launch(stream, gridX, gridY, THREADS, 1, 0, args);
        }
    }

    /** Suffix of the scores (or gradProbs) dtype: F32 with any probs dtype, or F64 with F64 probs. */
    private static String scoresSuffix(String op, DType scores, DType probs) {
        if (scores == DType.F32) {
            return "f32";
        }
        if (scores == DType.F64 && probs == DType.F64) {
            return "f64";
        }
        throw new UnsupportedOpException(op + ": the cuda kernels take F32 scores with any float probs, or F64 with F64; got "
                + scores + " and " + probs);
    }

    private void launchRows(String op, DType dtype, int vec, long rows, long rowLength, KernelArgs args) {
        String name = op + "_" + ElementwiseKernels.floatSuffix(op, dtype) + RowLaunch.vecSuffix(vec);
        RowLaunch.of(rows, rowLength, maxBlocks).launch(module.function(name), stream, args);
    }
}

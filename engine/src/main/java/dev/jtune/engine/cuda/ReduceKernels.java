package dev.jtune.engine.cuda;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.ReduceOp;

import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.names;

/** Typed launches of kernels/reduce.cu. */
final class ReduceKernels {
    private static final int THREADS = 256;

    /** kernels/reduce.cu: the op codes (ReduceOp's ordinals) and the kernels' parameters. */
    static final KernelSource SOURCE = KernelSource.builder("reduce.cu")
            .defineOrdinals("OP_", ReduceOp.values())
            .kernels(names("reduce_rows_%s", FLOATS), PTR, PTR, I64, I64, I32)
            .kernels(names("reduce_columns_%s", FLOATS), PTR, PTR, I64, I64, I64, I32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;

    ReduceKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 32;
    }

    /** {@code a} contiguous, viewed as [outer, n, inner] around {@code axis}. */
    void reduce(ReduceOp op, Tensor a, int axis, Tensor out) {
        long outer = 1;
        long inner = 1;
        for (int i = 0; i < axis; i++) {
            outer *= a.dim(i);
        }
        for (int i = axis + 1; i < a.rank(); i++) {
            inner *= a.dim(i);
        }
        long n = a.dim(axis);
        String sfx = ElementwiseKernels.floatSuffix(op.name().toLowerCase(java.util.Locale.ROOT), a.dtype());
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(a.address()).pointer(out.address()).i64(outer).i64(n);
            if (inner == 1) {
                args.i32(op.ordinal());
                module.function("reduce_rows_" + sfx).launch(stream, Math.min(outer, 1L << 20), THREADS, 0, args);
            } else {
                args.i64(inner).i32(op.ordinal());
                long blocks = Math.min(Math.ceilDiv(outer * inner, THREADS), maxBlocks);
                module.function("reduce_columns_" + sfx).launch(stream, blocks, THREADS, 0, args);
            }
        }
    }
}

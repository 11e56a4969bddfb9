package dev.jtune.engine.cuda;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.ReduceOp;

/** Typed launches of kernels/reduce.cu. */
final class ReduceKernels {
    private static final int THREADS = 256;

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;

    ReduceKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.module = compiler.module("reduce.cu");
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

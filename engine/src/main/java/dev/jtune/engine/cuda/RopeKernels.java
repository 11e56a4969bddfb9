package dev.jtune.engine.cuda;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;

import static dev.jtune.engine.cuda.KernelParam.F64;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.names;

/** Typed launches of kernels/rope.cu: rotary position embedding on [B, H, T, D], input and output each with their own strides. */
public final class RopeKernels {
    private static final int THREADS = 256;

    /** Threads of a block (one a rotated pair of a row, whole warps, at most {@link #THREADS}): a row's pairs. */
    static int threads(long half) {
        return (int) Math.min(THREADS, Math.ceilDiv(half, 32) * 32);
    }

    /** kernels/rope.cu: rope_T(x, positions, out, b, h, t, d, x's strides on b, h, t, out's on b, h, t, base, scaling, inverse). */
    static final KernelSource SOURCE = KernelSource.builder("rope.cu")
            .kernels(names("rope_%s", FLOATS), PTR, PTR, PTR, I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, F64, F64, I32)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;

    public RopeKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 16;
    }

    public void rope(Tensor x, Tensor positions, double base, double scaling, boolean inverse, Tensor out) {
        long b = x.dim(0);
        long h = x.dim(1);
        long t = x.dim(2);
        long d = x.dim(3);
        long half = d / 2;
        if (x.numel() == 0 || half == 0) {
            return;
        }
        long shared = 4 * half; // invFreq[D / 2] as float
        if (shared > 48 * 1024) {
            throw new UnsupportedOpException("rope: head dimension " + d + " is larger than the cuda kernel supports (24576)");
        }
        String name = "rope_" + ElementwiseKernels.floatSuffix("rope", x.dtype());
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(x.address()).pointer(positions.address()).pointer(out.address())
                    .i64(b).i64(h).i64(t).i64(d).i64(x.stride(0)).i64(x.stride(1)).i64(x.stride(2))
                    .i64(out.stride(0)).i64(out.stride(1)).i64(out.stride(2)).f64(base).f64(scaling).i32(inverse ? 1 : 0);
            module.function(name).launch(stream, Math.min(b * t, maxBlocks), threads(half), (int) shared, args);
        }
    }
}

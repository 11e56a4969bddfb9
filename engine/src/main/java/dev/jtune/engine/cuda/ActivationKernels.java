package dev.jtune.engine.cuda;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.ActivationKernel;

import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.VEC;
import static dev.jtune.engine.cuda.KernelSource.names;

/** Typed launches of kernels/activation.cu: GELU (tanh approximation) and GeGLU, forward and backward. */
public final class ActivationKernels {
    private static final int THREADS = 256;

    /**
     * kernels/activation.cu: GELU's constants; each kernel takes its operands' pointers, then n; GeGLU's also the row
     * length and the gate/up rows' stride.
     */
    static final KernelSource SOURCE = KernelSource.builder("activation.cu")
            .defineDouble("GELU_BETA", ActivationKernel.GELU_BETA)
            .defineDouble("GELU_KAPPA", ActivationKernel.GELU_KAPPA)
            .kernels(names("gelu_%s%s", FLOATS, VEC), PTR, PTR, I64)
            .kernels(names("gelu_backward_%s%s", FLOATS, VEC), PTR, PTR, PTR, I64)
            .kernels(names("geglu_%s%s", FLOATS, VEC), PTR, PTR, PTR, I64, I64, I64)
            .kernels(names("geglu_backward_%s%s", FLOATS, VEC), PTR, PTR, PTR, PTR, PTR, I64, I64, I64)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;

    public ActivationKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 32;
    }

    public void gelu(Tensor x, Tensor out) {
        launch("gelu", x, new Tensor[] {x, out});
    }

    public void geluBackward(Tensor x, Tensor gradOut, Tensor gradX) {
        launch("gelu_backward", x, new Tensor[] {x, gradOut, gradX});
    }

    /** gate and up contiguous or row-strided alike (the halves of one [rows, 2 cols] product); out contiguous. */
    public void geglu(Tensor gate, Tensor up, Tensor out) {
        launchRows("geglu", gate, new Tensor[] {gate, up, out});
    }

    /** gate, up, gradGate and gradUp contiguous or row-strided alike; gradOut contiguous. */
    public void gegluBackward(Tensor gate, Tensor up, Tensor gradOut, Tensor gradGate, Tensor gradUp) {
        launchRows("geglu_backward", gate, new Tensor[] {gate, up, gradOut, gradGate, gradUp});
    }

    /**
     * GeGLU's launch: the pointers in order, then n, the row length and the stride of {@code first}'s rows (which the
     * kernel applies to gate, up and their gradients; out and gradOut are contiguous); vectorised where the row length
     * and the stride allow it too.
     */
    private void launchRows(String op, Tensor first, Tensor[] operands) {
        long n = first.numel();
        if (n == 0) {
            return;
        }
        long cols = RowLaunch.lastDim(first);
        long ld = ActivationKernel.rowStride(first);
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(first), cols, operands);
        if (ld % vec != 0) {
            vec = 1;
        }
        String name = op + "_" + ElementwiseKernels.floatSuffix(op, first.dtype()) + RowLaunch.vecSuffix(vec);
        try (KernelArgs args = new KernelArgs()) {
            for (Tensor t : operands) {
                args.pointer(t.address());
            }
            args.i64(n).i64(cols).i64(ld);
            long blocks = Math.min(Math.ceilDiv(n / vec, THREADS), maxBlocks);
            module.function(name).launch(stream, blocks, THREADS, 0, args);
        }
    }

    /** Every operand is contiguous with {@code first}'s shape and dtype; the kernel takes their pointers in order, then n. */
    private void launch(String op, Tensor first, Tensor[] operands) {
        long n = first.numel();
        if (n == 0) {
            return;
        }
        int vec = RowLaunch.vectorWidth(RowLaunch.perAccess(first), n, operands);
        String name = op + "_" + ElementwiseKernels.floatSuffix(op, first.dtype()) + RowLaunch.vecSuffix(vec);
        try (KernelArgs args = new KernelArgs()) {
            for (Tensor t : operands) {
                args.pointer(t.address());
            }
            args.i64(n);
            long blocks = Math.min(Math.ceilDiv(n / vec, THREADS), maxBlocks);
            module.function(name).launch(stream, blocks, THREADS, 0, args);
        }
    }
}

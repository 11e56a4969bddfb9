package dev.jtune.engine.cuda;

import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.backend.Distribution;

import static dev.jtune.engine.cuda.KernelParam.F64;
import static dev.jtune.engine.cuda.KernelParam.I32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.LAYOUT;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.ALL_TYPES;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.names;

/** Typed launches of kernels/elementwise.cu: binary arithmetic, scale, strided copy/cast, accumulation, fill, random. */
public final class ElementwiseKernels {
    private static final int THREADS = 256;
    /** Elements per access of the chunked kernels (kernels/elementwise.cu's CHUNK). */
    static final int CHUNK = 8;

    /** kernels/elementwise.cu: CHUNK, the op and distribution codes (the enums' ordinals), CounterRng's constants, every kernel's parameters. */
    static final KernelSource SOURCE = KernelSource.builder("elementwise.cu")
            .define("CHUNK", CHUNK)
            .defineOrdinals("OP_", BinaryOp.values())
            .defineOrdinals("DIST_", Distribution.values())
            .defineBits("RNG_MIX_A", CounterRng.MIX_A)
            .defineBits("RNG_MIX_B", CounterRng.MIX_B)
            .defineBits("RNG_GAMMA", CounterRng.GAMMA)
            .kernels(names("binary_%s", FLOATS), I32, PTR, LAYOUT, PTR, LAYOUT, PTR, I64)
            .kernels(names("binary_chunks_%s", FLOATS), I32, PTR, LAYOUT, PTR, LAYOUT, PTR, I64)
            .kernels(names("scale_%s", FLOATS), PTR, LAYOUT, PTR, I64, F64)
            .kernels(names("scale_chunks_%s", FLOATS), PTR, LAYOUT, PTR, I64, F64)
            .kernels(names("random_%s", FLOATS), PTR, I64, I32, I64, F64, F64)
            .kernels(names("dropout_%s", FLOATS), PTR, PTR, I64, F64, I64)
            .kernels(names("softcap_%s", FLOATS), PTR, PTR, PTR, I64, F64)
            .kernels(names("softcap_backward_%s", FLOATS), PTR, PTR, PTR, I64, F64)
            .kernels(names("fill_%s", ALL_TYPES), PTR, I64, F64)
            .kernels(names("copy_%s_%s", ALL_TYPES, ALL_TYPES), PTR, LAYOUT, PTR, LAYOUT, I64)
            .kernels(names("copy_chunks_%s_%s", ALL_TYPES, ALL_TYPES), PTR, LAYOUT, PTR, LAYOUT, I64)
            .kernels(names("accumulate_%s_%s", FLOATS, FLOATS), PTR, LAYOUT, PTR, LAYOUT, I64)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;

    ElementwiseKernels(KernelCompiler compiler, CudaStream stream, CudaContext context) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 32;
    }

    void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
        Layouts lay = Layouts.of("binary", out, a, b);
        long[][] l = lay.layouts();
        try (KernelArgs args = new KernelArgs()) {
            args.i32(op.ordinal()).pointer(a.address()).layout(l[0], l[2]).pointer(b.address()).layout(l[0], l[3]);
            long n = StridedLayout.count(l[0]);
            args.pointer(out.address()).i64(n);
            launch(lay.kernel() + floatSuffix("binary", out.dtype()), n, args);
        }
    }

    void scale(Tensor a, double factor, Tensor out) {
        Layouts lay = Layouts.of("scale", out, a);
        long[][] l = lay.layouts();
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(a.address()).layout(l[0], l[2]);
            long n = StridedLayout.count(l[0]);
            args.pointer(out.address()).i64(n).f64(factor);
            launch(lay.kernel() + floatSuffix("scale", out.dtype()), n, args);
        }
    }

    void copy(Tensor src, Tensor dst) {
        Layouts lay = Layouts.of("copy", src, dst);
        long[][] l = lay.layouts();
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(src.address()).layout(l[0], l[1]).pointer(dst.address()).layout(l[0], l[2]);
            long n = StridedLayout.count(l[0]);
            args.i64(n);
            launch(lay.kernel() + suffix(src.dtype()) + "_" + suffix(dst.dtype()), n, args);
        }
    }

    /** dst += src converted to dst's dtype (per element: a gradient of a small weight, not worth the chunked form). */
    void accumulate(Tensor src, Tensor dst) {
        long[][] l = StridedLayout.coalesce(src, dst);
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(src.address()).layout(l[0], l[1]).pointer(dst.address()).layout(l[0], l[2]);
            long n = StridedLayout.count(l[0]);
            args.i64(n);
            launch("accumulate_" + floatSuffix("accumulate", src.dtype()) + "_" + floatSuffix("accumulate", dst.dtype()), n, args);
        }
    }

    /**
     * The coalesced layouts of an element-wise launch ({@link StridedLayout#coalesce} order: shape, then each tensor's
     * strides), in chunks of {@link #CHUNK} elements where {@link StridedLayout#chunked} allows, and the kernel name
     * prefix that goes with them ({@code base_chunks_} or {@code base_}).
     */
    private record Layouts(String kernel, long[][] layouts) {
        static Layouts of(String base, Tensor... tensors) {
            long[][] l = StridedLayout.coalesce(tensors);
            long[][] c = StridedLayout.chunked(l, CHUNK, tensors);
            return c != null ? new Layouts(base + "_chunks_", c) : new Layouts(base + "_", l);
        }
    }

    void fill(Tensor dst, double value) {
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(dst.address()).i64(dst.numel()).f64(value);
            launch("fill_" + suffix(dst.dtype()), dst.numel(), args);
        }
    }

    /** Soft-capping forward ({@code grad == null}: out = cap tanh(x / cap)) or backward (x is the output z). */
    public void softcap(Tensor x, Tensor grad, double cap, Tensor out) {
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(x.address()).pointer(grad == null ? 0L : grad.address()).pointer(out.address()).i64(out.numel()).f64(cap);
            launch((grad == null ? "softcap_" : "softcap_backward_") + floatSuffix("softcap", out.dtype()), out.numel(), args);
        }
    }

    public void dropout(Tensor x, double p, long seed, Tensor out) {
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(x.address()).pointer(out.address()).i64(out.numel()).f64(p).i64(seed);
            launch("dropout_" + floatSuffix("dropout", out.dtype()), out.numel(), args);
        }
    }

    void random(Tensor dst, Distribution distribution, long seed, double p0, double p1) {
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(dst.address()).i64(dst.numel()).i32(distribution.ordinal()).i64(seed).f64(p0).f64(p1);
            launch("random_" + floatSuffix("random", dst.dtype()), dst.numel(), args);
        }
    }

    private void launch(String kernel, long n, KernelArgs args) {
        long blocks = Math.min(Math.ceilDiv(n, THREADS), maxBlocks);
        module.function(kernel).launch(stream, blocks, THREADS, 0, args);
    }

    /** The kernels' name suffix for a dtype. */
    static String suffix(DType dtype) {
        return switch (dtype) {
            case F64 -> "f64";
            case F32 -> "f32";
            case BF16 -> "bf16";
            case F16 -> "f16";
            case I64 -> "i64";
            case I32 -> "i32";
            case U8 -> "u8";
            case NF4 -> throw new UnsupportedOpException("no element-wise kernel handles NF4 codes");
        };
    }

    static String floatSuffix(String op, DType dtype) {
        if (!dtype.isFloating()) {
            throw new UnsupportedOpException(op + ": the cuda kernels take F64, F32, BF16 or F16, not " + dtype);
        }
        return suffix(dtype);
    }

}

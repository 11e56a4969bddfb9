package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static dev.jtune.cuda.CudaException.check;
import static dev.jtune.engine.cuda.KernelParam.F32;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.VEC;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/nf4.cu: NF4 dequantization to BF16, F16 or F32. The kernels read their lookup tables
 * (the 16 NF4 code values, then the 256-entry dynamic map of the double quantization) from a small device buffer
 * that this class fills once from {@link Nf4}, so the tables have a single source.
 */
public final class Nf4Kernels {
    private static final int THREADS = 256;
    /** Elements per vectorised unit of work: 16 code bytes. */
    static final int CHUNK = 32;

    /**
     * kernels/nf4.cu: the block sizes of the format, where the dynamic map starts in the tables (after the code
     * values), the vectorised chunk, and the kernels' parameters.
     */
    static final KernelSource SOURCE = KernelSource.builder("nf4.cu")
            .define("NF4_BLOCK", Nf4Tensor.BLOCK)
            .define("NF4_BLOCK2", Nf4Tensor.BLOCK2)
            .define("NF4_CODES", Nf4.codes().length)
            .define("NF4_CHUNK", CHUNK)
            .kernels(names("dequantize_nf4_%s%s", List.of("f32", "bf16", "f16"), VEC), PTR, PTR, PTR, PTR, F32, PTR, PTR, I64)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final long maxBlocks;
    private final Block tables;

    public Nf4Kernels(KernelCompiler compiler, CudaStream stream, CudaContext context, CachingAllocator allocator) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.maxBlocks = (long) context.multiprocessors() * 8; // 8 x 256 threads: a full SM
        float[] codes = Nf4.codes();
        float[] dynamic = Nf4.dynamicMap();
        long bytes = (long) (codes.length + dynamic.length) * Float.BYTES;
        this.tables = allocator.allocate(bytes, MemoryCategory.WORKSPACE);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(bytes, 16);
            MemorySegment.copy(codes, 0, host, ValueLayout.JAVA_FLOAT, 0, codes.length);
            MemorySegment.copy(dynamic, 0, host, ValueLayout.JAVA_FLOAT, (long) codes.length * Float.BYTES, dynamic.length);
            check(CudaDriver.cuMemcpyHtoDAsync_v2(tables.address(), host, bytes, stream.handle()), "cuMemcpyHtoDAsync_v2");
            stream.synchronize(); // before the host buffer goes
        }
    }

    public void dequantizeNf4(Tensor codes, Tensor absmax, Tensor absmaxCodes, Tensor absmax2, float offset, Tensor out) {
        long n = out.numel();
        if (n == 0) {
            return;
        }
        String suffix = switch (out.dtype()) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            case F16 -> "f16";
            default -> throw new UnsupportedOpException("dequantizeNf4: the cuda kernels write BF16, F16 or F32, not " + out.describe());
        };
        boolean vec = vectorised(n, codes.address(), out.address());
        long units = vec ? n / CHUNK : n;
        long blocks = Math.max(1, Math.min(Math.ceilDiv(units, THREADS), maxBlocks));
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(codes.address())
                    .pointer(absmax == null ? 0 : absmax.address())
                    .pointer(absmaxCodes == null ? 0 : absmaxCodes.address())
                    .pointer(absmax2 == null ? 0 : absmax2.address())
                    .f32(offset)
                    .pointer(tables.address())
                    .pointer(out.address())
                    .i64(n);
            module.function("dequantize_nf4_" + suffix + (vec ? "_vec" : "")).launch(stream, blocks, THREADS, 0, args);
        }
    }

    /** Whether the vectorised kernel runs: at least one chunk, and codes and output 16-byte aligned (its accesses). */
    static boolean vectorised(long n, long codesAddress, long outAddress) {
        return n >= CHUNK && codesAddress % KernelSource.VECTOR_BYTES == 0 && outAddress % KernelSource.VECTOR_BYTES == 0;
    }
}

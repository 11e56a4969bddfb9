package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.memory.Block;
import dev.jtune.engine.memory.CachingAllocator;

import java.util.List;

import static dev.jtune.cuda.CudaException.check;
import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static dev.jtune.engine.cuda.KernelSource.FLOATS;
import static dev.jtune.engine.cuda.KernelSource.names;

/**
 * Typed launches of kernels/embedding.cu: the row gather and its deterministic backward (a stable counting sort
 * of the tokens by id in a scratch workspace, then one fp32 sum per distinct id and column).
 */
public final class EmbeddingKernels {
    private static final int THREADS = 256;
    /** Tokens per block of embedding_rank, and the shared tile it compares them in. */
    static final int RANK_TILE = 256;
    private static final int SCAN_THREADS = 1024;
    /** Row units of the gather kernels, in bytes: embedding_gather_2 ... _16. */
    static final List<String> GATHER_UNITS = List.of("2", "4", "8", "16");

    /** kernels/embedding.cu: RANK_TILE and the kernels' parameters. */
    static final KernelSource SOURCE = KernelSource.builder("embedding.cu")
            .define("RANK_TILE", RANK_TILE)
            .kernels(names("embedding_gather_%s", GATHER_UNITS), PTR, PTR, PTR, I64, I64, I64)
            .kernel("embedding_count", PTR, PTR, I64, I64)
            .kernel("embedding_scan", PTR, PTR, I64)
            .kernel("embedding_rank", PTR, PTR, PTR, I64, I64)
            .kernels(names("embedding_accumulate_%s_%s", FLOATS, FLOATS), PTR, PTR, PTR, PTR, PTR, PTR, I64, I64, I64)
            .build();

    private final CudaModule module;
    private final CudaStream stream;
    private final CachingAllocator allocator;
    private final long maxBlocks;

    public EmbeddingKernels(KernelCompiler compiler, CudaStream stream, CudaContext context, CachingAllocator allocator) {
        this.module = compiler.module(SOURCE);
        this.stream = stream;
        this.allocator = allocator;
        this.maxBlocks = (long) context.multiprocessors() * 32;
    }

    /** out[i, :] = table[ids[i], :]; rows move in the widest units of 16, 8, 4 or 2 bytes their alignment allows. */
    public void embedding(Tensor ids, Tensor table, Tensor out) {
        long n = ids.numel();
        long v = table.dim(0);
        long rowBytes = table.dtype().bytesFor(table.dim(1));
        if (n == 0 || rowBytes == 0) {
            return;
        }
        int unit = gatherUnit(rowBytes, table.address(), out.address());
        long units = rowBytes / unit;
        try (KernelArgs args = new KernelArgs()) {
            args.pointer(ids.address()).pointer(table.address()).pointer(out.address()).i64(n).i64(units).i64(v);
            long blocks = Math.min(Math.ceilDiv(n * units, THREADS), maxBlocks);
            module.function("embedding_gather_" + unit).launch(stream, blocks, THREADS, 0, args);
        }
    }

    /** The widest unit of 16, 8, 4 or 2 bytes dividing the row size and both addresses (tables' elements are 2+ bytes). */
    static int gatherUnit(long rowBytes, long tableAddress, long outAddress) {
        int unit = 16;
        while (unit > 2 && (rowBytes % unit != 0 || tableAddress % unit != 0 || outAddress % unit != 0)) {
            unit >>= 1;
        }
        return unit;
    }

    /**
     * Bytes of the scratch {@link #embeddingBackward} allocates for n tokens into a [v, d] table (0 when it allocates
     * none): counts [V], offsets [V + 1] and the sorted tokens [N], all int32. The one size rule of this launch and of
     * the meta backend's prediction.
     */
    public static long backwardWorkspaceBytes(long n, long v, long d) {
        return n == 0 || d == 0 ? 0 : 4L * (2 * v + 1 + n);
    }

    /** gradTable[v, :] += the sum, in ascending i and fp32, of gradOut[i, :] over the tokens i with id v. */
    public void embeddingBackward(Tensor ids, Tensor gradOut, Tensor gradTable) {
        long n = ids.numel();
        long v = gradTable.dim(0);
        long d = gradTable.dim(1);
        if (n == 0 || d == 0) {
            return;
        }
        DType g = gradOut.dtype();
        DType t = gradTable.dtype();
        if (n > Integer.MAX_VALUE || v > Integer.MAX_VALUE - 1) {
            throw new UnsupportedOpException("embeddingBackward: the cuda kernels index tokens and ids with 32-bit integers ("
                    + n + " tokens, " + v + " rows)");
        }
        String kernel = "embedding_accumulate_" + ElementwiseKernels.floatSuffix("embeddingBackward", g) + "_"
                + ElementwiseKernels.floatSuffix("embeddingBackward", t);
        Block scratch = allocator.allocate(backwardWorkspaceBytes(n, v, d), MemoryCategory.WORKSPACE);
        try {
            long counts = scratch.address();
            long offsets = counts + 4L * v;
            long sorted = offsets + 4L * (v + 1);
            check(CudaDriver.cuMemsetD32Async(counts, 0, v, stream.handle()), "cuMemsetD32Async");
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(ids.address()).pointer(counts).i64(n).i64(v);
                module.function("embedding_count").launch(stream, Math.min(Math.ceilDiv(n, THREADS), maxBlocks), THREADS, 0, args);
            }
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(counts).pointer(offsets).i64(v);
                module.function("embedding_scan").launch(stream, 1, SCAN_THREADS, 0, args);
            }
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(ids.address()).pointer(offsets).pointer(sorted).i64(n).i64(v);
                module.function("embedding_rank").launch(stream, Math.ceilDiv(n, RANK_TILE), RANK_TILE, 0, args);
            }
            try (KernelArgs args = new KernelArgs()) {
                args.pointer(ids.address()).pointer(sorted).pointer(offsets).pointer(counts)
                        .pointer(gradOut.address()).pointer(gradTable.address()).i64(n).i64(d).i64(v);
                long gridX = Math.min(n, maxBlocks * 4);
                long gridY = Math.min(Math.ceilDiv(d, THREADS), 65535);
                module.function(kernel).launch(stream, gridX, gridY, THREADS, 1, 0, args);
            }
        } finally {
            allocator.free(scratch); // stream order: later work that reuses the block runs after these kernels
        }
    }
}

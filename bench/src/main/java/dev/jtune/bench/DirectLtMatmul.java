package dev.jtune.bench;

import dev.jtune.cuda.Cublas;
import dev.jtune.cuda.CublasLt;
import dev.jtune.cuda.CudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.jtune.cuda.CudaException.check;
import static dev.jtune.cuda.CudaException.checkCublasLt;

/**
 * The baseline the engine's matmul is measured against: a square bf16 product (fp32 accumulation, bf16 out)
 * issued straight through the bindings to cuBLASLt, with no engine in between — its own buffers from
 * cuMemAlloc, one plan from the heuristic, the same 32 MiB workspace. The caller's context must be current.
 */
final class DirectLtMatmul implements AutoCloseable {
    private static final long WORKSPACE = 32L << 20;

    private final Arena arena = Arena.ofConfined();
    private final MemorySegment stream;
    private final long n;
    private final long a;
    private final long b;
    private final long c;
    private final long workspace;
    private final MemorySegment handle;
    private final MemorySegment desc;
    private final MemorySegment layout;
    private final MemorySegment algo;
    private final MemorySegment alpha;
    private final MemorySegment beta;

    /** Square n x n operands, filled from {@code init} (a, b as bf16 device buffers of the engine's tensors). */
    DirectLtMatmul(MemorySegment stream, long n, long srcA, long srcB) {
        this.stream = stream;
        this.n = n;
        long bytes = n * n * 2;
        this.a = malloc(bytes);
        this.b = malloc(bytes);
        this.c = malloc(bytes);
        this.workspace = malloc(WORKSPACE);
        check(CudaDriver.cuMemcpyDtoD_v2(a, srcA, bytes), "cuMemcpyDtoD_v2");
        check(CudaDriver.cuMemcpyDtoD_v2(b, srcB, bytes), "cuMemcpyDtoD_v2");
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        checkCublasLt(CublasLt.cublasLtCreate(out), "cublasLtCreate");
        handle = out.get(ValueLayout.ADDRESS, 0);
        checkCublasLt(CublasLt.cublasLtMatmulDescCreate(out, Cublas.CUBLAS_COMPUTE_32F, Cublas.CUDA_R_32F), "cublasLtMatmulDescCreate");
        desc = out.get(ValueLayout.ADDRESS, 0);
        checkCublasLt(CublasLt.cublasLtMatrixLayoutCreate(out, Cublas.CUDA_R_16BF, n, n, n), "cublasLtMatrixLayoutCreate");
        layout = out.get(ValueLayout.ADDRESS, 0);
        checkCublasLt(CublasLt.cublasLtMatmulPreferenceCreate(out), "cublasLtMatmulPreferenceCreate");
        MemorySegment pref = out.get(ValueLayout.ADDRESS, 0);
        checkCublasLt(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, CublasLt.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                arena.allocateFrom(ValueLayout.JAVA_LONG, WORKSPACE), 8L), "cublasLtMatmulPreferenceSetAttribute");
        algo = arena.allocate(CublasLt.cublasLtMatmulHeuristicResult_t.LAYOUT);
        MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
        checkCublasLt(CublasLt.cublasLtMatmulAlgoGetHeuristic(handle, desc, layout, layout, layout, layout, pref, 1, algo, count),
                "cublasLtMatmulAlgoGetHeuristic");
        checkCublasLt(CublasLt.cublasLtMatmulPreferenceDestroy(pref), "cublasLtMatmulPreferenceDestroy");
        if (count.get(ValueLayout.JAVA_INT, 0) == 0) {
            throw new IllegalStateException("cuBLASLt found no algorithm for a bf16 " + n + "^3 product");
        }
        alpha = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1f);
        beta = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 0f);
    }

    private long malloc(long bytes) {
        MemorySegment out = arena.allocate(ValueLayout.JAVA_LONG);
        check(CudaDriver.cuMemAlloc_v2(out, bytes), "cuMemAlloc_v2");
        return out.get(ValueLayout.JAVA_LONG, 0);
    }

    /** Queues one product on the stream. */
    void run() {
        checkCublasLt(CublasLt.cublasLtMatmul(handle, desc, alpha, MemorySegment.ofAddress(b), layout,
                MemorySegment.ofAddress(a), layout, beta, MemorySegment.ofAddress(c), layout,
                MemorySegment.ofAddress(c), layout, algo, MemorySegment.ofAddress(workspace), WORKSPACE, stream), "cublasLtMatmul");
    }

    /** The product's device pointer (row-major [n, n] bf16), for checking it against the engine's. */
    long result() {
        return c;
    }

    @Override
    public void close() {
        checkCublasLt(CublasLt.cublasLtMatrixLayoutDestroy(layout), "cublasLtMatrixLayoutDestroy");
        checkCublasLt(CublasLt.cublasLtMatmulDescDestroy(desc), "cublasLtMatmulDescDestroy");
        checkCublasLt(CublasLt.cublasLtDestroy(handle), "cublasLtDestroy");
        for (long p : new long[] {a, b, c, workspace}) {
            check(CudaDriver.cuMemFree_v2(p), "cuMemFree_v2");
        }
        arena.close();
    }
}

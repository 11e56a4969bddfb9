package dev.jtune.cuda;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static dev.jtune.cuda.CudaException.check;
import static dev.jtune.cuda.CudaException.checkCublasLt;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * cuBLASLt bf16 matrix products chosen by the heuristic, against a Java reference. The inputs are small
 * integers, exact in bf16, whose products sum exactly in fp32: the results must match bit for bit.
 */
@Tag("gpu")
class CublasLtGpuTest {
    private static final long WORKSPACE_BYTES = 32L << 20;
    private static MemorySegment handle;
    private static MemorySegment stream;
    private static long workspace;

    @BeforeAll
    static void create() {
        Gpu.makeCurrent();
        System.out.println(NativeLibraries.describe(CudaLibrary.CUBLAS_LT));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            checkCublasLt(CublasLt.cublasLtCreate(out), "cublasLtCreate");
            handle = out.get(ADDRESS, 0);
        }
        stream = Gpu.createStream();
        workspace = Gpu.malloc(WORKSPACE_BYTES);
    }

    @AfterAll
    static void destroy() {
        Gpu.makeCurrent();
        checkCublasLt(CublasLt.cublasLtDestroy(handle), "cublasLtDestroy");
        check(CudaDriver.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2");
        Gpu.free(workspace);
    }

    @BeforeEach
    void current() {
        Gpu.makeCurrent();
    }

    static short bf16(float f) {
        return (short) (Float.floatToRawIntBits(f) >>> 16); // exact for the small integers used here
    }

    static float[] smallIntegers(int n, Random random) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = random.nextInt(7) - 3;
        }
        return a;
    }

    static long uploadBf16(Arena arena, float[] values) {
        MemorySegment host = arena.allocate(JAVA_SHORT, values.length);
        for (int i = 0; i < values.length; i++) {
            host.setAtIndex(JAVA_SHORT, i, bf16(values[i]));
        }
        long device = Gpu.malloc(host.byteSize());
        Gpu.upload(device, host);
        return device;
    }

    static void setInt(Arena arena, MemorySegment desc, int attribute, int value, boolean layout) {
        MemorySegment buf = arena.allocateFrom(JAVA_INT, value);
        checkCublasLt(layout ? CublasLt.cublasLtMatrixLayoutSetAttribute(desc, attribute, buf, 4L)
                : CublasLt.cublasLtMatmulDescSetAttribute(desc, attribute, buf, 4L), "set attribute " + attribute);
    }

    static MemorySegment layout(Arena arena, int type, long rows, long cols, long ld) {
        MemorySegment out = arena.allocate(ADDRESS);
        checkCublasLt(CublasLt.cublasLtMatrixLayoutCreate(out, type, rows, cols, ld), "cublasLtMatrixLayoutCreate");
        return out.get(ADDRESS, 0);
    }

    /** Asks the heuristic for up to 4 algorithms and returns the best one's result (algo first). */
    static MemorySegment heuristic(Arena arena, MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment d) {
        MemorySegment out = arena.allocate(ADDRESS);
        checkCublasLt(CublasLt.cublasLtMatmulPreferenceCreate(out), "cublasLtMatmulPreferenceCreate");
        MemorySegment pref = out.get(ADDRESS, 0);
        try {
            checkCublasLt(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, CublasLt.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    arena.allocateFrom(JAVA_LONG, WORKSPACE_BYTES), 8L), "cublasLtMatmulPreferenceSetAttribute");
            MemorySegment results = CublasLt.cublasLtMatmulHeuristicResult_t.allocateArray(4, arena);
            MemorySegment count = arena.allocate(JAVA_INT);
            checkCublasLt(CublasLt.cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, d, d, pref, 4, results, count),
                    "cublasLtMatmulAlgoGetHeuristic");
            assertTrue(count.get(JAVA_INT, 0) >= 1, "no algorithm");
            MemorySegment best = CublasLt.cublasLtMatmulHeuristicResult_t.asSlice(results, 0);
            assertEquals(Cublas.CUBLAS_STATUS_SUCCESS, CublasLt.cublasLtMatmulHeuristicResult_t.state(best));
            assertTrue(CublasLt.cublasLtMatmulHeuristicResult_t.workspaceSize(best) <= WORKSPACE_BYTES);
            System.out.printf("cuBLASLt: %d algorithms, best needs %d bytes of workspace, %.3f waves%n", count.get(JAVA_INT, 0),
                    CublasLt.cublasLtMatmulHeuristicResult_t.workspaceSize(best),
                    CublasLt.cublasLtMatmulHeuristicResult_t.wavesCount(best));
            return best;
        } finally {
            checkCublasLt(CublasLt.cublasLtMatmulPreferenceDestroy(pref), "cublasLtMatmulPreferenceDestroy");
        }
    }

    @Test
    void versionAndStatusNames() {
        long version = CublasLt.cublasLtGetVersion();
        System.out.println("cuBLASLt version " + version);
        assertTrue(version >= 130000, "version " + version);
        assertEquals("CUBLAS_STATUS_ALLOC_FAILED",
                CublasLt.cublasLtGetStatusName(Cublas.CUBLAS_STATUS_ALLOC_FAILED).reinterpret(Long.MAX_VALUE).getString(0));
        assertTrue(statusException(Cublas.CUBLAS_STATUS_ALLOC_FAILED).getMessage()
                .startsWith("cublasLtMatmul failed: CUBLAS_STATUS_ALLOC_FAILED (3): "));
    }

    private static CudaException statusException(int status) {
        try {
            checkCublasLt(status, "cublasLtMatmul");
            throw new AssertionError("no exception");
        } catch (CudaException e) {
            return e;
        }
    }

    @Test
    void bf16MatmulTransposedAWithBiasEpilogue() {
        int m = 64, n = 48, k = 96;
        Random random = Seeds.random(5);
        float[] a = smallIntegers(k * m, random); // stored k x m column-major; op(A) = A^T
        float[] b = smallIntegers(k * n, random); // k x n column-major
        float[] bias = smallIntegers(m, random);
        try (Arena arena = Arena.ofConfined()) {
            long da = uploadBf16(arena, a);
            long db = uploadBf16(arena, b);
            long dd = Gpu.malloc(4L * m * n);
            long dbias = Gpu.malloc(4L * m);
            Gpu.upload(dbias, arena.allocateFrom(JAVA_FLOAT, bias));
            MemorySegment out = arena.allocate(ADDRESS);
            checkCublasLt(CublasLt.cublasLtMatmulDescCreate(out, Cublas.CUBLAS_COMPUTE_32F, Cublas.CUDA_R_32F), "cublasLtMatmulDescCreate");
            MemorySegment desc = out.get(ADDRESS, 0);
            MemorySegment la = layout(arena, Cublas.CUDA_R_16BF, k, m, k);
            MemorySegment lb = layout(arena, Cublas.CUDA_R_16BF, k, n, k);
            MemorySegment ld = layout(arena, Cublas.CUDA_R_32F, m, n, m);
            try {
                setInt(arena, desc, CublasLt.CUBLASLT_MATMUL_DESC_TRANSA, Cublas.CUBLAS_OP_T, false);
                setInt(arena, desc, CublasLt.CUBLASLT_MATMUL_DESC_TRANSB, Cublas.CUBLAS_OP_N, false);
                setInt(arena, desc, CublasLt.CUBLASLT_MATMUL_DESC_EPILOGUE, CublasLt.CUBLASLT_EPILOGUE_BIAS, false);
                checkCublasLt(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                        arena.allocateFrom(JAVA_LONG, dbias), 8L), "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
                MemorySegment readBack = arena.allocate(JAVA_INT);
                MemorySegment written = arena.allocate(JAVA_LONG);
                checkCublasLt(CublasLt.cublasLtMatmulDescGetAttribute(desc, CublasLt.CUBLASLT_MATMUL_DESC_TRANSA, readBack, 4L, written),
                        "cublasLtMatmulDescGetAttribute");
                assertEquals(Cublas.CUBLAS_OP_T, readBack.get(JAVA_INT, 0));
                assertEquals(4L, written.get(JAVA_LONG, 0));

                MemorySegment best = heuristic(arena, desc, la, lb, ld);
                checkCublasLt(CublasLt.cublasLtMatmul(handle, desc, arena.allocateFrom(JAVA_FLOAT, 1f),
                        MemorySegment.ofAddress(da), la, MemorySegment.ofAddress(db), lb, arena.allocateFrom(JAVA_FLOAT, 0f),
                        MemorySegment.ofAddress(dd), ld, MemorySegment.ofAddress(dd), ld,
                        CublasLt.cublasLtMatmulHeuristicResult_t.algo(best), MemorySegment.ofAddress(workspace), WORKSPACE_BYTES, stream),
                        "cublasLtMatmul");
                check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
                float[] actual = Gpu.download(dd, 4L * m * n, arena).toArray(JAVA_FLOAT);
                for (int j = 0; j < n; j++) {
                    for (int i = 0; i < m; i++) {
                        float sum = 0;
                        for (int p = 0; p < k; p++) {
                            sum += a[p + i * k] * b[p + j * k];
                        }
                        assertEquals(sum + bias[i], actual[i + j * m], "D[" + i + "," + j + "]");
                    }
                }
            } finally {
                checkCublasLt(CublasLt.cublasLtMatrixLayoutDestroy(la), "cublasLtMatrixLayoutDestroy");
                checkCublasLt(CublasLt.cublasLtMatrixLayoutDestroy(lb), "cublasLtMatrixLayoutDestroy");
                checkCublasLt(CublasLt.cublasLtMatrixLayoutDestroy(ld), "cublasLtMatrixLayoutDestroy");
                checkCublasLt(CublasLt.cublasLtMatmulDescDestroy(desc), "cublasLtMatmulDescDestroy");
                for (long p : new long[] {da, db, dd, dbias}) {
                    Gpu.free(p);
                }
            }
        }
    }

    @Test
    void bf16RowMajorStridedBatch() {
        int m = 40, n = 56, k = 72, batch = 3;
        long strideA = (long) m * k, strideB = (long) k * n, strideD = (long) m * n;
        Random random = Seeds.random(9);
        float[] a = smallIntegers((int) (strideA * batch), random); // row-major m x k
        float[] b = smallIntegers((int) (strideB * batch), random); // row-major k x n
        try (Arena arena = Arena.ofConfined()) {
            long da = uploadBf16(arena, a);
            long db = uploadBf16(arena, b);
            long dd = Gpu.malloc(4L * strideD * batch);
            MemorySegment out = arena.allocate(ADDRESS);
            checkCublasLt(CublasLt.cublasLtMatmulDescCreate(out, Cublas.CUBLAS_COMPUTE_32F, Cublas.CUDA_R_32F), "cublasLtMatmulDescCreate");
            MemorySegment desc = out.get(ADDRESS, 0);
            MemorySegment la = layout(arena, Cublas.CUDA_R_16BF, m, k, k);
            MemorySegment lb = layout(arena, Cublas.CUDA_R_16BF, k, n, n);
            MemorySegment ld = layout(arena, Cublas.CUDA_R_32F, m, n, n);
            try {
                long[] strides = {strideA, strideB, strideD};
                MemorySegment[] layouts = {la, lb, ld};
                for (int i = 0; i < 3; i++) {
                    setInt(arena, layouts[i], CublasLt.CUBLASLT_MATRIX_LAYOUT_ORDER, CublasLt.CUBLASLT_ORDER_ROW, true);
                    setInt(arena, layouts[i], CublasLt.CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, batch, true);
                    checkCublasLt(CublasLt.cublasLtMatrixLayoutSetAttribute(layouts[i], CublasLt.CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                            arena.allocateFrom(JAVA_LONG, strides[i]), 8L), "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)");
                }
                setInt(arena, desc, CublasLt.CUBLASLT_MATMUL_DESC_EPILOGUE, CublasLt.CUBLASLT_EPILOGUE_DEFAULT, false);
                MemorySegment best = heuristic(arena, desc, la, lb, ld);
                // keep only the 64-byte algorithm, as a caller caching plans would
                MemorySegment algo = CublasLt.cublasLtMatmulAlgo_t.allocate(arena);
                MemorySegment.copy(CublasLt.cublasLtMatmulHeuristicResult_t.algo(best), 0, algo, 0, CublasLt.cublasLtMatmulAlgo_t.sizeof());
                checkCublasLt(CublasLt.cublasLtMatmul(handle, desc, arena.allocateFrom(JAVA_FLOAT, 1f),
                        MemorySegment.ofAddress(da), la, MemorySegment.ofAddress(db), lb, arena.allocateFrom(JAVA_FLOAT, 0f),
                        MemorySegment.ofAddress(dd), ld, MemorySegment.ofAddress(dd), ld,
                        algo, MemorySegment.ofAddress(workspace), WORKSPACE_BYTES, stream), "cublasLtMatmul");
                check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
                float[] actual = Gpu.download(dd, 4L * strideD * batch, arena).toArray(JAVA_FLOAT);
                for (int g = 0; g < batch; g++) {
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            float sum = 0;
                            for (int p = 0; p < k; p++) {
                                sum += a[(int) (g * strideA) + i * k + p] * b[(int) (g * strideB) + p * n + j];
                            }
                            assertEquals(sum, actual[(int) (g * strideD) + i * n + j], "D" + g + "[" + i + "," + j + "]");
                        }
                    }
                }
            } finally {
                for (MemorySegment l : new MemorySegment[] {la, lb, ld}) {
                    checkCublasLt(CublasLt.cublasLtMatrixLayoutDestroy(l), "cublasLtMatrixLayoutDestroy");
                }
                checkCublasLt(CublasLt.cublasLtMatmulDescDestroy(desc), "cublasLtMatmulDescDestroy");
                for (long p : new long[] {da, db, dd}) {
                    Gpu.free(p);
                }
            }
        }
    }
}

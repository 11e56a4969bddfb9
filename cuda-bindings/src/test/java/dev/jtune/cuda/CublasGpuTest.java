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
import static dev.jtune.cuda.CudaException.checkCublas;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** cuBLAS GEMMs against a plain Java reference (column-major, as cuBLAS is). */
@Tag("gpu")
class CublasGpuTest {
    private static MemorySegment handle;
    private static MemorySegment stream;
    private static long workspace;
    private static final long WORKSPACE_BYTES = 4 << 20;

    @BeforeAll
    static void create() {
        Gpu.makeCurrent();
        System.out.println(NativeLibraries.describe(CudaLibrary.CUBLAS));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            checkCublas(Cublas.cublasCreate_v2(out), "cublasCreate_v2");
            handle = out.get(ADDRESS, 0);
        }
        stream = Gpu.createStream();
        workspace = Gpu.malloc(WORKSPACE_BYTES);
        checkCublas(Cublas.cublasSetStream_v2(handle, stream), "cublasSetStream_v2");
        checkCublas(Cublas.cublasSetWorkspace_v2(handle, MemorySegment.ofAddress(workspace), WORKSPACE_BYTES), "cublasSetWorkspace_v2");
        checkCublas(Cublas.cublasSetMathMode(handle, Cublas.CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
        checkCublas(Cublas.cublasSetPointerMode_v2(handle, Cublas.CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode_v2");
    }

    @AfterAll
    static void destroy() {
        Gpu.makeCurrent();
        checkCublas(Cublas.cublasDestroy_v2(handle), "cublasDestroy_v2");
        check(CudaDriver.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2");
        Gpu.free(workspace);
    }

    @BeforeEach
    void current() {
        Gpu.makeCurrent();
    }

    @Test
    void handleQueries() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(JAVA_INT);
            checkCublas(Cublas.cublasGetVersion_v2(handle, version), "cublasGetVersion_v2");
            System.out.println("cuBLAS version " + version.get(JAVA_INT, 0));
            assertTrue(version.get(JAVA_INT, 0) >= 130000, "version " + version.get(JAVA_INT, 0));
            MemorySegment s = arena.allocate(ADDRESS);
            checkCublas(Cublas.cublasGetStream_v2(handle, s), "cublasGetStream_v2");
            assertEquals(stream.address(), s.get(ADDRESS, 0).address());
            MemorySegment mode = arena.allocate(JAVA_INT);
            checkCublas(Cublas.cublasGetMathMode(handle, mode), "cublasGetMathMode");
            assertEquals(Cublas.CUBLAS_DEFAULT_MATH, mode.get(JAVA_INT, 0));
        }
        assertEquals("CUBLAS_STATUS_NOT_SUPPORTED",
                Cublas.cublasGetStatusName(Cublas.CUBLAS_STATUS_NOT_SUPPORTED).reinterpret(Long.MAX_VALUE).getString(0));
        CudaException e = assertThrows(CudaException.class, () -> checkCublas(Cublas.CUBLAS_STATUS_INVALID_VALUE, "cublasGemmEx"));
        assertTrue(e.getMessage().startsWith("cublasGemmEx failed: CUBLAS_STATUS_INVALID_VALUE (7): "), e.getMessage());
        // a real failure: a negative dimension
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment one = arena.allocateFrom(JAVA_FLOAT, 1f);
            int rc = Cublas.cublasGemmEx(handle, Cublas.CUBLAS_OP_N, Cublas.CUBLAS_OP_N, -1, 1, 1, one,
                    MemorySegment.NULL, Cublas.CUDA_R_32F, 1, MemorySegment.NULL, Cublas.CUDA_R_32F, 1, one,
                    MemorySegment.NULL, Cublas.CUDA_R_32F, 1, Cublas.CUBLAS_COMPUTE_32F, Cublas.CUBLAS_GEMM_DEFAULT);
            assertEquals(Cublas.CUBLAS_STATUS_INVALID_VALUE, rc);
        }
    }

    static float[] random(int n, Random random) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = random.nextFloat() * 2 - 1;
        }
        return a;
    }

    /** C = alpha * op(A) * op(B) + beta * C, column-major, in double. */
    static double[] reference(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int lda, int aOff,
                              float[] b, int ldb, int bOff, float beta, float[] c, int ldc, int cOff) {
        double[] out = new double[m * n];
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                double sum = 0;
                for (int p = 0; p < k; p++) {
                    double av = transA ? a[aOff + p + i * lda] : a[aOff + i + p * lda];
                    double bv = transB ? b[bOff + j + p * ldb] : b[bOff + p + j * ldb];
                    sum += av * bv;
                }
                out[i + j * m] = alpha * sum + beta * c[cOff + i + j * ldc];
            }
        }
        return out;
    }

    @Test
    void gemmExFloat() {
        int m = 67, n = 45, k = 129;
        Random random = Seeds.random(7);
        float[] a = random(k * m, random); // op(A) = A^T: A is k x m, lda = k
        float[] b = random(k * n, random); // B is k x n, ldb = k
        float[] c = random(m * n, random);
        double[] expected = reference(true, false, m, n, k, 1.5f, a, k, 0, b, k, 0, 0.25f, c, m, 0);
        long da = Gpu.malloc(4L * a.length);
        long db = Gpu.malloc(4L * b.length);
        long dc = Gpu.malloc(4L * c.length);
        try (Arena arena = Arena.ofConfined()) {
            Gpu.upload(da, arena.allocateFrom(JAVA_FLOAT, a));
            Gpu.upload(db, arena.allocateFrom(JAVA_FLOAT, b));
            Gpu.upload(dc, arena.allocateFrom(JAVA_FLOAT, c));
            checkCublas(Cublas.cublasGemmEx(handle, Cublas.CUBLAS_OP_T, Cublas.CUBLAS_OP_N, m, n, k,
                    arena.allocateFrom(JAVA_FLOAT, 1.5f), MemorySegment.ofAddress(da), Cublas.CUDA_R_32F, k,
                    MemorySegment.ofAddress(db), Cublas.CUDA_R_32F, k, arena.allocateFrom(JAVA_FLOAT, 0.25f),
                    MemorySegment.ofAddress(dc), Cublas.CUDA_R_32F, m, Cublas.CUBLAS_COMPUTE_32F, Cublas.CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx");
            check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
            float[] actual = Gpu.download(dc, 4L * c.length, arena).toArray(JAVA_FLOAT);
            for (int i = 0; i < expected.length; i++) {
                assertEquals(expected[i], actual[i], 1e-4 * (1 + Math.abs(expected[i])), "C[" + i + "]");
            }
        } finally {
            Gpu.free(da);
            Gpu.free(db);
            Gpu.free(dc);
        }
    }

    @Test
    void gemmExDouble() {
        int m = 16, n = 8, k = 32;
        Random random = Seeds.random(11);
        double[] a = new double[m * k];
        double[] b = new double[k * n];
        for (int i = 0; i < a.length; i++) {
            a[i] = random.nextDouble();
        }
        for (int i = 0; i < b.length; i++) {
            b[i] = random.nextDouble();
        }
        long da = Gpu.malloc(8L * a.length);
        long db = Gpu.malloc(8L * b.length);
        long dc = Gpu.malloc(8L * m * n);
        try (Arena arena = Arena.ofConfined()) {
            Gpu.upload(da, arena.allocateFrom(JAVA_DOUBLE, a));
            Gpu.upload(db, arena.allocateFrom(JAVA_DOUBLE, b));
            checkCublas(Cublas.cublasGemmEx(handle, Cublas.CUBLAS_OP_N, Cublas.CUBLAS_OP_N, m, n, k,
                    arena.allocateFrom(JAVA_DOUBLE, 1.0), MemorySegment.ofAddress(da), Cublas.CUDA_R_64F, m,
                    MemorySegment.ofAddress(db), Cublas.CUDA_R_64F, k, arena.allocateFrom(JAVA_DOUBLE, 0.0),
                    MemorySegment.ofAddress(dc), Cublas.CUDA_R_64F, m, Cublas.CUBLAS_COMPUTE_64F, Cublas.CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx(f64)");
            check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
            double[] actual = Gpu.download(dc, 8L * m * n, arena).toArray(JAVA_DOUBLE);
            for (int j = 0; j < n; j++) {
                for (int i = 0; i < m; i++) {
                    double sum = 0;
                    for (int p = 0; p < k; p++) {
                        sum += a[i + p * m] * b[p + j * k];
                    }
                    assertEquals(sum, actual[i + j * m], 1e-12 * k);
                }
            }
        } finally {
            Gpu.free(da);
            Gpu.free(db);
            Gpu.free(dc);
        }
    }

    @Test
    void gemmStridedBatchedEx() {
        int m = 32, n = 24, k = 40, batch = 3;
        long strideA = (long) m * k + 8, strideB = (long) k * n, strideC = (long) m * n;
        Random random = Seeds.random(3);
        float[] a = random((int) (strideA * batch), random);
        float[] b = random((int) (strideB * batch), random);
        float[] c = new float[(int) (strideC * batch)];
        long da = Gpu.malloc(4L * a.length);
        long db = Gpu.malloc(4L * b.length);
        long dc = Gpu.malloc(4L * c.length);
        try (Arena arena = Arena.ofConfined()) {
            Gpu.upload(da, arena.allocateFrom(JAVA_FLOAT, a));
            Gpu.upload(db, arena.allocateFrom(JAVA_FLOAT, b));
            checkCublas(Cublas.cublasGemmStridedBatchedEx(handle, Cublas.CUBLAS_OP_N, Cublas.CUBLAS_OP_T, m, n, k,
                    arena.allocateFrom(JAVA_FLOAT, 1f), MemorySegment.ofAddress(da), Cublas.CUDA_R_32F, m, strideA,
                    MemorySegment.ofAddress(db), Cublas.CUDA_R_32F, n, strideB, arena.allocateFrom(JAVA_FLOAT, 0f),
                    MemorySegment.ofAddress(dc), Cublas.CUDA_R_32F, m, strideC, batch,
                    Cublas.CUBLAS_COMPUTE_32F, Cublas.CUBLAS_GEMM_DEFAULT), "cublasGemmStridedBatchedEx");
            check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
            float[] actual = Gpu.download(dc, 4L * c.length, arena).toArray(JAVA_FLOAT);
            for (int g = 0; g < batch; g++) {
                // op(B) = B^T: B is n x k with ldb = n
                double[] expected = reference(false, true, m, n, k, 1f, a, m, (int) (g * strideA), b, n, (int) (g * strideB),
                        0f, c, m, (int) (g * strideC));
                for (int i = 0; i < expected.length; i++) {
                    assertEquals(expected[i], actual[(int) (g * strideC) + i], 1e-4 * (1 + Math.abs(expected[i])),
                            "batch " + g + " C[" + i + "]");
                }
            }
        } finally {
            Gpu.free(da);
            Gpu.free(db);
            Gpu.free(dc);
        }
    }
}

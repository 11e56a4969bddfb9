package dev.jtune.cuda;

import dev.jtune.JtuneException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The checkers, with or without the libraries: names fall back to the bindings' constants. */
class CudaExceptionTest {
    @Test
    void successReturnsNormally() {
        assertDoesNotThrow(() -> CudaException.check(CudaDriver.CUDA_SUCCESS, "cuInit"));
        assertDoesNotThrow(() -> CudaException.checkNvrtc(Nvrtc.NVRTC_SUCCESS, "nvrtcCompileProgram"));
        assertDoesNotThrow(() -> CudaException.checkCublas(Cublas.CUBLAS_STATUS_SUCCESS, "cublasGemmEx"));
        assertDoesNotThrow(() -> CudaException.checkCublasLt(Cublas.CUBLAS_STATUS_SUCCESS, "cublasLtMatmul"));
        assertDoesNotThrow(() -> CudaException.checkNccl(Nccl.ncclSuccess, "ncclAllReduce"));
    }

    /** NCCL's result names come from ncclResult_t alone (its data types and operations share the prefix and values). */
    @Test
    void nccl() {
        CudaException e = assertThrows(CudaException.class, () -> CudaException.checkNccl(Nccl.ncclRemoteError, "rank 1: ncclAllReduce"));
        assertEquals(CudaLibrary.NCCL, e.library());
        assertEquals("ncclRemoteError", e.errorName());
        assertFalse(e.isOutOfMemory());
        assertTrue(e.getMessage().startsWith("rank 1: ncclAllReduce failed: ncclRemoteError (6)"), e.getMessage());
        assertEquals("ncclSystemError", assertThrows(CudaException.class, () -> CudaException.checkNccl(2, "ncclCommInitRankConfig")).errorName());
        assertNull(assertThrows(CudaException.class, () -> CudaException.checkNccl(99, "ncclGroupEnd")).errorName());
    }

    @Test
    void driverOutOfMemory() {
        CudaException e = assertThrows(CudaException.class, () -> CudaException.check(2, "cuMemAlloc_v2"));
        assertEquals(CudaLibrary.DRIVER, e.library());
        assertEquals("cuMemAlloc_v2", e.function());
        assertEquals(2, e.code());
        assertEquals("CUDA_ERROR_OUT_OF_MEMORY", e.errorName());
        assertTrue(e.isOutOfMemory());
        // with a driver: "...: out of memory"; without one the text is left out
        assertTrue(e.getMessage().startsWith("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2)"), e.getMessage());
        if (NativeLibraries.isAvailable(CudaLibrary.DRIVER)) {
            assertEquals("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory", e.getMessage());
        } else {
            assertNull(e.errorText());
            assertEquals("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2)", e.getMessage());
        }
    }

    @Test
    void everyErrorIsAJtuneExceptionAndOnlyOutOfMemoryCarriesAHint() {
        for (CudaException e : new CudaException[] {
                assertThrows(CudaException.class, () -> CudaException.check(2, "cuMemAlloc_v2")),
                assertThrows(CudaException.class, () -> CudaException.checkNvrtc(Nvrtc.NVRTC_ERROR_OUT_OF_MEMORY, "nvrtcCompileProgram")),
                assertThrows(CudaException.class, () -> CudaException.checkCublasLt(Cublas.CUBLAS_STATUS_ALLOC_FAILED, "cublasLtMatmul"))}) {
            assertInstanceOf(JtuneException.class, e);
            assertTrue(e.isOutOfMemory(), e.getMessage());
            assertEquals(CudaException.OUT_OF_MEMORY_HINT, e.hint().orElseThrow(), e.getMessage());
            assertTrue(e.hint().orElseThrow().contains("--gradient_checkpointing"), e.hint().orElseThrow());
        }
        CudaException other = assertThrows(CudaException.class, () -> CudaException.check(CudaDriver.CUDA_ERROR_NOT_READY, "cuEventQuery"));
        assertTrue(other.hint().isEmpty(), other.getMessage());
    }

    @Test
    void driverOtherError() {
        CudaException e = assertThrows(CudaException.class, () -> CudaException.check(CudaDriver.CUDA_ERROR_NOT_READY, "cuEventQuery"));
        assertEquals("CUDA_ERROR_NOT_READY", e.errorName());
        assertFalse(e.isOutOfMemory());
    }

    @Test
    void unknownDriverCode() {
        CudaException e = assertThrows(CudaException.class, () -> CudaException.check(123456, "cuSomething"));
        assertNull(e.errorName());
        assertTrue(e.getMessage().startsWith("cuSomething failed: error (123456)"), e.getMessage());
    }

    @Test
    void nvrtc() {
        CudaException e = assertThrows(CudaException.class, () -> CudaException.checkNvrtc(6, "nvrtcCompileProgram"));
        assertEquals(CudaLibrary.NVRTC, e.library());
        assertEquals("NVRTC_ERROR_COMPILATION", e.errorName());
        assertEquals("nvrtcCompileProgram failed: NVRTC_ERROR_COMPILATION (6)", e.getMessage());
        assertTrue(assertThrows(CudaException.class, () -> CudaException.checkNvrtc(1, "nvrtcCreateProgram")).isOutOfMemory());
    }

    @Test
    void cublas() {
        CudaException e = assertThrows(CudaException.class, () -> CudaException.checkCublas(3, "cublasCreate_v2"));
        assertEquals(CudaLibrary.CUBLAS, e.library());
        assertEquals("CUBLAS_STATUS_ALLOC_FAILED", e.errorName());
        assertTrue(e.isOutOfMemory());
        assertTrue(e.getMessage().startsWith("cublasCreate_v2 failed: CUBLAS_STATUS_ALLOC_FAILED (3)"), e.getMessage());
    }

    @Test
    void cublasLt() {
        CudaException e = assertThrows(CudaException.class, () -> CudaException.checkCublasLt(15, "cublasLtMatmul"));
        assertEquals(CudaLibrary.CUBLAS_LT, e.library());
        assertEquals("CUBLAS_STATUS_NOT_SUPPORTED", e.errorName());
        assertFalse(e.isOutOfMemory());
    }
}

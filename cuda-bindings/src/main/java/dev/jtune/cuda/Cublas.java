package dev.jtune.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLAS: {@code cublas_api.h} (CUDA 13), loaded from {@code libcublas.so.13} by {@link NativeLibraries}.
 * <p>
 * Hand-written in jextract's shape (see {@link CudaDriver} for the type mapping); the {@code _v2} names are the
 * exported symbols that {@code cublas_v2.h} maps the plain names to. Results are the raw
 * {@code cublasStatus_t}: pass them to {@link CudaException#checkCublas(int, String)}. The {@code cudaDataType}
 * values live here too, for cuBLAS and cuBLASLt alike. No logic lives here.
 */
public final class Cublas {
    private Cublas() {
    }

    private static final CudaLibrary LIBRARY = CudaLibrary.CUBLAS;

    // cublasStatus_t (shared by cuBLASLt)
    public static final int CUBLAS_STATUS_SUCCESS = 0;
    public static final int CUBLAS_STATUS_NOT_INITIALIZED = 1;
    public static final int CUBLAS_STATUS_ALLOC_FAILED = 3;
    public static final int CUBLAS_STATUS_INVALID_VALUE = 7;
    public static final int CUBLAS_STATUS_ARCH_MISMATCH = 8;
    public static final int CUBLAS_STATUS_MAPPING_ERROR = 11;
    public static final int CUBLAS_STATUS_EXECUTION_FAILED = 13;
    public static final int CUBLAS_STATUS_INTERNAL_ERROR = 14;
    public static final int CUBLAS_STATUS_NOT_SUPPORTED = 15;
    public static final int CUBLAS_STATUS_LICENSE_ERROR = 16;

    // cublasOperation_t
    public static final int CUBLAS_OP_N = 0;
    public static final int CUBLAS_OP_T = 1;
    public static final int CUBLAS_OP_C = 2;

    // cublasPointerMode_t
    public static final int CUBLAS_POINTER_MODE_HOST = 0;
    public static final int CUBLAS_POINTER_MODE_DEVICE = 1;

    // cublasGemmAlgo_t
    public static final int CUBLAS_GEMM_DEFAULT = -1;
    public static final int CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99;

    // cublasMath_t
    public static final int CUBLAS_DEFAULT_MATH = 0;
    public static final int CUBLAS_PEDANTIC_MATH = 2;
    public static final int CUBLAS_TF32_TENSOR_OP_MATH = 3;
    public static final int CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16;

    // cublasComputeType_t
    public static final int CUBLAS_COMPUTE_16F = 64;
    public static final int CUBLAS_COMPUTE_16F_PEDANTIC = 65;
    public static final int CUBLAS_COMPUTE_32F = 68;
    public static final int CUBLAS_COMPUTE_32F_PEDANTIC = 69;
    public static final int CUBLAS_COMPUTE_32F_FAST_16F = 74;
    public static final int CUBLAS_COMPUTE_32F_FAST_16BF = 75;
    public static final int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
    public static final int CUBLAS_COMPUTE_64F = 70;
    public static final int CUBLAS_COMPUTE_64F_PEDANTIC = 71;
    public static final int CUBLAS_COMPUTE_32I = 72;
    public static final int CUBLAS_COMPUTE_32I_PEDANTIC = 73;

    // cudaDataType (library_types.h), used by cuBLAS and cuBLASLt
    public static final int CUDA_R_32F = 0;
    public static final int CUDA_R_64F = 1;
    public static final int CUDA_R_16F = 2;
    public static final int CUDA_R_8I = 3;
    public static final int CUDA_R_8U = 8;
    public static final int CUDA_R_32I = 10;
    public static final int CUDA_R_16BF = 14;
    public static final int CUDA_R_8F_E4M3 = 28;
    public static final int CUDA_R_8F_E5M2 = 29;

    private static final class cublasCreate_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasCreate_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
     * }
     */
    public static int cublasCreate_v2(MemorySegment handle) {
        try {
            return (int) cublasCreate_v2$.HANDLE.invokeExact(handle);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasDestroy_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasDestroy_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
     * }
     */
    public static int cublasDestroy_v2(MemorySegment handle) {
        try {
            return (int) cublasDestroy_v2$.HANDLE.invokeExact(handle);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasGetVersion_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasGetVersion_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int *version)
     * }
     */
    public static int cublasGetVersion_v2(MemorySegment handle, MemorySegment version) {
        try {
            return (int) cublasGetVersion_v2$.HANDLE.invokeExact(handle, version);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasSetStream_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasSetStream_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
     * }
     */
    public static int cublasSetStream_v2(MemorySegment handle, MemorySegment streamId) {
        try {
            return (int) cublasSetStream_v2$.HANDLE.invokeExact(handle, streamId);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasGetStream_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasGetStream_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *streamId)
     * }
     */
    public static int cublasGetStream_v2(MemorySegment handle, MemorySegment streamId) {
        try {
            return (int) cublasGetStream_v2$.HANDLE.invokeExact(handle, streamId);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasSetWorkspace_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasSetWorkspace_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t workspaceSizeInBytes)
     * }
     */
    public static int cublasSetWorkspace_v2(MemorySegment handle, MemorySegment workspace, long workspaceSizeInBytes) {
        try {
            return (int) cublasSetWorkspace_v2$.HANDLE.invokeExact(handle, workspace, workspaceSizeInBytes);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasSetMathMode$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasSetMathMode",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
     * }
     */
    public static int cublasSetMathMode(MemorySegment handle, int mode) {
        try {
            return (int) cublasSetMathMode$.HANDLE.invokeExact(handle, mode);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasGetMathMode$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasGetMathMode",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode)
     * }
     */
    public static int cublasGetMathMode(MemorySegment handle, MemorySegment mode) {
        try {
            return (int) cublasGetMathMode$.HANDLE.invokeExact(handle, mode);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasSetPointerMode_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasSetPointerMode_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode)
     * }
     */
    public static int cublasSetPointerMode_v2(MemorySegment handle, int mode) {
        try {
            return (int) cublasSetPointerMode_v2$.HANDLE.invokeExact(handle, mode);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasGemmEx$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasGemmEx",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B, cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
     * }
     */
    public static int cublasGemmEx(MemorySegment handle, int transa, int transb, int m, int n, int k, MemorySegment alpha, MemorySegment A, int Atype, int lda, MemorySegment B, int Btype, int ldb, MemorySegment beta, MemorySegment C, int Ctype, int ldc, int computeType, int algo) {
        try {
            return (int) cublasGemmEx$.HANDLE.invokeExact(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType, algo);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasGemmStridedBatchedEx$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasGemmStridedBatchedEx",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda, long long int strideA, const void *B, cudaDataType Btype, int ldb, long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc, long long int strideC, int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
     * }
     */
    public static int cublasGemmStridedBatchedEx(MemorySegment handle, int transa, int transb, int m, int n, int k, MemorySegment alpha, MemorySegment A, int Atype, int lda, long strideA, MemorySegment B, int Btype, int ldb, long strideB, MemorySegment beta, MemorySegment C, int Ctype, int ldc, long strideC, int batchCount, int computeType, int algo) {
        try {
            return (int) cublasGemmStridedBatchedEx$.HANDLE.invokeExact(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasGetStatusName$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasGetStatusName",
                FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * const char *cublasGetStatusName(cublasStatus_t status)
     * }
     */
    public static MemorySegment cublasGetStatusName(int status) {
        try {
            return (MemorySegment) cublasGetStatusName$.HANDLE.invokeExact(status);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasGetStatusString$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasGetStatusString",
                FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * const char *cublasGetStatusString(cublasStatus_t status)
     * }
     */
    public static MemorySegment cublasGetStatusString(int status) {
        try {
            return (MemorySegment) cublasGetStatusString$.HANDLE.invokeExact(status);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }
}

package dev.jtune.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLASLt: {@code cublasLt.h} (CUDA 13), loaded from {@code libcublasLt.so.13} by {@link NativeLibraries}.
 * <p>
 * Hand-written in jextract's shape (see {@link CudaDriver} for the type mapping). Results are the raw
 * {@code cublasStatus_t}: pass them to {@link CudaException#checkCublasLt(int, String)}. The compute types,
 * {@code cublasOperation_t} and {@code cudaDataType} values it takes are in {@link Cublas}. No logic lives here.
 */
public final class CublasLt {
    private CublasLt() {
    }

    private static final CudaLibrary LIBRARY = CudaLibrary.CUBLAS_LT;

    // cublasLtMatmulDescAttributes_t (cublasLtMatmulDescSetAttribute)
    public static final int CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0;
    public static final int CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1;
    public static final int CUBLASLT_MATMUL_DESC_POINTER_MODE = 2;
    public static final int CUBLASLT_MATMUL_DESC_TRANSA = 3;
    public static final int CUBLASLT_MATMUL_DESC_TRANSB = 4;
    public static final int CUBLASLT_MATMUL_DESC_TRANSC = 5;
    public static final int CUBLASLT_MATMUL_DESC_FILL_MODE = 6;
    public static final int CUBLASLT_MATMUL_DESC_EPILOGUE = 7;
    public static final int CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8;
    public static final int CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE = 10;
    public static final int CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11;
    public static final int CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12;
    public static final int CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE = 13;
    public static final int CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET = 15;
    public static final int CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE = 22;
    public static final int CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26;

    // cublasLtEpilogue_t (CUBLASLT_MATMUL_DESC_EPILOGUE, a uint32_t)
    public static final int CUBLASLT_EPILOGUE_DEFAULT = 1;
    public static final int CUBLASLT_EPILOGUE_RELU = 2;
    public static final int CUBLASLT_EPILOGUE_BIAS = 4;
    public static final int CUBLASLT_EPILOGUE_RELU_BIAS = 6;
    public static final int CUBLASLT_EPILOGUE_GELU = 32;
    public static final int CUBLASLT_EPILOGUE_GELU_BIAS = 36;
    public static final int CUBLASLT_EPILOGUE_GELU_AUX = 160;
    public static final int CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 164;
    public static final int CUBLASLT_EPILOGUE_DGELU = 192;
    public static final int CUBLASLT_EPILOGUE_DGELU_BGRAD = 208;
    public static final int CUBLASLT_EPILOGUE_BGRADA = 256;
    public static final int CUBLASLT_EPILOGUE_BGRADB = 512;

    // cublasLtMatrixLayoutAttribute_t (cublasLtMatrixLayoutSetAttribute)
    public static final int CUBLASLT_MATRIX_LAYOUT_TYPE = 0;
    public static final int CUBLASLT_MATRIX_LAYOUT_ORDER = 1;
    public static final int CUBLASLT_MATRIX_LAYOUT_ROWS = 2;
    public static final int CUBLASLT_MATRIX_LAYOUT_COLS = 3;
    public static final int CUBLASLT_MATRIX_LAYOUT_LD = 4;
    public static final int CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5;
    public static final int CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;

    // cublasLtOrder_t (CUBLASLT_MATRIX_LAYOUT_ORDER, an int32_t)
    public static final int CUBLASLT_ORDER_COL = 0;
    public static final int CUBLASLT_ORDER_ROW = 1;

    // cublasLtMatmulPreferenceAttributes_t (cublasLtMatmulPreferenceSetAttribute)
    public static final int CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0;
    public static final int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;
    public static final int CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3;
    public static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5;
    public static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6;
    public static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7;
    public static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8;

    // cublasLtPointerMode_t (CUBLASLT_MATMUL_DESC_POINTER_MODE)
    public static final int CUBLASLT_POINTER_MODE_HOST = 0;
    public static final int CUBLASLT_POINTER_MODE_DEVICE = 1;

    // ---- structs: layouts as C lays them out on 64-bit Linux (checked by StructLayoutTest) -------------

    /**
     * {@snippet lang=c :
     * typedef struct {
     *     uint64_t data[8];
     * } cublasLtMatmulAlgo_t;
     * }
     * 64 bytes, opaque: copy it from a {@link cublasLtMatmulHeuristicResult_t} and pass it to
     * {@code cublasLtMatmul}.
     */
    public static final class cublasLtMatmulAlgo_t {
        private cublasLtMatmulAlgo_t() {
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                MemoryLayout.sequenceLayout(8, JAVA_LONG).withName("data")
        ).withName("cublasLtMatmulAlgo_t");

        public static final long data$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("data"));

        public static StructLayout layout() {
            return LAYOUT;
        }

        public static long sizeof() {
            return LAYOUT.byteSize();
        }

        public static MemorySegment allocate(SegmentAllocator allocator) {
            return allocator.allocate(LAYOUT);
        }

        /** The {@code uint64_t data[8]} array, as a slice. */
        public static MemorySegment data(MemorySegment struct) {
            return struct.asSlice(data$OFFSET, 8 * JAVA_LONG.byteSize());
        }

        public static long data(MemorySegment struct, long index) {
            return struct.get(JAVA_LONG, data$OFFSET + index * JAVA_LONG.byteSize());
        }

        public static void data(MemorySegment struct, long index, long fieldValue) {
            struct.set(JAVA_LONG, data$OFFSET + index * JAVA_LONG.byteSize(), fieldValue);
        }
    }

    /**
     * {@snippet lang=c :
     * typedef struct {
     *     cublasLtMatmulAlgo_t algo;
     *     size_t workspaceSize;
     *     cublasStatus_t state;
     *     float wavesCount;
     *     int reserved[4];
     * } cublasLtMatmulHeuristicResult_t;
     * }
     * 96 bytes: algo at 0, workspaceSize at 64, state at 72, wavesCount at 76, reserved at 80.
     * {@code cublasLtMatmulAlgoGetHeuristic} fills an array of these; because {@code algo} comes first, a
     * pointer to a result is also a pointer to its algorithm.
     */
    public static final class cublasLtMatmulHeuristicResult_t {
        private cublasLtMatmulHeuristicResult_t() {
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                cublasLtMatmulAlgo_t.LAYOUT.withName("algo"),
                JAVA_LONG.withName("workspaceSize"),
                JAVA_INT.withName("state"),
                JAVA_FLOAT.withName("wavesCount"),
                MemoryLayout.sequenceLayout(4, JAVA_INT).withName("reserved")
        ).withName("cublasLtMatmulHeuristicResult_t");

        public static final long algo$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("algo"));
        public static final long workspaceSize$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("workspaceSize"));
        public static final long state$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("state"));
        public static final long wavesCount$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("wavesCount"));
        public static final long reserved$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("reserved"));

        public static StructLayout layout() {
            return LAYOUT;
        }

        public static long sizeof() {
            return LAYOUT.byteSize();
        }

        public static MemorySegment allocate(SegmentAllocator allocator) {
            return allocator.allocate(LAYOUT);
        }

        /** An array of {@code count} results, for {@code requestedAlgoCount = count}. */
        public static MemorySegment allocateArray(long count, SegmentAllocator allocator) {
            return allocator.allocate(MemoryLayout.sequenceLayout(count, LAYOUT));
        }

        /** Element {@code index} of an array made by {@link #allocateArray}. */
        public static MemorySegment asSlice(MemorySegment array, long index) {
            return array.asSlice(LAYOUT.byteSize() * index, LAYOUT);
        }

        /** The {@code algo} field, as a slice: pass it to {@code cublasLtMatmul} or copy it elsewhere. */
        public static MemorySegment algo(MemorySegment struct) {
            return struct.asSlice(algo$OFFSET, cublasLtMatmulAlgo_t.LAYOUT.byteSize());
        }

        public static void algo(MemorySegment struct, MemorySegment fieldValue) {
            MemorySegment.copy(fieldValue, 0L, struct, algo$OFFSET, cublasLtMatmulAlgo_t.LAYOUT.byteSize());
        }

        /** {@code size_t workspaceSize}: the workspace this algorithm needs. */
        public static long workspaceSize(MemorySegment struct) {
            return struct.get(JAVA_LONG, workspaceSize$OFFSET);
        }

        public static void workspaceSize(MemorySegment struct, long fieldValue) {
            struct.set(JAVA_LONG, workspaceSize$OFFSET, fieldValue);
        }

        /** {@code cublasStatus_t state}: the other fields are valid only when this is {@code CUBLAS_STATUS_SUCCESS}. */
        public static int state(MemorySegment struct) {
            return struct.get(JAVA_INT, state$OFFSET);
        }

        public static void state(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, state$OFFSET, fieldValue);
        }

        /** {@code float wavesCount}: 1.0 means one launch fills the GPU. */
        public static float wavesCount(MemorySegment struct) {
            return struct.get(JAVA_FLOAT, wavesCount$OFFSET);
        }

        public static void wavesCount(MemorySegment struct, float fieldValue) {
            struct.set(JAVA_FLOAT, wavesCount$OFFSET, fieldValue);
        }

        /** The {@code int reserved[4]} array, as a slice. */
        public static MemorySegment reserved(MemorySegment struct) {
            return struct.asSlice(reserved$OFFSET, 4 * JAVA_INT.byteSize());
        }
    }

    private static final class cublasLtCreate$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle)
     * }
     */
    public static int cublasLtCreate(MemorySegment lightHandle) {
        try {
            return (int) cublasLtCreate$.HANDLE.invokeExact(lightHandle);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtDestroy$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtDestroy",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle)
     * }
     */
    public static int cublasLtDestroy(MemorySegment lightHandle) {
        try {
            return (int) cublasLtDestroy$.HANDLE.invokeExact(lightHandle);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtGetVersion$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtGetVersion",
                FunctionDescriptor.of(JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * size_t cublasLtGetVersion(void)
     * }
     */
    public static long cublasLtGetVersion() {
        try {
            return (long) cublasLtGetVersion$.HANDLE.invokeExact();
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtGetStatusName$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtGetStatusName",
                FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * const char *cublasLtGetStatusName(cublasStatus_t status)
     * }
     */
    public static MemorySegment cublasLtGetStatusName(int status) {
        try {
            return (MemorySegment) cublasLtGetStatusName$.HANDLE.invokeExact(status);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtGetStatusString$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtGetStatusString",
                FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * const char *cublasLtGetStatusString(cublasStatus_t status)
     * }
     */
    public static MemorySegment cublasLtGetStatusString(int status) {
        try {
            return (MemorySegment) cublasLtGetStatusString$.HANDLE.invokeExact(status);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulDescCreate$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulDescCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType, cudaDataType_t scaleType)
     * }
     */
    public static int cublasLtMatmulDescCreate(MemorySegment matmulDesc, int computeType, int scaleType) {
        try {
            return (int) cublasLtMatmulDescCreate$.HANDLE.invokeExact(matmulDesc, computeType, scaleType);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulDescDestroy$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulDescDestroy",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc)
     * }
     */
    public static int cublasLtMatmulDescDestroy(MemorySegment matmulDesc) {
        try {
            return (int) cublasLtMatmulDescDestroy$.HANDLE.invokeExact(matmulDesc);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulDescSetAttribute$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulDescSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr, const void *buf, size_t sizeInBytes)
     * }
     */
    public static int cublasLtMatmulDescSetAttribute(MemorySegment matmulDesc, int attr, MemorySegment buf, long sizeInBytes) {
        try {
            return (int) cublasLtMatmulDescSetAttribute$.HANDLE.invokeExact(matmulDesc, attr, buf, sizeInBytes);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulDescGetAttribute$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulDescGetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr, void *buf, size_t sizeInBytes, size_t *sizeWritten)
     * }
     */
    public static int cublasLtMatmulDescGetAttribute(MemorySegment matmulDesc, int attr, MemorySegment buf, long sizeInBytes, MemorySegment sizeWritten) {
        try {
            return (int) cublasLtMatmulDescGetAttribute$.HANDLE.invokeExact(matmulDesc, attr, buf, sizeInBytes, sizeWritten);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatrixLayoutCreate$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatrixLayoutCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld)
     * }
     */
    public static int cublasLtMatrixLayoutCreate(MemorySegment matLayout, int type, long rows, long cols, long ld) {
        try {
            return (int) cublasLtMatrixLayoutCreate$.HANDLE.invokeExact(matLayout, type, rows, cols, ld);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatrixLayoutDestroy$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatrixLayoutDestroy",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout)
     * }
     */
    public static int cublasLtMatrixLayoutDestroy(MemorySegment matLayout) {
        try {
            return (int) cublasLtMatrixLayoutDestroy$.HANDLE.invokeExact(matLayout);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatrixLayoutSetAttribute$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatrixLayoutSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout, cublasLtMatrixLayoutAttribute_t attr, const void *buf, size_t sizeInBytes)
     * }
     */
    public static int cublasLtMatrixLayoutSetAttribute(MemorySegment matLayout, int attr, MemorySegment buf, long sizeInBytes) {
        try {
            return (int) cublasLtMatrixLayoutSetAttribute$.HANDLE.invokeExact(matLayout, attr, buf, sizeInBytes);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulPreferenceCreate$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulPreferenceCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
     * }
     */
    public static int cublasLtMatmulPreferenceCreate(MemorySegment pref) {
        try {
            return (int) cublasLtMatmulPreferenceCreate$.HANDLE.invokeExact(pref);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulPreferenceDestroy$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulPreferenceDestroy",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)
     * }
     */
    public static int cublasLtMatmulPreferenceDestroy(MemorySegment pref) {
        try {
            return (int) cublasLtMatmulPreferenceDestroy$.HANDLE.invokeExact(pref);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulPreferenceSetAttribute$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulPreferenceSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void *buf, size_t sizeInBytes)
     * }
     */
    public static int cublasLtMatmulPreferenceSetAttribute(MemorySegment pref, int attr, MemorySegment buf, long sizeInBytes) {
        try {
            return (int) cublasLtMatmulPreferenceSetAttribute$.HANDLE.invokeExact(pref, attr, buf, sizeInBytes);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmulAlgoGetHeuristic$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmulAlgoGetHeuristic",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t preference, int requestedAlgoCount, cublasLtMatmulHeuristicResult_t*heuristicResultsArray, int *returnAlgoCount)
     * }
     */
    public static int cublasLtMatmulAlgoGetHeuristic(MemorySegment lightHandle, MemorySegment operationDesc, MemorySegment Adesc, MemorySegment Bdesc, MemorySegment Cdesc, MemorySegment Ddesc, MemorySegment preference, int requestedAlgoCount, MemorySegment heuristicResultsArray, MemorySegment returnAlgoCount) {
        try {
            return (int) cublasLtMatmulAlgoGetHeuristic$.HANDLE.invokeExact(lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, preference, requestedAlgoCount, heuristicResultsArray, returnAlgoCount);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cublasLtMatmul$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cublasLtMatmul",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream)
     * }
     */
    public static int cublasLtMatmul(MemorySegment lightHandle, MemorySegment computeDesc, MemorySegment alpha, MemorySegment A, MemorySegment Adesc, MemorySegment B, MemorySegment Bdesc, MemorySegment beta, MemorySegment C, MemorySegment Cdesc, MemorySegment D, MemorySegment Ddesc, MemorySegment algo, MemorySegment workspace, long workspaceSizeInBytes, MemorySegment stream) {
        try {
            return (int) cublasLtMatmul$.HANDLE.invokeExact(lightHandle, computeDesc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo, workspace, workspaceSizeInBytes, stream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }
}

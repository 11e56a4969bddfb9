package dev.jtune.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * NCCL, the collective communication library: {@code nccl.h} (NCCL 2.28 and later), loaded from {@code libnccl.so.2}
 * by {@link NativeLibraries}. Only what data-parallel training needs: the unique id, a communicator made with a
 * configuration (non-blocking), its asynchronous error, finalize/destroy/abort, the four collectives and groups.
 * <p>
 * Hand-written in jextract's shape (see {@link CudaDriver} for the type mapping; {@code ncclComm_t} and
 * {@code cudaStream_t} are pointers, and a driver {@code CUstream} is a valid {@code cudaStream_t}). Results are the
 * raw {@code ncclResult_t}: pass them to {@link CudaException#checkNccl(int, String)}. No logic lives here.
 * <p>
 * {@link ncclConfig_t} binds the configuration's first fields, as NCCL 2.17-2.18 declared it: NCCL copies
 * {@code size} bytes of it over its own defaults and reads the fields the given {@code version} had, so a shorter
 * struct leaves every later field at NCCL's default.
 */
public final class Nccl {
    private Nccl() {
    }

    private static final CudaLibrary LIBRARY = CudaLibrary.NCCL;

    // ncclResult_t
    public static final int ncclSuccess = 0;
    public static final int ncclUnhandledCudaError = 1;
    public static final int ncclSystemError = 2;
    public static final int ncclInternalError = 3;
    public static final int ncclInvalidArgument = 4;
    public static final int ncclInvalidUsage = 5;
    public static final int ncclRemoteError = 6;
    public static final int ncclInProgress = 7;
    public static final int ncclTimeout = 8;

    // ncclDataType_t
    public static final int ncclInt8 = 0;
    public static final int ncclUint8 = 1;
    public static final int ncclInt32 = 2;
    public static final int ncclUint32 = 3;
    public static final int ncclInt64 = 4;
    public static final int ncclUint64 = 5;
    public static final int ncclFloat16 = 6;
    public static final int ncclFloat32 = 7;
    public static final int ncclFloat64 = 8;
    public static final int ncclBfloat16 = 9;

    // ncclRedOp_t
    public static final int ncclSum = 0;
    public static final int ncclProd = 1;
    public static final int ncclMax = 2;
    public static final int ncclMin = 3;
    public static final int ncclAvg = 4;

    // from nccl.h's macros: NCCL_UNIQUE_ID_BYTES, NCCL_API_MAGIC (as a signed int), NCCL_CONFIG_UNDEF_INT
    public static final int NCCL_UNIQUE_ID_BYTES = 128;
    public static final int NCCL_API_MAGIC = 0xcafebeef;
    public static final int NCCL_CONFIG_UNDEF_INT = Integer.MIN_VALUE;

    /** {@code ncclUniqueId}: 128 opaque bytes, passed by value to {@code ncclCommInitRankConfig}. */
    public static final class ncclUniqueId {
        private ncclUniqueId() {
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                MemoryLayout.sequenceLayout(NCCL_UNIQUE_ID_BYTES, JAVA_BYTE).withName("internal")
        ).withName("ncclUniqueId");

        public static long sizeof() {
            return LAYOUT.byteSize();
        }
    }

    /** {@code ncclConfig_t}'s leading fields (see the class comment); fill with NCCL_CONFIG_INITIALIZER's values first. */
    public static final class ncclConfig_t {
        private ncclConfig_t() {
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                JAVA_LONG.withName("size"),
                JAVA_INT.withName("magic"),
                JAVA_INT.withName("version"),
                JAVA_INT.withName("blocking"),
                JAVA_INT.withName("cgaClusterSize"),
                JAVA_INT.withName("minCTAs"),
                JAVA_INT.withName("maxCTAs"),
                ADDRESS.withName("netName"),
                JAVA_INT.withName("splitShare"),
                MemoryLayout.paddingLayout(4)
        ).withName("ncclConfig_v21700");

        public static final long size$OFFSET = offset("size");
        public static final long magic$OFFSET = offset("magic");
        public static final long version$OFFSET = offset("version");
        public static final long blocking$OFFSET = offset("blocking");
        public static final long cgaClusterSize$OFFSET = offset("cgaClusterSize");
        public static final long minCTAs$OFFSET = offset("minCTAs");
        public static final long maxCTAs$OFFSET = offset("maxCTAs");
        public static final long netName$OFFSET = offset("netName");
        public static final long splitShare$OFFSET = offset("splitShare");

        private static long offset(String field) {
            return LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement(field));
        }

        public static long sizeof() {
            return LAYOUT.byteSize();
        }

        public static void size(MemorySegment struct, long v) {
            struct.set(JAVA_LONG, size$OFFSET, v);
        }

        public static void magic(MemorySegment struct, int v) {
            struct.set(JAVA_INT, magic$OFFSET, v);
        }

        public static void version(MemorySegment struct, int v) {
            struct.set(JAVA_INT, version$OFFSET, v);
        }

        public static void blocking(MemorySegment struct, int v) {
            struct.set(JAVA_INT, blocking$OFFSET, v);
        }

        public static void cgaClusterSize(MemorySegment struct, int v) {
            struct.set(JAVA_INT, cgaClusterSize$OFFSET, v);
        }

        public static void minCTAs(MemorySegment struct, int v) {
            struct.set(JAVA_INT, minCTAs$OFFSET, v);
        }

        public static void maxCTAs(MemorySegment struct, int v) {
            struct.set(JAVA_INT, maxCTAs$OFFSET, v);
        }

        public static void netName(MemorySegment struct, MemorySegment v) {
            struct.set(ADDRESS, netName$OFFSET, v);
        }

        public static void splitShare(MemorySegment struct, int v) {
            struct.set(JAVA_INT, splitShare$OFFSET, v);
        }

        public static int blocking(MemorySegment struct) {
            return struct.get(JAVA_INT, blocking$OFFSET);
        }
    }

    private static final class ncclGetVersion$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclGetVersion",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclGetVersion(int *version)
     * }
     */
    public static int ncclGetVersion(MemorySegment version) {
        try {
            return (int) ncclGetVersion$.HANDLE.invokeExact(version);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclGetErrorString$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclGetErrorString",
                FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * const char *ncclGetErrorString(ncclResult_t result)
     * }
     */
    public static MemorySegment ncclGetErrorString(int result) {
        try {
            return (MemorySegment) ncclGetErrorString$.HANDLE.invokeExact(result);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclGetLastError$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclGetLastError",
                FunctionDescriptor.of(ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * const char *ncclGetLastError(ncclComm_t comm)
     * }
     */
    public static MemorySegment ncclGetLastError(MemorySegment comm) {
        try {
            return (MemorySegment) ncclGetLastError$.HANDLE.invokeExact(comm);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclGetUniqueId$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclGetUniqueId",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId)
     * }
     */
    public static int ncclGetUniqueId(MemorySegment uniqueId) {
        try {
            return (int) ncclGetUniqueId$.HANDLE.invokeExact(uniqueId);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclCommInitRankConfig$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclCommInitRankConfig",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ncclUniqueId.LAYOUT, JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank, ncclConfig_t *config)
     * }
     */
    public static int ncclCommInitRankConfig(MemorySegment comm, int nranks, MemorySegment commId, int rank, MemorySegment config) {
        try {
            return (int) ncclCommInitRankConfig$.HANDLE.invokeExact(comm, nranks, commId, rank, config);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclCommGetAsyncError$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclCommGetAsyncError",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError)
     * }
     */
    public static int ncclCommGetAsyncError(MemorySegment comm, MemorySegment asyncError) {
        try {
            return (int) ncclCommGetAsyncError$.HANDLE.invokeExact(comm, asyncError);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclCommFinalize$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclCommFinalize",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclCommFinalize(ncclComm_t comm)
     * }
     */
    public static int ncclCommFinalize(MemorySegment comm) {
        try {
            return (int) ncclCommFinalize$.HANDLE.invokeExact(comm);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclCommDestroy$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclCommDestroy",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclCommDestroy(ncclComm_t comm)
     * }
     */
    public static int ncclCommDestroy(MemorySegment comm) {
        try {
            return (int) ncclCommDestroy$.HANDLE.invokeExact(comm);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclCommAbort$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclCommAbort",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclCommAbort(ncclComm_t comm)
     * }
     */
    public static int ncclCommAbort(MemorySegment comm) {
        try {
            return (int) ncclCommAbort$.HANDLE.invokeExact(comm);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclAllReduce$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclAllReduce",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
     * }
     */
    public static int ncclAllReduce(MemorySegment sendbuff, MemorySegment recvbuff, long count, int datatype, int op, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclAllReduce$.HANDLE.invokeExact(sendbuff, recvbuff, count, datatype, op, comm, stream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclReduceScatter$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclReduceScatter",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
     * }
     */
    public static int ncclReduceScatter(MemorySegment sendbuff, MemorySegment recvbuff, long recvcount, int datatype, int op, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclReduceScatter$.HANDLE.invokeExact(sendbuff, recvbuff, recvcount, datatype, op, comm, stream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclAllGather$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclAllGather",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount, ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream)
     * }
     */
    public static int ncclAllGather(MemorySegment sendbuff, MemorySegment recvbuff, long sendcount, int datatype, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclAllGather$.HANDLE.invokeExact(sendbuff, recvbuff, sendcount, datatype, comm, stream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclBroadcast$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclBroadcast",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream)
     * }
     */
    public static int ncclBroadcast(MemorySegment sendbuff, MemorySegment recvbuff, long count, int datatype, int root, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclBroadcast$.HANDLE.invokeExact(sendbuff, recvbuff, count, datatype, root, comm, stream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclGroupStart$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclGroupStart",
                FunctionDescriptor.of(JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclGroupStart(void)
     * }
     */
    public static int ncclGroupStart() {
        try {
            return (int) ncclGroupStart$.HANDLE.invokeExact();
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class ncclGroupEnd$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "ncclGroupEnd",
                FunctionDescriptor.of(JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * ncclResult_t ncclGroupEnd(void)
     * }
     */
    public static int ncclGroupEnd() {
        try {
            return (int) ncclGroupEnd$.HANDLE.invokeExact();
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }
}

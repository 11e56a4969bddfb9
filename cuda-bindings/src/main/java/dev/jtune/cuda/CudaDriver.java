package dev.jtune.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The CUDA driver API: {@code cuda.h} (CUDA 13), loaded from {@code libcuda.so.1} by {@link NativeLibraries}.
 * <p>
 * Hand-written in jextract's shape: one static method per exported C symbol, named exactly as exported
 * ({@code cuMemAlloc_v2}, not the {@code cuMemAlloc} that cuda.h {@code #define}s to it), each calling a
 * downcall handle that is resolved on first use. C {@code int}s, {@code unsigned int}s, enums and
 * {@code CUdevice} are {@code int}; {@code size_t}, {@code CUdeviceptr} and allocation handles are
 * {@code long}; every pointer and opaque handle is a {@link MemorySegment}. Results are returned as the raw
 * {@code CUresult}: pass them to {@link CudaException#check(int, String)}. No logic lives here.
 */
public final class CudaDriver {
    private CudaDriver() {
    }

    private static final CudaLibrary LIBRARY = CudaLibrary.DRIVER;

    // CUresult: every code of cuda.h
    public static final int CUDA_SUCCESS = 0;
    public static final int CUDA_ERROR_INVALID_VALUE = 1;
    public static final int CUDA_ERROR_OUT_OF_MEMORY = 2;
    public static final int CUDA_ERROR_NOT_INITIALIZED = 3;
    public static final int CUDA_ERROR_DEINITIALIZED = 4;
    public static final int CUDA_ERROR_PROFILER_DISABLED = 5;
    public static final int CUDA_ERROR_PROFILER_NOT_INITIALIZED = 6;
    public static final int CUDA_ERROR_PROFILER_ALREADY_STARTED = 7;
    public static final int CUDA_ERROR_PROFILER_ALREADY_STOPPED = 8;
    public static final int CUDA_ERROR_STUB_LIBRARY = 34;
    public static final int CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER = 36;
    public static final int CUDA_ERROR_DEVICE_UNAVAILABLE = 46;
    public static final int CUDA_ERROR_NO_DEVICE = 100;
    public static final int CUDA_ERROR_INVALID_DEVICE = 101;
    public static final int CUDA_ERROR_DEVICE_NOT_LICENSED = 102;
    public static final int CUDA_ERROR_INVALID_IMAGE = 200;
    public static final int CUDA_ERROR_INVALID_CONTEXT = 201;
    public static final int CUDA_ERROR_CONTEXT_ALREADY_CURRENT = 202;
    public static final int CUDA_ERROR_MAP_FAILED = 205;
    public static final int CUDA_ERROR_UNMAP_FAILED = 206;
    public static final int CUDA_ERROR_ARRAY_IS_MAPPED = 207;
    public static final int CUDA_ERROR_ALREADY_MAPPED = 208;
    public static final int CUDA_ERROR_NO_BINARY_FOR_GPU = 209;
    public static final int CUDA_ERROR_ALREADY_ACQUIRED = 210;
    public static final int CUDA_ERROR_NOT_MAPPED = 211;
    public static final int CUDA_ERROR_NOT_MAPPED_AS_ARRAY = 212;
    public static final int CUDA_ERROR_NOT_MAPPED_AS_POINTER = 213;
    public static final int CUDA_ERROR_ECC_UNCORRECTABLE = 214;
    public static final int CUDA_ERROR_UNSUPPORTED_LIMIT = 215;
    public static final int CUDA_ERROR_CONTEXT_ALREADY_IN_USE = 216;
    public static final int CUDA_ERROR_PEER_ACCESS_UNSUPPORTED = 217;
    public static final int CUDA_ERROR_INVALID_PTX = 218;
    public static final int CUDA_ERROR_INVALID_GRAPHICS_CONTEXT = 219;
    public static final int CUDA_ERROR_NVLINK_UNCORRECTABLE = 220;
    public static final int CUDA_ERROR_JIT_COMPILER_NOT_FOUND = 221;
    public static final int CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222;
    public static final int CUDA_ERROR_JIT_COMPILATION_DISABLED = 223;
    public static final int CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY = 224;
    public static final int CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC = 225;
    public static final int CUDA_ERROR_CONTAINED = 226;
    public static final int CUDA_ERROR_INVALID_SOURCE = 300;
    public static final int CUDA_ERROR_FILE_NOT_FOUND = 301;
    public static final int CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND = 302;
    public static final int CUDA_ERROR_SHARED_OBJECT_INIT_FAILED = 303;
    public static final int CUDA_ERROR_OPERATING_SYSTEM = 304;
    public static final int CUDA_ERROR_INVALID_HANDLE = 400;
    public static final int CUDA_ERROR_ILLEGAL_STATE = 401;
    public static final int CUDA_ERROR_LOSSY_QUERY = 402;
    public static final int CUDA_ERROR_NOT_FOUND = 500;
    public static final int CUDA_ERROR_NOT_READY = 600;
    public static final int CUDA_ERROR_ILLEGAL_ADDRESS = 700;
    public static final int CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701;
    public static final int CUDA_ERROR_LAUNCH_TIMEOUT = 702;
    public static final int CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING = 703;
    public static final int CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED = 704;
    public static final int CUDA_ERROR_PEER_ACCESS_NOT_ENABLED = 705;
    public static final int CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE = 708;
    public static final int CUDA_ERROR_CONTEXT_IS_DESTROYED = 709;
    public static final int CUDA_ERROR_ASSERT = 710;
    public static final int CUDA_ERROR_TOO_MANY_PEERS = 711;
    public static final int CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712;
    public static final int CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED = 713;
    public static final int CUDA_ERROR_HARDWARE_STACK_ERROR = 714;
    public static final int CUDA_ERROR_ILLEGAL_INSTRUCTION = 715;
    public static final int CUDA_ERROR_MISALIGNED_ADDRESS = 716;
    public static final int CUDA_ERROR_INVALID_ADDRESS_SPACE = 717;
    public static final int CUDA_ERROR_INVALID_PC = 718;
    public static final int CUDA_ERROR_LAUNCH_FAILED = 719;
    public static final int CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE = 720;
    public static final int CUDA_ERROR_TENSOR_MEMORY_LEAK = 721;
    public static final int CUDA_ERROR_NOT_PERMITTED = 800;
    public static final int CUDA_ERROR_NOT_SUPPORTED = 801;
    public static final int CUDA_ERROR_SYSTEM_NOT_READY = 802;
    public static final int CUDA_ERROR_SYSTEM_DRIVER_MISMATCH = 803;
    public static final int CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE = 804;
    public static final int CUDA_ERROR_MPS_CONNECTION_FAILED = 805;
    public static final int CUDA_ERROR_MPS_RPC_FAILURE = 806;
    public static final int CUDA_ERROR_MPS_SERVER_NOT_READY = 807;
    public static final int CUDA_ERROR_MPS_MAX_CLIENTS_REACHED = 808;
    public static final int CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED = 809;
    public static final int CUDA_ERROR_MPS_CLIENT_TERMINATED = 810;
    public static final int CUDA_ERROR_CDP_NOT_SUPPORTED = 811;
    public static final int CUDA_ERROR_CDP_VERSION_MISMATCH = 812;
    public static final int CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900;
    public static final int CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901;
    public static final int CUDA_ERROR_STREAM_CAPTURE_MERGE = 902;
    public static final int CUDA_ERROR_STREAM_CAPTURE_UNMATCHED = 903;
    public static final int CUDA_ERROR_STREAM_CAPTURE_UNJOINED = 904;
    public static final int CUDA_ERROR_STREAM_CAPTURE_ISOLATION = 905;
    public static final int CUDA_ERROR_STREAM_CAPTURE_IMPLICIT = 906;
    public static final int CUDA_ERROR_CAPTURED_EVENT = 907;
    public static final int CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD = 908;
    public static final int CUDA_ERROR_TIMEOUT = 909;
    public static final int CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE = 910;
    public static final int CUDA_ERROR_EXTERNAL_DEVICE = 911;
    public static final int CUDA_ERROR_INVALID_CLUSTER_SIZE = 912;
    public static final int CUDA_ERROR_FUNCTION_NOT_LOADED = 913;
    public static final int CUDA_ERROR_INVALID_RESOURCE_TYPE = 914;
    public static final int CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION = 915;
    public static final int CUDA_ERROR_KEY_ROTATION = 916;
    public static final int CUDA_ERROR_UNKNOWN = 999;

    // CUdevice_attribute (cuDeviceGetAttribute)
    public static final int CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X = 2;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y = 3;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z = 4;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X = 5;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y = 6;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z = 7;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8;
    public static final int CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY = 9;
    public static final int CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK = 12;
    public static final int CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13;
    public static final int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    public static final int CU_DEVICE_ATTRIBUTE_INTEGRATED = 18;
    public static final int CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY = 19;
    public static final int CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS = 31;
    public static final int CU_DEVICE_ATTRIBUTE_ECC_ENABLED = 32;
    public static final int CU_DEVICE_ATTRIBUTE_PCI_BUS_ID = 33;
    public static final int CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID = 34;
    public static final int CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36;
    public static final int CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37;
    public static final int CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR = 39;
    public static final int CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT = 40;
    public static final int CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING = 41;
    public static final int CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID = 50;
    public static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    public static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    public static final int CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED = 78;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR = 81;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR = 82;
    public static final int CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY = 83;
    public static final int CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD = 84;
    public static final int CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS = 88;
    public static final int CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS = 89;
    public static final int CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH = 95;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    public static final int CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED = 99;
    public static final int CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED = 102;
    public static final int CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED = 103;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR = 106;
    public static final int CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE = 108;
    public static final int CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK = 111;
    public static final int CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED = 115;
    public static final int CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED = 116;
    public static final int CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH = 120;

    // CUfunction_attribute (cuFuncGetAttribute, cuFuncSetAttribute)
    public static final int CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0;
    public static final int CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1;
    public static final int CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES = 2;
    public static final int CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3;
    public static final int CU_FUNC_ATTRIBUTE_NUM_REGS = 4;
    public static final int CU_FUNC_ATTRIBUTE_PTX_VERSION = 5;
    public static final int CU_FUNC_ATTRIBUTE_BINARY_VERSION = 6;
    public static final int CU_FUNC_ATTRIBUTE_CACHE_MODE_CA = 7;
    public static final int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
    public static final int CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9;

    // CUstream_flags (cuStreamCreate)
    public static final int CU_STREAM_DEFAULT = 0;
    public static final int CU_STREAM_NON_BLOCKING = 1;

    // CUevent_flags (cuEventCreate)
    public static final int CU_EVENT_DEFAULT = 0;
    public static final int CU_EVENT_BLOCKING_SYNC = 1;
    public static final int CU_EVENT_DISABLE_TIMING = 2;

    // CUtensorMapDataType, CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill
    public static final int CU_TENSOR_MAP_DATA_TYPE_UINT8 = 0;
    public static final int CU_TENSOR_MAP_DATA_TYPE_UINT16 = 1;
    public static final int CU_TENSOR_MAP_DATA_TYPE_UINT32 = 2;
    public static final int CU_TENSOR_MAP_DATA_TYPE_INT32 = 3;
    public static final int CU_TENSOR_MAP_DATA_TYPE_UINT64 = 4;
    public static final int CU_TENSOR_MAP_DATA_TYPE_INT64 = 5;
    public static final int CU_TENSOR_MAP_DATA_TYPE_FLOAT16 = 6;
    public static final int CU_TENSOR_MAP_DATA_TYPE_FLOAT32 = 7;
    public static final int CU_TENSOR_MAP_DATA_TYPE_FLOAT64 = 8;
    public static final int CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 = 9;
    public static final int CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ = 10;
    public static final int CU_TENSOR_MAP_DATA_TYPE_TFLOAT32 = 11;
    public static final int CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ = 12;
    public static final int CU_TENSOR_MAP_INTERLEAVE_NONE = 0;
    public static final int CU_TENSOR_MAP_INTERLEAVE_16B = 1;
    public static final int CU_TENSOR_MAP_INTERLEAVE_32B = 2;
    public static final int CU_TENSOR_MAP_SWIZZLE_NONE = 0;
    public static final int CU_TENSOR_MAP_SWIZZLE_32B = 1;
    public static final int CU_TENSOR_MAP_SWIZZLE_64B = 2;
    public static final int CU_TENSOR_MAP_SWIZZLE_128B = 3;
    public static final int CU_TENSOR_MAP_L2_PROMOTION_NONE = 0;
    public static final int CU_TENSOR_MAP_L2_PROMOTION_L2_64B = 1;
    public static final int CU_TENSOR_MAP_L2_PROMOTION_L2_128B = 2;
    public static final int CU_TENSOR_MAP_L2_PROMOTION_L2_256B = 3;
    public static final int CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0;
    public static final int CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA = 1;
    public static final int CU_EVENT_INTERPROCESS = 4;

    // cuMemHostAlloc flags
    public static final int CU_MEMHOSTALLOC_PORTABLE = 1;
    public static final int CU_MEMHOSTALLOC_DEVICEMAP = 2;
    public static final int CU_MEMHOSTALLOC_WRITECOMBINED = 4;

    // cuMemHostRegister flags
    public static final int CU_MEMHOSTREGISTER_PORTABLE = 1;
    public static final int CU_MEMHOSTREGISTER_DEVICEMAP = 2;
    public static final int CU_MEMHOSTREGISTER_IOMEMORY = 4;
    public static final int CU_MEMHOSTREGISTER_READ_ONLY = 8;

    // CUmemAllocationType
    public static final int CU_MEM_ALLOCATION_TYPE_INVALID = 0;
    public static final int CU_MEM_ALLOCATION_TYPE_PINNED = 1;

    // CUmemLocationType
    public static final int CU_MEM_LOCATION_TYPE_INVALID = 0;
    public static final int CU_MEM_LOCATION_TYPE_DEVICE = 1;
    public static final int CU_MEM_LOCATION_TYPE_HOST = 2;
    public static final int CU_MEM_LOCATION_TYPE_HOST_NUMA = 3;

    // CUmemAllocationHandleType
    public static final int CU_MEM_HANDLE_TYPE_NONE = 0;
    public static final int CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR = 1;

    // CUmemAccess_flags
    public static final int CU_MEM_ACCESS_FLAGS_PROT_NONE = 0;
    public static final int CU_MEM_ACCESS_FLAGS_PROT_READ = 1;
    public static final int CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3;

    // CUmemAllocationGranularity_flags
    public static final int CU_MEM_ALLOC_GRANULARITY_MINIMUM = 0;
    public static final int CU_MEM_ALLOC_GRANULARITY_RECOMMENDED = 1;

    // ---- structs: layouts as C lays them out on 64-bit Linux (checked by StructLayoutTest) -------------

    /**
     * {@snippet lang=c :
     * typedef struct CUmemLocation_st {
     *     CUmemLocationType type;
     *     int id;
     * } CUmemLocation;
     * }
     * 8 bytes.
     */
    public static final class CUmemLocation {
        private CUmemLocation() {
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                JAVA_INT.withName("type"),
                JAVA_INT.withName("id")
        ).withName("CUmemLocation_st");

        public static final long type$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("type"));
        public static final long id$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("id"));

        public static StructLayout layout() {
            return LAYOUT;
        }

        public static long sizeof() {
            return LAYOUT.byteSize();
        }

        public static MemorySegment allocate(SegmentAllocator allocator) {
            return allocator.allocate(LAYOUT);
        }

        /** {@code CUmemLocationType type}: one of the {@code CU_MEM_LOCATION_TYPE_*} values. */
        public static int type(MemorySegment struct) {
            return struct.get(JAVA_INT, type$OFFSET);
        }

        public static void type(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, type$OFFSET, fieldValue);
        }

        /** {@code int id}: the device ordinal for {@link CudaDriver#CU_MEM_LOCATION_TYPE_DEVICE}. */
        public static int id(MemorySegment struct) {
            return struct.get(JAVA_INT, id$OFFSET);
        }

        public static void id(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, id$OFFSET, fieldValue);
        }
    }

    /**
     * {@snippet lang=c :
     * typedef struct CUmemAllocationProp_st {
     *     CUmemAllocationType type;
     *     CUmemAllocationHandleType requestedHandleTypes;
     *     CUmemLocation location;
     *     void *win32HandleMetaData;
     *     struct {
     *         unsigned char compressionType;
     *         unsigned char gpuDirectRDMACapable;
     *         unsigned short usage;
     *         unsigned char reserved[4];
     *     } allocFlags;
     * } CUmemAllocationProp;
     * }
     * 32 bytes: type at 0, requestedHandleTypes at 4, location at 8, win32HandleMetaData at 16, allocFlags at 24.
     * Allocate it zeroed (an {@link java.lang.foreign.Arena} does) so that the fields not set stay 0, as the
     * driver requires.
     */
    public static final class CUmemAllocationProp {
        private CUmemAllocationProp() {
        }

        /** The anonymous {@code allocFlags} struct: 8 bytes. */
        public static final class allocFlags {
            private allocFlags() {
            }

            public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                    JAVA_BYTE.withName("compressionType"),
                    JAVA_BYTE.withName("gpuDirectRDMACapable"),
                    JAVA_SHORT.withName("usage"),
                    MemoryLayout.sequenceLayout(4, JAVA_BYTE).withName("reserved")
            );

            public static final long compressionType$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("compressionType"));
            public static final long gpuDirectRDMACapable$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("gpuDirectRDMACapable"));
            public static final long usage$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("usage"));
            public static final long reserved$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("reserved"));

            public static StructLayout layout() {
                return LAYOUT;
            }

            public static long sizeof() {
                return LAYOUT.byteSize();
            }

            public static byte compressionType(MemorySegment struct) {
                return struct.get(JAVA_BYTE, compressionType$OFFSET);
            }

            public static void compressionType(MemorySegment struct, byte fieldValue) {
                struct.set(JAVA_BYTE, compressionType$OFFSET, fieldValue);
            }

            public static byte gpuDirectRDMACapable(MemorySegment struct) {
                return struct.get(JAVA_BYTE, gpuDirectRDMACapable$OFFSET);
            }

            public static void gpuDirectRDMACapable(MemorySegment struct, byte fieldValue) {
                struct.set(JAVA_BYTE, gpuDirectRDMACapable$OFFSET, fieldValue);
            }

            public static short usage(MemorySegment struct) {
                return struct.get(JAVA_SHORT, usage$OFFSET);
            }

            public static void usage(MemorySegment struct, short fieldValue) {
                struct.set(JAVA_SHORT, usage$OFFSET, fieldValue);
            }

            public static MemorySegment reserved(MemorySegment struct) {
                return struct.asSlice(reserved$OFFSET, 4);
            }
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                JAVA_INT.withName("type"),
                JAVA_INT.withName("requestedHandleTypes"),
                CUmemLocation.LAYOUT.withName("location"),
                ADDRESS.withName("win32HandleMetaData"),
                allocFlags.LAYOUT.withName("allocFlags")
        ).withName("CUmemAllocationProp_st");

        public static final long type$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("type"));
        public static final long requestedHandleTypes$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("requestedHandleTypes"));
        public static final long location$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("location"));
        public static final long win32HandleMetaData$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("win32HandleMetaData"));
        public static final long allocFlags$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("allocFlags"));

        public static StructLayout layout() {
            return LAYOUT;
        }

        public static long sizeof() {
            return LAYOUT.byteSize();
        }

        public static MemorySegment allocate(SegmentAllocator allocator) {
            return allocator.allocate(LAYOUT);
        }

        /** {@code CUmemAllocationType type}: {@link CudaDriver#CU_MEM_ALLOCATION_TYPE_PINNED} for device memory. */
        public static int type(MemorySegment struct) {
            return struct.get(JAVA_INT, type$OFFSET);
        }

        public static void type(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, type$OFFSET, fieldValue);
        }

        /** {@code CUmemAllocationHandleType requestedHandleTypes}: {@link CudaDriver#CU_MEM_HANDLE_TYPE_NONE} unless exported. */
        public static int requestedHandleTypes(MemorySegment struct) {
            return struct.get(JAVA_INT, requestedHandleTypes$OFFSET);
        }

        public static void requestedHandleTypes(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, requestedHandleTypes$OFFSET, fieldValue);
        }

        /** The {@code CUmemLocation location} field, as a slice to read and write with {@link CUmemLocation}. */
        public static MemorySegment location(MemorySegment struct) {
            return struct.asSlice(location$OFFSET, CUmemLocation.LAYOUT.byteSize());
        }

        public static void location(MemorySegment struct, MemorySegment fieldValue) {
            MemorySegment.copy(fieldValue, 0L, struct, location$OFFSET, CUmemLocation.LAYOUT.byteSize());
        }

        /** Shorthand for {@code CUmemLocation.type(location(struct))}. */
        public static int locationType(MemorySegment struct) {
            return struct.get(JAVA_INT, location$OFFSET + CUmemLocation.type$OFFSET);
        }

        public static void locationType(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, location$OFFSET + CUmemLocation.type$OFFSET, fieldValue);
        }

        /** Shorthand for {@code CUmemLocation.id(location(struct))}: the device ordinal. */
        public static int locationId(MemorySegment struct) {
            return struct.get(JAVA_INT, location$OFFSET + CUmemLocation.id$OFFSET);
        }

        public static void locationId(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, location$OFFSET + CUmemLocation.id$OFFSET, fieldValue);
        }

        /** {@code void *win32HandleMetaData}: must stay NULL on Linux. */
        public static MemorySegment win32HandleMetaData(MemorySegment struct) {
            return struct.get(ADDRESS, win32HandleMetaData$OFFSET);
        }

        public static void win32HandleMetaData(MemorySegment struct, MemorySegment fieldValue) {
            struct.set(ADDRESS, win32HandleMetaData$OFFSET, fieldValue);
        }

        /** The {@code allocFlags} field, as a slice to read and write with {@link allocFlags}. */
        public static MemorySegment allocFlags(MemorySegment struct) {
            return struct.asSlice(allocFlags$OFFSET, allocFlags.LAYOUT.byteSize());
        }
    }

    /**
     * {@snippet lang=c :
     * typedef struct CUtensorMap_st {
     *     alignas(64) cuuint64_t opaque[16];
     * } CUtensorMap;
     * }
     * 128 opaque bytes, 64-byte aligned: a tensor map ({@code cuTensorMapEncodeTiled}) for the bulk tensor copy engine,
     * passed to a kernel by value.
     */
    public static final class CUtensorMap {
        private CUtensorMap() {
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                MemoryLayout.sequenceLayout(16, JAVA_LONG).withName("opaque")
        ).withByteAlignment(64).withName("CUtensorMap_st");

        public static long sizeof() {
            return LAYOUT.byteSize();
        }

        public static MemorySegment allocate(SegmentAllocator allocator) {
            return allocator.allocate(LAYOUT);
        }
    }

    /**
     * {@snippet lang=c :
     * typedef struct CUmemAccessDesc_st {
     *     CUmemLocation location;
     *     CUmemAccess_flags flags;
     * } CUmemAccessDesc;
     * }
     * 12 bytes: location at 0, flags at 8.
     */
    public static final class CUmemAccessDesc {
        private CUmemAccessDesc() {
        }

        public static final StructLayout LAYOUT = MemoryLayout.structLayout(
                CUmemLocation.LAYOUT.withName("location"),
                JAVA_INT.withName("flags")
        ).withName("CUmemAccessDesc_st");

        public static final long location$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("location"));
        public static final long flags$OFFSET = LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("flags"));

        public static StructLayout layout() {
            return LAYOUT;
        }

        public static long sizeof() {
            return LAYOUT.byteSize();
        }

        public static MemorySegment allocate(SegmentAllocator allocator) {
            return allocator.allocate(LAYOUT);
        }

        /** An array of {@code count} descriptors, for one {@code cuMemSetAccess} over several devices. */
        public static MemorySegment allocateArray(long count, SegmentAllocator allocator) {
            return allocator.allocate(MemoryLayout.sequenceLayout(count, LAYOUT));
        }

        /** Element {@code index} of an array made by {@link #allocateArray}. */
        public static MemorySegment asSlice(MemorySegment array, long index) {
            return array.asSlice(LAYOUT.byteSize() * index, LAYOUT);
        }

        /** The {@code CUmemLocation location} field, as a slice to read and write with {@link CUmemLocation}. */
        public static MemorySegment location(MemorySegment struct) {
            return struct.asSlice(location$OFFSET, CUmemLocation.LAYOUT.byteSize());
        }

        public static void location(MemorySegment struct, MemorySegment fieldValue) {
            MemorySegment.copy(fieldValue, 0L, struct, location$OFFSET, CUmemLocation.LAYOUT.byteSize());
        }

        /** Shorthand for {@code CUmemLocation.type(location(struct))}. */
        public static int locationType(MemorySegment struct) {
            return struct.get(JAVA_INT, location$OFFSET + CUmemLocation.type$OFFSET);
        }

        public static void locationType(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, location$OFFSET + CUmemLocation.type$OFFSET, fieldValue);
        }

        /** Shorthand for {@code CUmemLocation.id(location(struct))}: the device ordinal. */
        public static int locationId(MemorySegment struct) {
            return struct.get(JAVA_INT, location$OFFSET + CUmemLocation.id$OFFSET);
        }

        public static void locationId(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, location$OFFSET + CUmemLocation.id$OFFSET, fieldValue);
        }

        /** {@code CUmemAccess_flags flags}: {@link CudaDriver#CU_MEM_ACCESS_FLAGS_PROT_READWRITE} to read and write. */
        public static int flags(MemorySegment struct) {
            return struct.get(JAVA_INT, flags$OFFSET);
        }

        public static void flags(MemorySegment struct, int fieldValue) {
            struct.set(JAVA_INT, flags$OFFSET, fieldValue);
        }
    }

    private static final class cuGetErrorString$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuGetErrorString",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuGetErrorString(CUresult error, const char **pStr)
     * }
     */
    public static int cuGetErrorString(int error, MemorySegment pStr) {
        try {
            return (int) cuGetErrorString$.HANDLE.invokeExact(error, pStr);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuGetErrorName$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuGetErrorName",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuGetErrorName(CUresult error, const char **pStr)
     * }
     */
    public static int cuGetErrorName(int error, MemorySegment pStr) {
        try {
            return (int) cuGetErrorName$.HANDLE.invokeExact(error, pStr);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuInit$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuInit",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuInit(unsigned int Flags)
     * }
     */
    public static int cuInit(int Flags) {
        try {
            return (int) cuInit$.HANDLE.invokeExact(Flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDriverGetVersion$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDriverGetVersion",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDriverGetVersion(int *driverVersion)
     * }
     */
    public static int cuDriverGetVersion(MemorySegment driverVersion) {
        try {
            return (int) cuDriverGetVersion$.HANDLE.invokeExact(driverVersion);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDeviceGet$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDeviceGet",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGet(CUdevice *device, int ordinal)
     * }
     */
    public static int cuDeviceGet(MemorySegment device, int ordinal) {
        try {
            return (int) cuDeviceGet$.HANDLE.invokeExact(device, ordinal);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDeviceGetCount$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDeviceGetCount",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGetCount(int *count)
     * }
     */
    public static int cuDeviceGetCount(MemorySegment count) {
        try {
            return (int) cuDeviceGetCount$.HANDLE.invokeExact(count);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDeviceGetName$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDeviceGetName",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
     * }
     */
    public static int cuDeviceGetName(MemorySegment name, int len, int dev) {
        try {
            return (int) cuDeviceGetName$.HANDLE.invokeExact(name, len, dev);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDeviceTotalMem_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDeviceTotalMem_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
     * }
     * (cuda.h declares it as {@code cuDeviceTotalMem} and {@code #define}s that name to this symbol)
     */
    public static int cuDeviceTotalMem_v2(MemorySegment bytes, int dev) {
        try {
            return (int) cuDeviceTotalMem_v2$.HANDLE.invokeExact(bytes, dev);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDeviceGetAttribute$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDeviceGetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
     * }
     */
    public static int cuDeviceGetAttribute(MemorySegment pi, int attrib, int dev) {
        try {
            return (int) cuDeviceGetAttribute$.HANDLE.invokeExact(pi, attrib, dev);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDevicePrimaryCtxRetain$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDevicePrimaryCtxRetain",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
     * }
     */
    public static int cuDevicePrimaryCtxRetain(MemorySegment pctx, int dev) {
        try {
            return (int) cuDevicePrimaryCtxRetain$.HANDLE.invokeExact(pctx, dev);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDevicePrimaryCtxRelease_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDevicePrimaryCtxRelease_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
     * }
     * (cuda.h declares it as {@code cuDevicePrimaryCtxRelease} and {@code #define}s that name to this symbol)
     */
    public static int cuDevicePrimaryCtxRelease_v2(int dev) {
        try {
            return (int) cuDevicePrimaryCtxRelease_v2$.HANDLE.invokeExact(dev);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuDevicePrimaryCtxGetState$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuDevicePrimaryCtxGetState",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
     * }
     */
    public static int cuDevicePrimaryCtxGetState(int dev, MemorySegment flags, MemorySegment active) {
        try {
            return (int) cuDevicePrimaryCtxGetState$.HANDLE.invokeExact(dev, flags, active);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuCtxSetCurrent$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuCtxSetCurrent",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuCtxSetCurrent(CUcontext ctx)
     * }
     */
    public static int cuCtxSetCurrent(MemorySegment ctx) {
        try {
            return (int) cuCtxSetCurrent$.HANDLE.invokeExact(ctx);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuCtxGetCurrent$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuCtxGetCurrent",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuCtxGetCurrent(CUcontext *pctx)
     * }
     */
    public static int cuCtxGetCurrent(MemorySegment pctx) {
        try {
            return (int) cuCtxGetCurrent$.HANDLE.invokeExact(pctx);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuCtxGetDevice$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuCtxGetDevice",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuCtxGetDevice(CUdevice *device)
     * }
     */
    public static int cuCtxGetDevice(MemorySegment device) {
        try {
            return (int) cuCtxGetDevice$.HANDLE.invokeExact(device);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuCtxSynchronize$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuCtxSynchronize",
                FunctionDescriptor.of(JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuCtxSynchronize(void)
     * }
     */
    public static int cuCtxSynchronize() {
        try {
            return (int) cuCtxSynchronize$.HANDLE.invokeExact();
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuCtxSynchronize_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuCtxSynchronize_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuCtxSynchronize_v2(CUcontext ctx)
     * }
     */
    public static int cuCtxSynchronize_v2(MemorySegment ctx) {
        try {
            return (int) cuCtxSynchronize_v2$.HANDLE.invokeExact(ctx);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemGetInfo_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemGetInfo_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
     * }
     * (cuda.h declares it as {@code cuMemGetInfo} and {@code #define}s that name to this symbol)
     */
    public static int cuMemGetInfo_v2(MemorySegment free, MemorySegment total) {
        try {
            return (int) cuMemGetInfo_v2$.HANDLE.invokeExact(free, total);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemAlloc_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemAlloc_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
     * }
     * (cuda.h declares it as {@code cuMemAlloc} and {@code #define}s that name to this symbol)
     */
    public static int cuMemAlloc_v2(MemorySegment dptr, long bytesize) {
        try {
            return (int) cuMemAlloc_v2$.HANDLE.invokeExact(dptr, bytesize);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemFree_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemFree_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemFree_v2(CUdeviceptr dptr)
     * }
     * (cuda.h declares it as {@code cuMemFree} and {@code #define}s that name to this symbol)
     */
    public static int cuMemFree_v2(long dptr) {
        try {
            return (int) cuMemFree_v2$.HANDLE.invokeExact(dptr);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemHostAlloc$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemHostAlloc",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
     * }
     */
    public static int cuMemHostAlloc(MemorySegment pp, long bytesize, int Flags) {
        try {
            return (int) cuMemHostAlloc$.HANDLE.invokeExact(pp, bytesize, Flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemFreeHost$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemFreeHost",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemFreeHost(void *p)
     * }
     */
    public static int cuMemFreeHost(MemorySegment p) {
        try {
            return (int) cuMemFreeHost$.HANDLE.invokeExact(p);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemHostGetDevicePointer_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemHostGetDevicePointer_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int Flags)
     * }
     * (cuda.h declares it as {@code cuMemHostGetDevicePointer} and {@code #define}s that name to this symbol)
     */
    public static int cuMemHostGetDevicePointer_v2(MemorySegment pdptr, MemorySegment p, int Flags) {
        try {
            return (int) cuMemHostGetDevicePointer_v2$.HANDLE.invokeExact(pdptr, p, Flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemHostRegister_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemHostRegister_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags)
     * }
     * (cuda.h declares it as {@code cuMemHostRegister} and {@code #define}s that name to this symbol)
     */
    public static int cuMemHostRegister_v2(MemorySegment p, long bytesize, int Flags) {
        try {
            return (int) cuMemHostRegister_v2$.HANDLE.invokeExact(p, bytesize, Flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemHostUnregister$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemHostUnregister",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemHostUnregister(void *p)
     * }
     */
    public static int cuMemHostUnregister(MemorySegment p) {
        try {
            return (int) cuMemHostUnregister$.HANDLE.invokeExact(p);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemcpyHtoD_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemcpyHtoD_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount)
     * }
     * (cuda.h declares it as {@code cuMemcpyHtoD} and {@code #define}s that name to this symbol)
     */
    public static int cuMemcpyHtoD_v2(long dstDevice, MemorySegment srcHost, long ByteCount) {
        try {
            return (int) cuMemcpyHtoD_v2$.HANDLE.invokeExact(dstDevice, srcHost, ByteCount);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemcpyDtoH_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemcpyDtoH_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount)
     * }
     * (cuda.h declares it as {@code cuMemcpyDtoH} and {@code #define}s that name to this symbol)
     */
    public static int cuMemcpyDtoH_v2(MemorySegment dstHost, long srcDevice, long ByteCount) {
        try {
            return (int) cuMemcpyDtoH_v2$.HANDLE.invokeExact(dstHost, srcDevice, ByteCount);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemcpyDtoD_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemcpyDtoD_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount)
     * }
     * (cuda.h declares it as {@code cuMemcpyDtoD} and {@code #define}s that name to this symbol)
     */
    public static int cuMemcpyDtoD_v2(long dstDevice, long srcDevice, long ByteCount) {
        try {
            return (int) cuMemcpyDtoD_v2$.HANDLE.invokeExact(dstDevice, srcDevice, ByteCount);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemcpyHtoDAsync_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemcpyHtoDAsync_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream)
     * }
     * (cuda.h declares it as {@code cuMemcpyHtoDAsync} and {@code #define}s that name to this symbol)
     */
    public static int cuMemcpyHtoDAsync_v2(long dstDevice, MemorySegment srcHost, long ByteCount, MemorySegment hStream) {
        try {
            return (int) cuMemcpyHtoDAsync_v2$.HANDLE.invokeExact(dstDevice, srcHost, ByteCount, hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemcpyDtoHAsync_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemcpyDtoHAsync_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream)
     * }
     * (cuda.h declares it as {@code cuMemcpyDtoHAsync} and {@code #define}s that name to this symbol)
     */
    public static int cuMemcpyDtoHAsync_v2(MemorySegment dstHost, long srcDevice, long ByteCount, MemorySegment hStream) {
        try {
            return (int) cuMemcpyDtoHAsync_v2$.HANDLE.invokeExact(dstHost, srcDevice, ByteCount, hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemcpyDtoDAsync_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemcpyDtoDAsync_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream)
     * }
     * (cuda.h declares it as {@code cuMemcpyDtoDAsync} and {@code #define}s that name to this symbol)
     */
    public static int cuMemcpyDtoDAsync_v2(long dstDevice, long srcDevice, long ByteCount, MemorySegment hStream) {
        try {
            return (int) cuMemcpyDtoDAsync_v2$.HANDLE.invokeExact(dstDevice, srcDevice, ByteCount, hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemsetD8_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemsetD8_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N)
     * }
     * ({@code uc}: only the low 8 bits are used; an {@code int} so that plain int values can be passed)
     * (cuda.h declares it as {@code cuMemsetD8} and {@code #define}s that name to this symbol)
     */
    public static int cuMemsetD8_v2(long dstDevice, int uc, long N) {
        try {
            return (int) cuMemsetD8_v2$.HANDLE.invokeExact(dstDevice, uc, N);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemsetD16_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemsetD16_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD16_v2(CUdeviceptr dstDevice, unsigned short us, size_t N)
     * }
     * ({@code us}: only the low 16 bits are used; an {@code int} so that plain int values can be passed)
     * (cuda.h declares it as {@code cuMemsetD16} and {@code #define}s that name to this symbol)
     */
    public static int cuMemsetD16_v2(long dstDevice, int us, long N) {
        try {
            return (int) cuMemsetD16_v2$.HANDLE.invokeExact(dstDevice, us, N);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemsetD32_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemsetD32_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD32_v2(CUdeviceptr dstDevice, unsigned int ui, size_t N)
     * }
     * (cuda.h declares it as {@code cuMemsetD32} and {@code #define}s that name to this symbol)
     */
    public static int cuMemsetD32_v2(long dstDevice, int ui, long N) {
        try {
            return (int) cuMemsetD32_v2$.HANDLE.invokeExact(dstDevice, ui, N);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemsetD8Async$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemsetD8Async",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream)
     * }
     * ({@code uc}: only the low 8 bits are used; an {@code int} so that plain int values can be passed)
     */
    public static int cuMemsetD8Async(long dstDevice, int uc, long N, MemorySegment hStream) {
        try {
            return (int) cuMemsetD8Async$.HANDLE.invokeExact(dstDevice, uc, N, hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemsetD16Async$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemsetD16Async",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD16Async(CUdeviceptr dstDevice, unsigned short us, size_t N, CUstream hStream)
     * }
     * ({@code us}: only the low 16 bits are used; an {@code int} so that plain int values can be passed)
     */
    public static int cuMemsetD16Async(long dstDevice, int us, long N, MemorySegment hStream) {
        try {
            return (int) cuMemsetD16Async$.HANDLE.invokeExact(dstDevice, us, N, hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemsetD32Async$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemsetD32Async",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream)
     * }
     */
    public static int cuMemsetD32Async(long dstDevice, int ui, long N, MemorySegment hStream) {
        try {
            return (int) cuMemsetD32Async$.HANDLE.invokeExact(dstDevice, ui, N, hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemAddressReserve$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemAddressReserve",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr, unsigned long long flags)
     * }
     */
    public static int cuMemAddressReserve(MemorySegment ptr, long size, long alignment, long addr, long flags) {
        try {
            return (int) cuMemAddressReserve$.HANDLE.invokeExact(ptr, size, alignment, addr, flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemAddressFree$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemAddressFree",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
     * }
     */
    public static int cuMemAddressFree(long ptr, long size) {
        try {
            return (int) cuMemAddressFree$.HANDLE.invokeExact(ptr, size);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemCreate$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop, unsigned long long flags)
     * }
     */
    public static int cuMemCreate(MemorySegment handle, long size, MemorySegment prop, long flags) {
        try {
            return (int) cuMemCreate$.HANDLE.invokeExact(handle, size, prop, flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemRelease$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemRelease",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
     * }
     */
    public static int cuMemRelease(long handle) {
        try {
            return (int) cuMemRelease$.HANDLE.invokeExact(handle);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemMap$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemMap",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle, unsigned long long flags)
     * }
     */
    public static int cuMemMap(long ptr, long size, long offset, long handle, long flags) {
        try {
            return (int) cuMemMap$.HANDLE.invokeExact(ptr, size, offset, handle, flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemUnmap$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemUnmap",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
     * }
     */
    public static int cuMemUnmap(long ptr, long size) {
        try {
            return (int) cuMemUnmap$.HANDLE.invokeExact(ptr, size);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemSetAccess$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemSetAccess",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
     * }
     */
    public static int cuMemSetAccess(long ptr, long size, MemorySegment desc, long count) {
        try {
            return (int) cuMemSetAccess$.HANDLE.invokeExact(ptr, size, desc, count);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuMemGetAllocationGranularity$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuMemGetAllocationGranularity",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop, CUmemAllocationGranularity_flags option)
     * }
     */
    public static int cuMemGetAllocationGranularity(MemorySegment granularity, MemorySegment prop, int option) {
        try {
            return (int) cuMemGetAllocationGranularity$.HANDLE.invokeExact(granularity, prop, option);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuStreamCreate$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuStreamCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
     * }
     */
    public static int cuStreamCreate(MemorySegment phStream, int Flags) {
        try {
            return (int) cuStreamCreate$.HANDLE.invokeExact(phStream, Flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuStreamCreateWithPriority$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuStreamCreateWithPriority",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority)
     * }
     */
    public static int cuStreamCreateWithPriority(MemorySegment phStream, int flags, int priority) {
        try {
            return (int) cuStreamCreateWithPriority$.HANDLE.invokeExact(phStream, flags, priority);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuStreamDestroy_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuStreamDestroy_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamDestroy_v2(CUstream hStream)
     * }
     * (cuda.h declares it as {@code cuStreamDestroy} and {@code #define}s that name to this symbol)
     */
    public static int cuStreamDestroy_v2(MemorySegment hStream) {
        try {
            return (int) cuStreamDestroy_v2$.HANDLE.invokeExact(hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuStreamSynchronize$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuStreamSynchronize",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamSynchronize(CUstream hStream)
     * }
     */
    public static int cuStreamSynchronize(MemorySegment hStream) {
        try {
            return (int) cuStreamSynchronize$.HANDLE.invokeExact(hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuStreamQuery$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuStreamQuery",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamQuery(CUstream hStream)
     * }
     */
    public static int cuStreamQuery(MemorySegment hStream) {
        try {
            return (int) cuStreamQuery$.HANDLE.invokeExact(hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuStreamWaitEvent$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuStreamWaitEvent",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags)
     * }
     */
    public static int cuStreamWaitEvent(MemorySegment hStream, MemorySegment hEvent, int Flags) {
        try {
            return (int) cuStreamWaitEvent$.HANDLE.invokeExact(hStream, hEvent, Flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuEventCreate$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuEventCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
     * }
     */
    public static int cuEventCreate(MemorySegment phEvent, int Flags) {
        try {
            return (int) cuEventCreate$.HANDLE.invokeExact(phEvent, Flags);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuEventDestroy_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuEventDestroy_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventDestroy_v2(CUevent hEvent)
     * }
     * (cuda.h declares it as {@code cuEventDestroy} and {@code #define}s that name to this symbol)
     */
    public static int cuEventDestroy_v2(MemorySegment hEvent) {
        try {
            return (int) cuEventDestroy_v2$.HANDLE.invokeExact(hEvent);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuEventRecord$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuEventRecord",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
     * }
     */
    public static int cuEventRecord(MemorySegment hEvent, MemorySegment hStream) {
        try {
            return (int) cuEventRecord$.HANDLE.invokeExact(hEvent, hStream);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuEventSynchronize$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuEventSynchronize",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventSynchronize(CUevent hEvent)
     * }
     */
    public static int cuEventSynchronize(MemorySegment hEvent) {
        try {
            return (int) cuEventSynchronize$.HANDLE.invokeExact(hEvent);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuEventQuery$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuEventQuery",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventQuery(CUevent hEvent)
     * }
     */
    public static int cuEventQuery(MemorySegment hEvent) {
        try {
            return (int) cuEventQuery$.HANDLE.invokeExact(hEvent);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuEventElapsedTime_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuEventElapsedTime_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
     * }
     * (cuda.h declares it as {@code cuEventElapsedTime} and {@code #define}s that name to this symbol)
     */
    public static int cuEventElapsedTime_v2(MemorySegment pMilliseconds, MemorySegment hStart, MemorySegment hEnd) {
        try {
            return (int) cuEventElapsedTime_v2$.HANDLE.invokeExact(pMilliseconds, hStart, hEnd);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuModuleLoadData$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuModuleLoadData",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuModuleLoadData(CUmodule *module, const void *image)
     * }
     */
    public static int cuModuleLoadData(MemorySegment module, MemorySegment image) {
        try {
            return (int) cuModuleLoadData$.HANDLE.invokeExact(module, image);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuModuleUnload$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuModuleUnload",
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuModuleUnload(CUmodule hmod)
     * }
     */
    public static int cuModuleUnload(MemorySegment hmod) {
        try {
            return (int) cuModuleUnload$.HANDLE.invokeExact(hmod);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuModuleGetFunction$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuModuleGetFunction",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
     * }
     */
    public static int cuModuleGetFunction(MemorySegment hfunc, MemorySegment hmod, MemorySegment name) {
        try {
            return (int) cuModuleGetFunction$.HANDLE.invokeExact(hfunc, hmod, name);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuModuleGetGlobal_v2$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuModuleGetGlobal_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name)
     * }
     * (cuda.h declares it as {@code cuModuleGetGlobal} and {@code #define}s that name to this symbol)
     */
    public static int cuModuleGetGlobal_v2(MemorySegment dptr, MemorySegment bytes, MemorySegment hmod, MemorySegment name) {
        try {
            return (int) cuModuleGetGlobal_v2$.HANDLE.invokeExact(dptr, bytes, hmod, name);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuLaunchKernel$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuLaunchKernel",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra)
     * }
     */
    public static int cuLaunchKernel(MemorySegment f, int gridDimX, int gridDimY, int gridDimZ, int blockDimX, int blockDimY, int blockDimZ, int sharedMemBytes, MemorySegment hStream, MemorySegment kernelParams, MemorySegment extra) {
        try {
            return (int) cuLaunchKernel$.HANDLE.invokeExact(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuFuncGetAttribute$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuFuncGetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc)
     * }
     */
    public static int cuFuncGetAttribute(MemorySegment pi, int attrib, MemorySegment hfunc) {
        try {
            return (int) cuFuncGetAttribute$.HANDLE.invokeExact(pi, attrib, hfunc);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuFuncSetAttribute$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuFuncSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value)
     * }
     */
    public static int cuFuncSetAttribute(MemorySegment hfunc, int attrib, int value) {
        try {
            return (int) cuFuncSetAttribute$.HANDLE.invokeExact(hfunc, attrib, value);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuFuncGetParamInfo$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuFuncGetParamInfo",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuFuncGetParamInfo(CUfunction func, size_t paramIndex, size_t *paramOffset, size_t *paramSize)
     * }
     * CUDA 12.4+; returns CUDA_ERROR_INVALID_VALUE for a {@code paramIndex} past the kernel's last parameter.
     */
    public static int cuFuncGetParamInfo(MemorySegment func, long paramIndex, MemorySegment paramOffset, MemorySegment paramSize) {
        try {
            return (int) cuFuncGetParamInfo$.HANDLE.invokeExact(func, paramIndex, paramOffset, paramSize);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuOccupancyMaxActiveBlocksPerMultiprocessor$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuOccupancyMaxActiveBlocksPerMultiprocessor",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks, CUfunction func, int blockSize, size_t dynamicSMemSize)
     * }
     */
    public static int cuOccupancyMaxActiveBlocksPerMultiprocessor(MemorySegment numBlocks, MemorySegment func, int blockSize, long dynamicSMemSize) {
        try {
            return (int) cuOccupancyMaxActiveBlocksPerMultiprocessor$.HANDLE.invokeExact(numBlocks, func, blockSize, dynamicSMemSize);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    private static final class cuTensorMapEncodeTiled$ {
        static final MethodHandle HANDLE = NativeLibraries.downcall(LIBRARY, "cuTensorMapEncodeTiled",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                        JAVA_INT, JAVA_INT));
    }

    /**
     * {@snippet lang=c :
     * CUresult cuTensorMapEncodeTiled(CUtensorMap *tensorMap, CUtensorMapDataType tensorDataType, cuuint32_t tensorRank,
     *     void *globalAddress, const cuuint64_t *globalDim, const cuuint64_t *globalStrides, const cuuint32_t *boxDim,
     *     const cuuint32_t *elementStrides, CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle,
     *     CUtensorMapL2promotion l2Promotion, CUtensorMapFloatOOBfill oobFill)
     * }
     * Compute capability 9.0+. {@code globalStrides} has {@code tensorRank - 1} byte strides (dimension 0 is contiguous).
     */
    public static int cuTensorMapEncodeTiled(MemorySegment tensorMap, int tensorDataType, int tensorRank, MemorySegment globalAddress,
                                             MemorySegment globalDim, MemorySegment globalStrides, MemorySegment boxDim,
                                             MemorySegment elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill) {
        try {
            return (int) cuTensorMapEncodeTiled$.HANDLE.invokeExact(tensorMap, tensorDataType, tensorRank, globalAddress, globalDim,
                    globalStrides, boxDim, elementStrides, interleave, swizzle, l2Promotion, oobFill);
        } catch (RuntimeException | Error ex$) {
            throw ex$; // e.g. CudaLibraryNotFoundException: the library or symbol could not be bound
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }
}

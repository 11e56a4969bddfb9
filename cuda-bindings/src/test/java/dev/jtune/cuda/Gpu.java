package dev.jtune.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.jtune.cuda.CudaException.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/** What the GPU tests share: device 0's primary context, and small helpers over the bindings. */
final class Gpu {
    private Gpu() {
    }

    static final int DEVICE;
    static final MemorySegment CONTEXT;

    static {
        check(CudaDriver.cuInit(0), "cuInit");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment device = arena.allocate(JAVA_INT);
            check(CudaDriver.cuDeviceGet(device, 0), "cuDeviceGet");
            DEVICE = device.get(JAVA_INT, 0);
            MemorySegment context = arena.allocate(ADDRESS);
            // retained for the life of the test JVM
            check(CudaDriver.cuDevicePrimaryCtxRetain(context, DEVICE), "cuDevicePrimaryCtxRetain");
            CONTEXT = context.get(ADDRESS, 0);
        }
    }

    /** Makes the context current on the calling thread (contexts are per thread). */
    static void makeCurrent() {
        check(CudaDriver.cuCtxSetCurrent(CONTEXT), "cuCtxSetCurrent");
    }

    static int attribute(int attribute) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(CudaDriver.cuDeviceGetAttribute(out, attribute, DEVICE), "cuDeviceGetAttribute(" + attribute + ")");
            return out.get(JAVA_INT, 0);
        }
    }

    /** "sm_90" on an H100. */
    static String arch() {
        return "sm_" + attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    }

    static long malloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check(CudaDriver.cuMemAlloc_v2(out, bytes), "cuMemAlloc_v2");
            return out.get(JAVA_LONG, 0);
        }
    }

    static void free(long pointer) {
        check(CudaDriver.cuMemFree_v2(pointer), "cuMemFree_v2");
    }

    static void upload(long device, MemorySegment host) {
        check(CudaDriver.cuMemcpyHtoD_v2(device, host, host.byteSize()), "cuMemcpyHtoD_v2");
    }

    static MemorySegment download(long device, long bytes, Arena arena) {
        MemorySegment host = arena.allocate(bytes, 16);
        check(CudaDriver.cuMemcpyDtoH_v2(host, device, bytes), "cuMemcpyDtoH_v2");
        return host;
    }

    static MemorySegment createStream() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(CudaDriver.cuStreamCreate(out, CudaDriver.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
            return out.get(ADDRESS, 0);
        }
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.cuda.CudaException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.jtune.cuda.CudaException.check;

/**
 * One GPU's primary context and its properties. Every thread that calls into the driver for this device binds
 * the context first ({@link #makeCurrent()}); that is cheap after the first time on a thread.
 */
public final class CudaContext {
    private static final ThreadLocal<MemorySegment> CURRENT = new ThreadLocal<>();

    private final int ordinal;
    private final int device;
    private final MemorySegment context;
    private final String name;
    private final int major;
    private final int minor;
    private final int multiprocessors;
    private final long totalMemory;
    private final boolean virtualMemory;

    CudaContext(int ordinal) {
        this.ordinal = ordinal;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment intOut = arena.allocate(ValueLayout.JAVA_INT);
            check(CudaDriver.cuDeviceGet(intOut, ordinal), "cuDeviceGet");
            this.device = intOut.get(ValueLayout.JAVA_INT, 0);
            MemorySegment ctxOut = arena.allocate(ValueLayout.ADDRESS);
            check(CudaDriver.cuDevicePrimaryCtxRetain(ctxOut, device), "cuDevicePrimaryCtxRetain");
            this.context = ctxOut.get(ValueLayout.ADDRESS, 0);
            MemorySegment nameOut = arena.allocate(256);
            check(CudaDriver.cuDeviceGetName(nameOut, 256, device), "cuDeviceGetName");
            this.name = nameOut.getString(0);
            MemorySegment sizeOut = arena.allocate(ValueLayout.JAVA_LONG);
            check(CudaDriver.cuDeviceTotalMem_v2(sizeOut, device), "cuDeviceTotalMem_v2");
            this.totalMemory = sizeOut.get(ValueLayout.JAVA_LONG, 0);
        }
        this.major = attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        this.minor = attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.multiprocessors = attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.virtualMemory = attribute(CudaDriver.CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED) != 0;
        makeCurrent();
    }

    /** Initializes the driver and returns the number of CUDA devices; throws when the driver is missing. */
    static int deviceCount() {
        check(CudaDriver.cuInit(0), "cuInit");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_INT);
            check(CudaDriver.cuDeviceGetCount(out), "cuDeviceGetCount");
            return out.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** Binds this context to the calling thread (once per thread and context). */
    public void makeCurrent() {
        if (CURRENT.get() != null && CURRENT.get().equals(context)) {
            return;
        }
        check(CudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        CURRENT.set(context);
    }

    public int attribute(int attribute) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_INT);
            check(CudaDriver.cuDeviceGetAttribute(out, attribute, device), "cuDeviceGetAttribute(" + attribute + ")");
            return out.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** Free and total device memory as the driver reports them: {free, total}. */
    public long[] memoryInfo() {
        makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(ValueLayout.JAVA_LONG);
            MemorySegment total = arena.allocate(ValueLayout.JAVA_LONG);
            check(CudaDriver.cuMemGetInfo_v2(free, total), "cuMemGetInfo_v2");
            return new long[] {free.get(ValueLayout.JAVA_LONG, 0), total.get(ValueLayout.JAVA_LONG, 0)};
        }
    }

    public int ordinal() {
        return ordinal;
    }

    public int device() {
        return device;
    }

    public String name() {
        return name;
    }

    /** "sm_90" for an H100: the architecture kernels are compiled for. */
    public String arch() {
        return "sm_" + major + minor;
    }

    public int multiprocessors() {
        return multiprocessors;
    }

    public long totalMemory() {
        return totalMemory;
    }

    public boolean supportsVirtualMemory() {
        return virtualMemory;
    }

    void release() {
        try {
            check(CudaDriver.cuDevicePrimaryCtxRelease_v2(device), "cuDevicePrimaryCtxRelease_v2");
        } catch (CudaException e) {
            // the process is going away; nothing useful to do
        }
    }
}

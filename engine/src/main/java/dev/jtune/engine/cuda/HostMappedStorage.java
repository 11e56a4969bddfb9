package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Storage;
import dev.jtune.engine.backend.HostMappedCounter;
import dev.jtune.engine.backend.HostVisible;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.jtune.cuda.CudaException.check;

/**
 * {@link Placement#HOST_MAPPED} storage of a GPU: its own page-locked host allocation
 * ({@code cuMemHostAlloc(PORTABLE | DEVICEMAP)}, not the transfer pool's and never managed memory), whose
 * {@link #address()} is the device's pointer to it ({@code cuMemHostGetDevicePointer}), so kernels and copies address
 * it like device memory and reach it over PCIe, and whose {@link #hostSegment()} is the same bytes for the host.
 * Freeing waits for the context's queued work first: a kernel or a copy on any stream may still be reading it, and
 * the host memory goes back to the system at once (not to a stream-ordered cache).
 */
final class HostMappedStorage extends Storage implements HostVisible {
    private final CudaContext context;
    private final HostMappedCounter counter;
    private final MemorySegment host;
    private final long devicePointer;

    private HostMappedStorage(Device device, CudaContext context, HostMappedCounter counter, MemorySegment host, long devicePointer,
                              MemoryCategory category) {
        super(device, host.byteSize(), category, Placement.HOST_MAPPED);
        this.context = context;
        this.counter = counter;
        this.host = host;
        this.devicePointer = devicePointer;
    }

    static HostMappedStorage allocate(Device device, CudaContext context, HostMappedCounter counter, long bytes, MemoryCategory category) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("allocateHostMapped: " + bytes + " bytes (must be > 0)");
        }
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(CudaDriver.cuMemHostAlloc(out, bytes, CudaDriver.CU_MEMHOSTALLOC_PORTABLE | CudaDriver.CU_MEMHOSTALLOC_DEVICEMAP),
                    "cuMemHostAlloc(" + bytes + " bytes, PORTABLE | DEVICEMAP)");
            MemorySegment host = out.get(ValueLayout.ADDRESS, 0).reinterpret(bytes);
            MemorySegment pointer = arena.allocate(ValueLayout.JAVA_LONG);
            int result = CudaDriver.cuMemHostGetDevicePointer_v2(pointer, host, 0);
            if (result != 0) {
                CudaDriver.cuMemFreeHost(host); // the mapping failed: do not leak the pinned pages
                check(result, "cuMemHostGetDevicePointer_v2");
            }
            counter.allocated(bytes, category);
            return new HostMappedStorage(device, context, counter, host, pointer.get(ValueLayout.JAVA_LONG, 0), category);
        }
    }

    @Override
    public long address() {
        return devicePointer;
    }

    @Override
    public MemorySegment hostSegment() {
        checkOpen("hostSegment");
        return host;
    }

    @Override
    protected void release() {
        context.makeCurrent();
        check(CudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
        check(CudaDriver.cuMemFreeHost(host), "cuMemFreeHost");
        counter.freed(bytes(), category());
    }
}

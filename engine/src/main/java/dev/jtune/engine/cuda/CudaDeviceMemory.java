package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.memory.DeviceMemory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.jtune.cuda.CudaException.check;

/**
 * The physical operations of {@link DeviceMemory} over the CUDA driver: cuMemAlloc for plain segments, and
 * address reservation plus cuMemCreate/cuMemMap/cuMemSetAccess for expandable ones. Out-of-memory is reported
 * as 0 so that the allocator can free its cache and retry; every other failure throws.
 */
final class CudaDeviceMemory implements DeviceMemory {
    private final CudaContext context;
    private final long granularity;

    CudaDeviceMemory(CudaContext context) {
        this.context = context;
        this.granularity = context.supportsVirtualMemory() ? queryGranularity() : 2L << 20;
    }

    @Override
    public long capacity() {
        return context.totalMemory();
    }

    @Override
    public long free() {
        return context.memoryInfo()[0];
    }

    @Override
    public long malloc(long bytes) {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_LONG);
            int rc = CudaDriver.cuMemAlloc_v2(out, bytes);
            if (rc == CudaDriver.CUDA_ERROR_OUT_OF_MEMORY) {
                return 0;
            }
            check(rc, "cuMemAlloc_v2(" + bytes + " bytes)");
            return out.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    @Override
    public void free(long address) {
        context.makeCurrent();
        check(CudaDriver.cuMemFree_v2(address), "cuMemFree_v2");
    }

    @Override
    public void synchronize() {
        context.makeCurrent();
        check(CudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
    }

    @Override
    public boolean supportsVirtualMemory() {
        return context.supportsVirtualMemory();
    }

    @Override
    public long granularity() {
        return granularity;
    }

    @Override
    public long reserve(long bytes) {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_LONG);
            check(CudaDriver.cuMemAddressReserve(out, bytes, 0L, 0L, 0L), "cuMemAddressReserve(" + bytes + " bytes)");
            return out.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    @Override
    public void unreserve(long address, long bytes) {
        context.makeCurrent();
        check(CudaDriver.cuMemAddressFree(address, bytes), "cuMemAddressFree");
    }

    @Override
    public long createPhysical(long bytes) {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_LONG);
            int rc = CudaDriver.cuMemCreate(out, bytes, allocationProp(arena), 0L);
            if (rc == CudaDriver.CUDA_ERROR_OUT_OF_MEMORY) {
                return 0;
            }
            check(rc, "cuMemCreate(" + bytes + " bytes)");
            return out.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    @Override
    public void releasePhysical(long handle) {
        context.makeCurrent();
        check(CudaDriver.cuMemRelease(handle), "cuMemRelease");
    }

    @Override
    public void map(long address, long bytes, long handle) {
        context.makeCurrent();
        check(CudaDriver.cuMemMap(address, bytes, 0L, handle, 0L), "cuMemMap");
    }

    @Override
    public void unmap(long address, long bytes) {
        context.makeCurrent();
        check(CudaDriver.cuMemUnmap(address, bytes), "cuMemUnmap");
    }

    @Override
    public void setAccess(long address, long bytes) {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment desc = arena.allocate(CudaDriver.CUmemAccessDesc.LAYOUT);
            CudaDriver.CUmemAccessDesc.locationType(desc, CudaDriver.CU_MEM_LOCATION_TYPE_DEVICE);
            CudaDriver.CUmemAccessDesc.locationId(desc, context.device());
            CudaDriver.CUmemAccessDesc.flags(desc, CudaDriver.CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
            check(CudaDriver.cuMemSetAccess(address, bytes, desc, 1L), "cuMemSetAccess");
        }
    }

    /** Pinned device memory on this GPU, no shareable handle. */
    private MemorySegment allocationProp(Arena arena) {
        MemorySegment prop = arena.allocate(CudaDriver.CUmemAllocationProp.LAYOUT);
        CudaDriver.CUmemAllocationProp.type(prop, CudaDriver.CU_MEM_ALLOCATION_TYPE_PINNED);
        CudaDriver.CUmemAllocationProp.locationType(prop, CudaDriver.CU_MEM_LOCATION_TYPE_DEVICE);
        CudaDriver.CUmemAllocationProp.locationId(prop, context.device());
        return prop;
    }

    private long queryGranularity() {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_LONG);
            check(CudaDriver.cuMemGetAllocationGranularity(out, allocationProp(arena), CudaDriver.CU_MEM_ALLOC_GRANULARITY_MINIMUM),
                    "cuMemGetAllocationGranularity");
            return out.get(ValueLayout.JAVA_LONG, 0);
        }
    }
}

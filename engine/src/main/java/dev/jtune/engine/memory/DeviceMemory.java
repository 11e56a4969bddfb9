package dev.jtune.engine.memory;

/**
 * The physical memory operations a {@link CachingAllocator} needs from one device, and nothing else: the
 * allocator decides what to cache, this only takes and gives back. Implemented over the CUDA driver
 * ({@code cuMemAlloc}, {@code cuMemAddressReserve}, {@code cuMemCreate}, {@code cuMemMap}, ...) and by
 * {@link SimulatedDeviceMemory} for tests and the meta device.
 *
 * <p>Running out of memory is an expected outcome (the allocator frees its cache and retries), so it is reported
 * by a 0 return value; misuse (freeing twice, mapping over a mapping, ...) is a bug and throws.
 */
public interface DeviceMemory {

    /** Total bytes of the device. */
    long capacity();

    /** Bytes the device could still hand out now (to this process and any other). */
    long free();

    // ---------------------------------------------------------------- plain allocations

    /** Allocates {@code bytes} (> 0); returns the device address, or 0 when the device is out of memory. */
    long malloc(long bytes);

    /** Frees an address returned by {@link #malloc}. */
    void free(long address);

    /**
     * Waits until the device has finished all work queued so far. The caching modes never need it (a freed block is
     * reused in stream order); the uncached mode frees memory at once, so it waits for kernels that may still use it.
     */
    void synchronize();

    // ---------------------------------------------------------------- virtual memory

    /** Whether {@link #reserve}, {@link #createPhysical}, {@link #map} and friends work on this device. */
    boolean supportsVirtualMemory();

    /** The unit of physical allocations and mappings (2 MiB on current NVIDIA GPUs); a power of two. */
    long granularity();

    /**
     * Reserves {@code bytes} (a multiple of {@link #granularity()}) of virtual address space, backed by nothing;
     * returns its start (aligned to the granularity), or 0 when the address space cannot be reserved.
     */
    long reserve(long bytes);

    /** Gives back a whole range from {@link #reserve}; nothing may be mapped inside it any more. */
    void unreserve(long address, long bytes);

    /** Creates {@code bytes} (a multiple of the granularity) of physical memory; returns a handle, or 0 when out of memory. */
    long createPhysical(long bytes);

    /** Frees physical memory; the handle must not be mapped. */
    void releasePhysical(long handle);

    /** Maps the whole of a physical handle (exactly {@code bytes}) at {@code address}, inside a reserved range. */
    void map(long address, long bytes, long handle);

    /** Unmaps {@code [address, address + bytes)}, which must consist of whole mappings made by {@link #map}. */
    void unmap(long address, long bytes);

    /** Grants the device read/write access to mapped {@code [address, address + bytes)} (whole mappings). */
    void setAccess(long address, long bytes);
}

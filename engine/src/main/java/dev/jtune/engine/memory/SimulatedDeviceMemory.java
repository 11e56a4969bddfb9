package dev.jtune.engine.memory;

import java.util.HashMap;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;

/**
 * A device that only keeps accounts: capacity-limited, with fake but realistic addresses, and strict about misuse
 * (double free, overlapping maps, releasing a mapped handle, ...: {@link IllegalStateException}) so that allocator
 * bugs surface in tests instead of as corrupted GPU memory. Counts every call. Used by the tests and by the meta
 * device, whose allocator statistics then predict what the CUDA allocator would do.
 *
 * <p>Addresses come from a counter that only grows, aligned to the granularity, with one unused granule between
 * any two ranges: an address is never handed out twice, and a block wrongly spanning two ranges is caught by
 * {@link #checkAccessible}.
 */
public final class SimulatedDeviceMemory implements DeviceMemory {
    public static final long DEFAULT_GRANULARITY = 2L << 20;
    /** Where the fake address space starts: looks like a device pointer, far from 0 so that 0 stays "none". */
    private static final long BASE_ADDRESS = 0x7f00_0000_0000L;

    /** Whether the simulated device reserves and maps virtual ranges (what expandable segments need). */
    public enum VirtualMemory { SUPPORTED, UNSUPPORTED }

    /** Calls made so far, successful or not. */
    public record Calls(long malloc, long free, long reserve, long unreserve, long createPhysical,
                        long releasePhysical, long map, long unmap, long setAccess, long synchronize) {
    }

    private static final class Handle {
        final long bytes;
        long mappedAt; // 0 when not mapped

        Handle(long bytes) {
            this.bytes = bytes;
        }
    }

    private record Mapping(long bytes, long handle, boolean accessible) {
    }

    private final long capacity;
    private final long granularity;
    private final boolean virtualMemory;

    private long nextAddress = BASE_ADDRESS;
    private long nextHandle = 1;
    private long used;
    private long mappedBytes;
    private final NavigableMap<Long, Long> mallocs = new TreeMap<>();
    private final NavigableMap<Long, Long> reservations = new TreeMap<>();
    private final Map<Long, Handle> handles = new HashMap<>();
    private final NavigableMap<Long, Mapping> mappings = new TreeMap<>();

    private long mallocCalls, freeCalls, reserveCalls, unreserveCalls, createCalls, releaseCalls, mapCalls,
            unmapCalls, setAccessCalls, synchronizeCalls;

    /** A device of {@code capacity} bytes with virtual memory and 2 MiB granularity. */
    public SimulatedDeviceMemory(long capacity) {
        this(capacity, DEFAULT_GRANULARITY, VirtualMemory.SUPPORTED);
    }

    public SimulatedDeviceMemory(long capacity, long granularity, VirtualMemory virtualMemory) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be positive, got " + capacity);
        }
        if (granularity <= 0 || Long.bitCount(granularity) != 1) {
            throw new IllegalArgumentException("granularity must be a power of two, got " + granularity);
        }
        this.capacity = capacity;
        this.granularity = granularity;
        this.virtualMemory = virtualMemory == VirtualMemory.SUPPORTED;
    }

    // ---------------------------------------------------------------- DeviceMemory

    @Override
    public long capacity() {
        return capacity;
    }

    @Override
    public synchronized long free() {
        return capacity - used;
    }

    @Override
    public synchronized long malloc(long bytes) {
        mallocCalls++;
        if (bytes <= 0) {
            throw new IllegalArgumentException("malloc of " + bytes + " bytes");
        }
        if (bytes > capacity - used) {
            return 0;
        }
        long address = takeAddresses(bytes);
        mallocs.put(address, bytes);
        used += bytes;
        return address;
    }

    @Override
    public synchronized void free(long address) {
        freeCalls++;
        Long bytes = mallocs.remove(address);
        if (bytes == null) {
            throw new IllegalStateException("free of " + hex(address) + ": not an address returned by malloc, or freed already");
        }
        used -= bytes;
    }

    /** Nothing runs on a simulated device; the call is counted. */
    @Override
    public synchronized void synchronize() {
        synchronizeCalls++;
    }

    @Override
    public boolean supportsVirtualMemory() {
        return virtualMemory;
    }

    @Override
    public long granularity() {
        return granularity;
    }

    @Override
    public synchronized long reserve(long bytes) {
        reserveCalls++;
        requireVirtualMemory("reserve");
        requireGranules("reserve", bytes);
        long address = takeAddresses(bytes);
        reservations.put(address, bytes);
        return address;
    }

    @Override
    public synchronized void unreserve(long address, long bytes) {
        unreserveCalls++;
        Long reserved = reservations.get(address);
        if (reserved == null || reserved != bytes) {
            throw new IllegalStateException("unreserve " + range(address, bytes) + ": not a reserved range"
                    + (reserved == null ? "" : " (the reservation there has " + reserved + " bytes)"));
        }
        Map.Entry<Long, Mapping> inside = mappings.ceilingEntry(address);
        if (inside != null && inside.getKey() < address + bytes) {
            throw new IllegalStateException("unreserve " + range(address, bytes) + ": " + hex(inside.getKey()) + " is still mapped");
        }
        reservations.remove(address);
    }

    @Override
    public synchronized long createPhysical(long bytes) {
        createCalls++;
        requireVirtualMemory("createPhysical");
        requireGranules("createPhysical", bytes);
        if (bytes > capacity - used) {
            return 0;
        }
        long handle = nextHandle++;
        handles.put(handle, new Handle(bytes));
        used += bytes;
        return handle;
    }

    @Override
    public synchronized void releasePhysical(long handle) {
        releaseCalls++;
        Handle h = handles.get(handle);
        if (h == null) {
            throw new IllegalStateException("releasePhysical of unknown or released handle " + handle);
        }
        if (h.mappedAt != 0) {
            throw new IllegalStateException("releasePhysical of handle " + handle + " still mapped at " + hex(h.mappedAt));
        }
        handles.remove(handle);
        used -= h.bytes;
    }

    @Override
    public synchronized void map(long address, long bytes, long handle) {
        mapCalls++;
        requireAligned("map", address, bytes);
        Handle h = handles.get(handle);
        if (h == null) {
            throw new IllegalStateException("map of unknown or released handle " + handle);
        }
        if (h.bytes != bytes) {
            throw new IllegalStateException("map of " + bytes + " bytes with handle " + handle + " of " + h.bytes + " bytes");
        }
        if (h.mappedAt != 0) {
            throw new IllegalStateException("map of handle " + handle + " already mapped at " + hex(h.mappedAt));
        }
        requireReserved("map", address, bytes);
        Map.Entry<Long, Mapping> before = mappings.floorEntry(address + bytes - 1);
        if (before != null && before.getKey() + before.getValue().bytes() > address) {
            throw new IllegalStateException("map " + range(address, bytes) + " overlaps the mapping at "
                    + range(before.getKey(), before.getValue().bytes()));
        }
        mappings.put(address, new Mapping(bytes, handle, false));
        h.mappedAt = address;
        mappedBytes += bytes;
    }

    @Override
    public synchronized void unmap(long address, long bytes) {
        unmapCalls++;
        requireAligned("unmap", address, bytes);
        requireWholeMappings("unmap", address, bytes);
        for (long at = address; at < address + bytes; ) {
            Mapping m = mappings.remove(at);
            handles.get(m.handle()).mappedAt = 0;
            mappedBytes -= m.bytes();
            at += m.bytes();
        }
    }

    @Override
    public synchronized void setAccess(long address, long bytes) {
        setAccessCalls++;
        requireAligned("setAccess", address, bytes);
        requireWholeMappings("setAccess", address, bytes);
        for (long at = address; at < address + bytes; ) {
            Mapping m = mappings.get(at);
            mappings.put(at, new Mapping(m.bytes(), m.handle(), true));
            at += m.bytes();
        }
    }

    // ---------------------------------------------------------------- inspection (tests, invariants)

    /** Bytes taken from the capacity: live mallocs plus live physical handles. */
    public synchronized long used() {
        return used;
    }

    public synchronized int liveAllocations() {
        return mallocs.size();
    }

    public synchronized int liveHandles() {
        return handles.size();
    }

    public synchronized int liveReservations() {
        return reservations.size();
    }

    public synchronized long mappedBytes() {
        return mappedBytes;
    }

    public synchronized Calls calls() {
        return new Calls(mallocCalls, freeCalls, reserveCalls, unreserveCalls, createCalls, releaseCalls, mapCalls,
                unmapCalls, setAccessCalls, synchronizeCalls);
    }

    /**
     * Throws {@link IllegalStateException} unless every byte of {@code [address, address + bytes)} could be
     * touched by a kernel: inside one live malloc, or covered by consecutive accessible mappings.
     */
    public synchronized void checkAccessible(long address, long bytes) {
        Map.Entry<Long, Long> m = mallocs.floorEntry(address);
        if (m != null && address + bytes <= m.getKey() + m.getValue()) {
            return;
        }
        long at = address;
        while (at < address + bytes) {
            Map.Entry<Long, Mapping> e = mappings.floorEntry(at);
            if (e == null || e.getKey() + e.getValue().bytes() <= at || !e.getValue().accessible()) {
                throw new IllegalStateException(range(address, bytes) + " is not accessible device memory: "
                        + hex(at) + (e == null || e.getKey() + e.getValue().bytes() <= at ? " is not mapped" : " has no access set"));
            }
            at = e.getKey() + e.getValue().bytes();
        }
    }

    // ---------------------------------------------------------------- helpers

    private long takeAddresses(long bytes) {
        long address = nextAddress;
        nextAddress = Math.addExact(address, alignUp(bytes) + granularity);
        return address;
    }

    private long alignUp(long bytes) {
        return Math.ceilDiv(bytes, granularity) * granularity;
    }

    private void requireVirtualMemory(String op) {
        if (!virtualMemory) {
            throw new UnsupportedOperationException(op + ": this simulated device has no virtual memory management");
        }
    }

    private void requireGranules(String op, long bytes) {
        if (bytes <= 0 || bytes % granularity != 0) {
            throw new IllegalArgumentException(op + " of " + bytes + " bytes: not a positive multiple of the granularity " + granularity);
        }
    }

    private void requireAligned(String op, long address, long bytes) {
        requireGranules(op, bytes);
        if (address % granularity != 0) {
            throw new IllegalArgumentException(op + " at " + hex(address) + ": not aligned to the granularity " + granularity);
        }
    }

    private void requireReserved(String op, long address, long bytes) {
        Map.Entry<Long, Long> r = reservations.floorEntry(address);
        if (r == null || address + bytes > r.getKey() + r.getValue()) {
            throw new IllegalStateException(op + " " + range(address, bytes) + ": not inside one reserved range");
        }
    }

    /** The range must start at a mapping and be tiled by consecutive whole mappings. */
    private void requireWholeMappings(String op, long address, long bytes) {
        long at = address;
        while (at < address + bytes) {
            Mapping m = mappings.get(at);
            if (m == null) {
                Map.Entry<Long, Mapping> e = mappings.floorEntry(at);
                boolean inside = e != null && e.getKey() + e.getValue().bytes() > at;
                throw new IllegalStateException(op + " " + range(address, bytes) + ": " + hex(at)
                        + (inside ? " is inside a mapping, not at its start" : " is not mapped"));
            }
            at += m.bytes();
        }
        if (at != address + bytes) {
            throw new IllegalStateException(op + " " + range(address, bytes) + ": ends inside the mapping that ends at " + hex(at));
        }
    }

    private static String hex(long address) {
        return "0x" + Long.toHexString(address);
    }

    private static String range(long address, long bytes) {
        return "[" + hex(address) + ", +" + bytes + ")";
    }
}

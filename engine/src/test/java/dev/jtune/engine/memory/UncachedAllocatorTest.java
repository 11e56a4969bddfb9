package dev.jtune.engine.memory;

import dev.jtune.engine.OutOfDeviceMemoryException;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.jtune.engine.MemoryCategory.ACTIVATIONS;
import static dev.jtune.engine.MemoryCategory.WEIGHTS;
import static dev.jtune.engine.MemoryCategory.WORKSPACE;
import static dev.jtune.engine.memory.AllocatorChecks.GIB;
import static dev.jtune.engine.memory.AllocatorChecks.MIB;
import static dev.jtune.engine.memory.AllocatorChecks.checkDeviceEmpty;
import static dev.jtune.engine.memory.AllocatorChecks.checkNoOverlap;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The uncached mode (for compute-sanitizer): one malloc of exactly the request per block, freed with the block. */
class UncachedAllocatorTest {
    private final SimulatedDeviceMemory device = new SimulatedDeviceMemory(GIB);
    private final CachingAllocator allocator = new CachingAllocator(device, CachingAllocator.Config.uncached());
    private final List<Block> live = new ArrayList<>();

    private Block alloc(long bytes) {
        Block b = allocator.allocate(bytes, ACTIVATIONS);
        live.add(b);
        check();
        return b;
    }

    private void free(Block b) {
        allocator.free(b);
        live.remove(b);
        check();
    }

    /** Every live block is its own allocation of exactly its bytes; the device holds nothing else. */
    private void check() {
        allocator.verify();
        MemoryStats s = allocator.stats();
        long sum = 0;
        for (Block b : live) {
            assertEquals(b.requested(), b.size(), () -> b + ": not rounded");
            device.checkAccessible(b.address(), b.size());
            assertThrows(IllegalStateException.class, () -> device.checkAccessible(b.address() + b.size(), 1),
                    () -> "the byte past " + b + " must belong to no allocation");
            sum += b.size();
        }
        assertEquals(sum, s.allocated(), "allocated");
        assertEquals(sum, s.reserved(), "nothing cached: reserved == allocated");
        assertEquals(sum, device.used(), "device bytes");
        assertEquals(live.size(), device.liveAllocations(), "one malloc per live block");
        checkNoOverlap(live);
    }

    @Test
    void everyBlockIsOneMallocOfExactlyTheRequest() {
        alloc(1000);
        alloc(3);
        alloc(5 * MIB + 1);
        alloc(1000);
        assertEquals(4, device.calls().malloc());
        assertEquals(4, allocator.stats().deviceAllocations());
    }

    @Test
    void everyFreeGivesTheMemoryBackAfterTheDeviceFinished() {
        Block a = alloc(4096);
        long address = a.address();
        free(a);
        assertEquals(1, device.calls().free());
        assertEquals(1, device.calls().synchronize(), "kernels queued before the free finish first");
        assertEquals(0, device.used());

        Block again = alloc(4096);
        assertEquals(2, device.calls().malloc(), "no cache: the same size allocates again");
        assertNotEquals(address, again.address());
        free(again);
        checkDeviceEmpty(device);
    }

    @Test
    void statisticsStillAddUp() {
        Block w = allocator.allocate(3 * MIB, WEIGHTS);
        Block a = allocator.allocate(700, ACTIVATIONS);
        Block t = allocator.allocate(2 * MIB, WORKSPACE);
        allocator.free(t);
        MemoryStats s = allocator.stats();
        assertEquals(3 * MIB + 700, s.allocated());
        assertEquals(5 * MIB + 700, s.peakAllocated());
        assertEquals(5 * MIB + 700, s.peakReserved());
        assertEquals(3 * MIB, s.allocated(WEIGHTS));
        assertEquals(0, s.allocated(WORKSPACE));
        assertEquals(2 * MIB, s.peak(WORKSPACE));
        assertEquals(3, s.allocations());
        assertEquals(1, s.frees());
        assertEquals(3, s.deviceAllocations());
        assertEquals(1, s.deviceFrees());

        allocator.emptyCache(); // nothing is cached, nothing changes
        assertEquals(s.reserved(), allocator.stats().reserved());
        allocator.free(a);
        allocator.free(w);
        assertEquals(0, allocator.stats().reserved());
        checkDeviceEmpty(device);
    }

    @Test
    void doubleFreeIsStillDetected() {
        Block a = alloc(512);
        free(a);
        assertThrows(IllegalStateException.class, () -> allocator.free(a));
    }

    @Test
    void closeFreesLiveBlocks() {
        alloc(100);
        alloc(2 * MIB);
        allocator.close();
        live.forEach(b -> assertFalse(b.isLive()));
        checkDeviceEmpty(device);
    }

    @Test
    void memoryLimitIsRespectedAndTheErrorSaysHowMemoryIsHeld() {
        CachingAllocator limited = new CachingAllocator(device, CachingAllocator.Config.uncached().withMemoryLimit(10 * MIB));
        limited.allocate(6 * MIB, ACTIVATIONS);
        OutOfDeviceMemoryException e = assertThrows(OutOfDeviceMemoryException.class,
                () -> limited.allocate(6 * MIB, ACTIVATIONS));
        assertTrue(e.getMessage().contains("1 uncached blocks, each its own allocation"), e.getMessage());
        assertEquals(6 * MIB, limited.stats().reserved());
    }

    // ---------------------------------------------------------------- selecting the mode

    @Test
    void thePropertyOrTheEnvironmentSelectsUncached() {
        assertEquals(CachingAllocator.Segments.UNCACHED,
                CachingAllocator.Config.of(CachingAllocator.Segments.EXPANDABLE, 0, "uncached", null).segments());
        assertEquals(CachingAllocator.Segments.UNCACHED,
                CachingAllocator.Config.of(CachingAllocator.Segments.EXPANDABLE, 0, null, "UNCACHED").segments());
        assertEquals(CachingAllocator.Segments.UNCACHED,
                CachingAllocator.Config.of(CachingAllocator.Segments.PLAIN, 0, " uncached ", "caching").segments(), "the property wins");
        assertEquals(CachingAllocator.Segments.EXPANDABLE,
                CachingAllocator.Config.of(CachingAllocator.Segments.EXPANDABLE, 0, "caching", "uncached").segments(), "the property wins");
        assertEquals(CachingAllocator.Segments.PLAIN, CachingAllocator.Config.of(CachingAllocator.Segments.PLAIN, 0, null, null).segments());
        assertEquals(CachingAllocator.Segments.EXPANDABLE, CachingAllocator.Config.of(CachingAllocator.Segments.EXPANDABLE, 0, "", "").segments());
        assertEquals(5 * MIB, CachingAllocator.Config.of(CachingAllocator.Segments.EXPANDABLE, 5 * MIB, "uncached", null).memoryLimit());
    }

    @Test
    void anUnknownSettingIsRefusedNamingItsSource() {
        IllegalArgumentException p = assertThrows(IllegalArgumentException.class,
                () -> CachingAllocator.Config.of(CachingAllocator.Segments.EXPANDABLE, 0, "none", null));
        assertTrue(p.getMessage().contains("jtune.allocator") && p.getMessage().contains("\"none\""), p.getMessage());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CachingAllocator.Config.of(CachingAllocator.Segments.EXPANDABLE, 0, null, "off"));
        assertTrue(e.getMessage().contains("JTUNE_ALLOCATOR") && e.getMessage().contains("\"off\""), e.getMessage());
    }
}

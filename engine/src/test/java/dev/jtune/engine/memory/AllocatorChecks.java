package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Invariants that must hold between any two operations of an allocator over a simulated device. */
final class AllocatorChecks {
    static final long KIB = 1L << 10;
    static final long MIB = 1L << 20;
    static final long GIB = 1L << 30;

    private AllocatorChecks() {
    }

    static void checkConsistent(CachingAllocator allocator, SimulatedDeviceMemory device, Collection<Block> live) {
        allocator.verify();
        MemoryStats s = allocator.stats();
        long sum = 0;
        long[] byCategory = new long[MemoryCategory.values().length];
        for (Block b : live) {
            assertTrue(b.isLive(), () -> b + " should be live");
            assertTrue(b.size() >= b.requested() && b.size() % 512 == 0, () -> "bad size of " + b);
            sum += b.size();
            byCategory[b.category().ordinal()] += b.size();
            device.checkAccessible(b.address(), b.size());
        }
        assertEquals(sum, s.allocated(), "allocated == sum of live block sizes");
        long categorySum = 0;
        for (MemoryCategory c : MemoryCategory.values()) {
            assertEquals(byCategory[c.ordinal()], s.allocated(c), "allocated of " + c);
            assertTrue(s.peak(c) >= s.allocated(c), "peak of " + c + " >= current");
            categorySum += s.allocated(c);
        }
        assertEquals(s.allocated(), categorySum, "categories add up to allocated");
        assertTrue(s.reserved() >= s.allocated(), () -> "reserved >= allocated: " + s);
        assertTrue(s.peakAllocated() >= s.allocated() && s.peakReserved() >= s.reserved(), () -> "peaks >= current: " + s);
        assertEquals(device.used(), s.reserved(), "the allocator is the device's only user: reserved == used");
        assertTrue(device.used() <= device.capacity(), "device over capacity");
        assertTrue(s.reserved() <= allocator.limit(), "reserved within the limit");
        checkNoOverlap(live);
    }

    static void checkNoOverlap(Collection<Block> live) {
        List<Block> sorted = new ArrayList<>(live);
        sorted.sort(Comparator.comparingLong(Block::address));
        for (int i = 1; i < sorted.size(); i++) {
            Block a = sorted.get(i - 1);
            Block b = sorted.get(i);
            assertTrue(a.address() + a.size() <= b.address(), () -> a + " overlaps " + b);
        }
    }

    /** Everything given back: no malloc, physical handle, mapping or address range left on the device. */
    static void checkDeviceEmpty(SimulatedDeviceMemory device) {
        assertEquals(0, device.used(), "bytes used");
        assertEquals(0, device.liveAllocations(), "live mallocs");
        assertEquals(0, device.liveHandles(), "live physical handles");
        assertEquals(0, device.mappedBytes(), "mapped bytes");
        assertEquals(0, device.liveReservations(), "live reservations");
    }
}

package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.OutOfDeviceMemoryException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;

import static dev.jtune.engine.MemoryCategory.ACTIVATIONS;
import static dev.jtune.engine.MemoryCategory.GRADIENTS;
import static dev.jtune.engine.MemoryCategory.OPTIMIZER;
import static dev.jtune.engine.MemoryCategory.WEIGHTS;
import static dev.jtune.engine.MemoryCategory.WORKSPACE;
import static dev.jtune.engine.memory.AllocatorChecks.GIB;
import static dev.jtune.engine.memory.AllocatorChecks.KIB;
import static dev.jtune.engine.memory.AllocatorChecks.MIB;
import static dev.jtune.engine.memory.AllocatorChecks.checkConsistent;
import static dev.jtune.engine.memory.AllocatorChecks.checkDeviceEmpty;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CachingAllocatorTest {
    private final List<Block> live = new ArrayList<>();
    private SimulatedDeviceMemory device;
    private CachingAllocator allocator;

    private void start(Mode mode, long capacity) {
        start(mode, capacity, 0);
    }

    private void start(Mode mode, long capacity, long memoryLimit) {
        device = new SimulatedDeviceMemory(capacity);
        allocator = new CachingAllocator(device, mode.config(memoryLimit));
    }

    private Block alloc(long bytes) {
        return alloc(bytes, ACTIVATIONS);
    }

    private Block alloc(long bytes, MemoryCategory category) {
        Block b = allocator.allocate(bytes, category);
        live.add(b);
        checkConsistent(allocator, device, live);
        return b;
    }

    private void free(Block b) {
        allocator.free(b);
        live.remove(b);
        checkConsistent(allocator, device, live);
    }

    private long deviceAllocations() {
        return allocator.stats().deviceAllocations();
    }

    /**
     * A leftover chunk kept by a live block after it is taken whole by a request whose remainder would be under 1 MiB:
     * the block spans more than from fresh memory. Holding blocks of {@link CachingAllocator#leftoverChunkSizes} first
     * leaves only fresh memory, so the request spans what a fresh allocator's does (what MetaMatchesCudaGpuTest needs).
     */
    @ParameterizedTest
    @EnumSource(Mode.class)
    void holdingTheLeftoverChunksLeavesAFreshAllocatorsSpans(Mode mode) {
        start(mode, GIB);
        long request = 3 * MIB;
        Block gap = alloc(request + 700 * 1024);
        Block pin = alloc(2 * MIB); // a resident after it keeps the chunk from coalescing and the cache from going
        free(gap);
        allocator.emptyCache();
        assertTrue(allocator.leftoverChunkSizes().contains(request + 700 * 1024), allocator.leftoverChunkSizes().toString());
        Block taken = alloc(request);
        assertEquals(request + 700 * 1024, taken.size(), "the leftover is taken whole");
        free(taken);

        List<Block> held = new ArrayList<>();
        for (long size : allocator.leftoverChunkSizes()) {
            held.add(alloc(size, MemoryCategory.WORKSPACE));
        }
        assertTrue(allocator.leftoverChunkSizes().isEmpty(), "every leftover held");
        Block fresh = alloc(request);
        assertEquals(request, fresh.size(), "carved from fresh memory, as a fresh allocator carves it");
        free(fresh);
        held.forEach(this::free);
        free(pin);
    }

    // ---------------------------------------------------------------- reuse, splitting, coalescing

    @ParameterizedTest
    @EnumSource(Mode.class)
    void freedBlockIsReusedAtTheSameAddressWithoutTouchingTheDevice(Mode mode) {
        start(mode, GIB);
        Block large = alloc(5 * MIB);
        Block small = alloc(1000);
        long largeAddress = large.address();
        long smallAddress = small.address();
        free(large);
        free(small);
        SimulatedDeviceMemory.Calls before = device.calls();

        assertEquals(largeAddress, alloc(5 * MIB).address());
        assertEquals(smallAddress, alloc(1000).address());
        assertEquals(before, device.calls(), "no device call for a cached block");
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void bigFreeBlockIsSplitForSmallerRequestsAndTheRemainderStaysUsable(Mode mode) {
        start(mode, GIB);
        Block big = alloc(100 * MIB);
        long base = big.address();
        free(big);
        long deviceAllocations = deviceAllocations();
        long reserved = allocator.stats().reserved();

        assertEquals(base, alloc(30 * MIB).address());
        assertEquals(base + 30 * MIB, alloc(30 * MIB).address());
        assertEquals(base + 60 * MIB, alloc(40 * MIB).address(), "the remainder serves the last request");
        assertEquals(deviceAllocations, deviceAllocations());
        assertEquals(reserved, allocator.stats().reserved());
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void smallBlocksShareOneSegment(Mode mode) {
        start(mode, GIB);
        for (int i = 0; i < 1000; i++) {
            live.add(allocator.allocate(2 * KIB, ACTIVATIONS)); // checked once below: each check walks every block
        }
        checkConsistent(allocator, device, live);
        assertEquals(1, deviceAllocations(), "1000 blocks of 2 KiB fit one 2 MiB segment or page");
        assertEquals(2 * MIB, allocator.stats().reserved());
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void freedNeighboursCoalesceSoTheirSumFitsWithoutNewMemory(Mode mode) {
        start(mode, GIB);
        Block big = alloc(100 * MIB);
        long base = big.address();
        free(big);
        Block a = alloc(30 * MIB);
        Block b = alloc(30 * MIB);
        Block c = alloc(40 * MIB);
        long deviceAllocations = deviceAllocations();

        free(b); // no free neighbour yet
        free(a); // merges with b
        free(c); // merges with a+b (and the tail of an expandable range)
        Block whole = alloc(100 * MIB);

        assertEquals(base, whole.address());
        assertEquals(deviceAllocations, deviceAllocations(), "the merged blocks serve the request");
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void smallAndLargePoolsNeverShareMemory(Mode mode) {
        start(mode, GIB);
        Block large = alloc(4 * MIB);
        long largeAddress = large.address();
        free(large);
        long before = deviceAllocations();

        Block small = alloc(KIB);

        assertFalse(small.address() >= largeAddress && small.address() < largeAddress + 4 * MIB,
                "a small request must not split a cached large block");
        assertEquals(before + 1, deviceAllocations(), "the small pool gets its own memory");
        long smallAddress = small.address();
        free(small);
        Block large2 = alloc(MIB + 1);
        assertNotEquals(smallAddress, large2.address(), "1 MiB + 1 byte is a large request");
        assertTrue(large2.address() < smallAddress || large2.address() >= smallAddress + 2 * MIB);
    }

    // ---------------------------------------------------------------- sizes

    @ParameterizedTest
    @EnumSource(Mode.class)
    void sizesRoundUpTo512Bytes(Mode mode) {
        start(mode, GIB);
        assertEquals(512, alloc(1).size());
        assertEquals(512, alloc(512).size());
        assertEquals(1024, alloc(513).size());
        assertEquals(MIB, alloc(MIB).size());
        Block justLarge = alloc(MIB + 1);
        assertEquals(MIB + 512, justLarge.size());
        assertEquals(MIB + 1, justLarge.requested());
        assertEquals(ACTIVATIONS, justLarge.category());
    }

    @Test
    void plainLargeBlockKeepsARemainderOfAtMostOneMegabyte() {
        start(Mode.PLAIN, GIB);
        Block b = alloc(19 * MIB + 512 * KIB);
        assertEquals(20 * MIB, b.size(), "a 0.5 MiB remainder of the 20 MiB segment is not worth splitting off");
        Block c = alloc(30 * MIB);
        assertEquals(30 * MIB, c.size());
        assertEquals(50 * MIB, allocator.stats().reserved(), "20 MiB for requests under 10 MiB, else the size rounded to 2 MiB");
    }

    // ---------------------------------------------------------------- statistics

    /**
     * What held the memory at the device's peak: each category's bytes when the overall peak was last raised, which
     * add up to the peak, against the categories' own peaks (activations peaked earlier, when the total was lower).
     */
    @ParameterizedTest
    @EnumSource(Mode.class)
    void theCategoriesAtThePeakAddUpToIt(Mode mode) {
        start(mode, GIB);
        Block w = alloc(64 * MIB, WEIGHTS);
        Block a = alloc(50 * MIB);
        free(a);
        Block ws = alloc(80 * MIB, WORKSPACE);
        MemoryStats s = allocator.stats();
        assertEquals(w.size() + ws.size(), s.peakAllocated(), "the peak came with the workspace");
        assertEquals(a.size(), s.peak(ACTIVATIONS), "the activations' own peak");
        assertEquals(0, s.atPeak(ACTIVATIONS), "no activations at the device's peak");
        assertEquals(w.size(), s.atPeak(WEIGHTS));
        assertEquals(ws.size(), s.atPeak(WORKSPACE));
        assertEquals(s.peakAllocated(), s.atPeakByCategory().values().stream().mapToLong(Long::longValue).sum());
        free(ws);
        allocator.resetPeaks();
        assertEquals(w.size(), allocator.stats().atPeak(WEIGHTS), "after a reset, what is allocated now");
        assertEquals(0, allocator.stats().atPeak(WORKSPACE));
        free(w);
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void statisticsAddUpThroughALifecycle(Mode mode) {
        start(mode, GIB);
        Block w = alloc(64 * MIB, WEIGHTS);
        Block g = alloc(64 * MIB, GRADIENTS);
        Block o = alloc(3 * MIB, OPTIMIZER);
        Block a1 = alloc(200 * KIB);
        Block a2 = alloc(50 * MIB);
        MemoryStats s = allocator.stats();
        assertEquals(w.size() + g.size() + o.size() + a1.size() + a2.size(), s.allocated());
        assertEquals(a1.size() + a2.size(), s.allocated(ACTIVATIONS));
        assertEquals(5, s.allocations());

        free(a2);
        free(a1);
        MemoryStats after = allocator.stats();
        assertEquals(a1.size() + a2.size(), after.peak(ACTIVATIONS), "the category's peak outlives its blocks");
        assertEquals(0, after.allocated(ACTIVATIONS));
        assertEquals(s.allocated(), after.peakAllocated());
        assertEquals(2, after.frees());

        allocator.resetPeaks();
        MemoryStats reset = allocator.stats();
        assertEquals(reset.allocated(), reset.peakAllocated());
        assertEquals(reset.reserved(), reset.peakReserved());
        assertEquals(0, reset.peak(ACTIVATIONS));

        free(w);
        free(g);
        free(o);
        assertEquals(0, allocator.stats().allocated());
        assertTrue(allocator.stats().reserved() > 0, "freed blocks stay cached");
        allocator.emptyCache();
        assertEquals(0, allocator.stats().reserved());
        assertEquals(allocator.stats().deviceAllocations(), allocator.stats().deviceFrees());
        checkConsistent(allocator, device, live);
    }

    @Test
    void plainEmptyCacheKeepsEverySegmentThatHoldsALiveBlock() {
        start(Mode.PLAIN, GIB);
        Block big = alloc(100 * MIB);
        free(big);
        alloc(30 * MIB); // splits the 100 MiB segment
        free(alloc(200 * MIB));

        allocator.emptyCache();

        assertEquals(100 * MIB, allocator.stats().reserved(), "the 100 MiB segment stays whole for a 30 MiB block");
        checkConsistent(allocator, device, live);
    }

    @Test
    void expandableEmptyCacheKeepsOnlyThePagesUnderLiveBlocks() {
        start(Mode.EXPANDABLE, GIB);
        Block first = alloc(3 * MIB);  // [0, 3) MiB: pages 0 and 1
        alloc(3 * MIB);                // [3, 6) MiB: pages 1 and 2
        assertEquals(6 * MIB, allocator.stats().reserved());
        free(first);

        allocator.emptyCache();

        assertEquals(4 * MIB, allocator.stats().reserved(), "page 0 lies inside free space; page 1 still holds live bytes");
        checkConsistent(allocator, device, live);
    }

    // ---------------------------------------------------------------- misuse

    @ParameterizedTest
    @EnumSource(Mode.class)
    void doubleFreeIsDetectedEvenAfterTheAddressWasReused(Mode mode) {
        start(mode, GIB);
        Block a = alloc(5 * MIB);
        free(a);
        assertThrows(IllegalStateException.class, () -> allocator.free(a));

        Block b = alloc(5 * MIB);
        assertEquals(a.address(), b.address());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> allocator.free(a));
        assertTrue(e.getMessage().contains("double free"), e.getMessage());
        assertTrue(b.isLive(), "the new owner keeps its block");
        checkConsistent(allocator, device, live);
    }

    @Test
    void freeingAnotherAllocatorsBlockIsRejected() {
        start(Mode.PLAIN, GIB);
        CachingAllocator other = new CachingAllocator(new SimulatedDeviceMemory(GIB), Mode.PLAIN.config());
        Block foreign = other.allocate(MIB, WEIGHTS);
        assertThrows(IllegalArgumentException.class, () -> allocator.free(foreign));
        assertTrue(foreign.isLive());
    }

    @Test
    void badArgumentsAreRejected() {
        start(Mode.PLAIN, GIB);
        assertThrows(IllegalArgumentException.class, () -> allocator.allocate(0, WEIGHTS));
        assertThrows(IllegalArgumentException.class, () -> allocator.allocate(-5, WEIGHTS));
        assertThrows(IllegalArgumentException.class, () -> new CachingAllocator.Config(CachingAllocator.Segments.PLAIN, -1));
        SimulatedDeviceMemory noVirtualMemory = new SimulatedDeviceMemory(GIB, 2 * MIB, SimulatedDeviceMemory.VirtualMemory.UNSUPPORTED);
        assertThrows(IllegalArgumentException.class,
                () -> new CachingAllocator(noVirtualMemory, CachingAllocator.Config.expandable()));
    }

    // ---------------------------------------------------------------- out of memory

    @ParameterizedTest
    @EnumSource(Mode.class)
    void outOfMemoryNamesTheRequestTheDeviceAndThisAllocator(Mode mode) {
        start(mode, 64 * MIB);
        alloc(40 * MIB, WEIGHTS);
        alloc(2 * KIB, OPTIMIZER);

        OutOfDeviceMemoryException e = assertThrows(OutOfDeviceMemoryException.class, () -> allocator.allocate(50 * MIB, ACTIVATIONS));

        String m = e.getMessage();
        assertEquals(50 * MIB, e.requested());
        assertEquals(22 * MIB, e.free(), "64 MiB - 40 MiB - one 2 MiB small segment or page");
        for (String part : List.of("50.00 MiB", "52428800 bytes", "ACTIVATIONS", "large pool", "64.00 MiB total",
                "22.00 MiB free", "40.00 MiB allocated", "42.00 MiB reserved", "WEIGHTS 40.00 MiB", "OPTIMIZER 2.00 KiB", "Hint")) {
            assertTrue(m.contains(part), () -> "message lacks '" + part + "': " + m);
        }
        checkConsistent(allocator, device, live);
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void cacheIsReleasedAndTheRequestRetriedBeforeGivingUp(Mode mode) {
        start(mode, 64 * MIB);
        Block cached = alloc(40 * MIB);
        alloc(12 * MIB); // after it, so that an expandable range cannot simply grow the cached block
        free(cached);
        long frees = allocator.stats().deviceFrees();

        Block b = alloc(50 * MIB); // 12 + 40 + 50 > 64: fits only without the cached 40

        assertTrue(allocator.stats().deviceFrees() > frees, "cached memory went back to the device first");
        assertEquals(50 * MIB, b.size());
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void memoryLimitIsRespectedOnABiggerDevice(Mode mode) {
        start(mode, GIB, 64 * MIB);
        assertEquals(64 * MIB, allocator.limit());
        Block a = alloc(40 * MIB);

        OutOfDeviceMemoryException e = assertThrows(OutOfDeviceMemoryException.class, () -> allocator.allocate(30 * MIB, ACTIVATIONS));
        assertTrue(e.getMessage().contains("memory limit 64.00 MiB"), e.getMessage());
        assertEquals(24 * MIB, e.free(), "free means free under the limit");
        assertThrows(OutOfDeviceMemoryException.class, () -> allocator.allocate(65 * MIB, ACTIVATIONS));
        assertTrue(device.used() <= 64 * MIB);

        free(a);
        alloc(60 * MIB); // fits once the cached 40 MiB goes back
        assertTrue(allocator.stats().peakReserved() <= 64 * MIB);
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void deviceRefusingPartWayLeavesNothingHalfMapped(Mode mode) {
        start(mode, 64 * MIB, GIB); // a limit above the device: the device itself says no
        alloc(40 * MIB);
        long used = device.used();

        OutOfDeviceMemoryException e = assertThrows(OutOfDeviceMemoryException.class, () -> allocator.allocate(30 * MIB, ACTIVATIONS));

        assertEquals(used, device.used(), "pages mapped before the device refused went back");
        assertEquals(24 * MIB, e.free());
        checkConsistent(allocator, device, live);
        alloc(24 * MIB);
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void hugeRequestsFailCleanly(Mode mode) {
        start(mode, GIB);
        assertThrows(OutOfDeviceMemoryException.class, () -> allocator.allocate(Long.MAX_VALUE, WEIGHTS));
        assertThrows(OutOfDeviceMemoryException.class, () -> allocator.allocate(GIB + 1, WEIGHTS));
        checkConsistent(allocator, device, live);
    }

    // ---------------------------------------------------------------- close

    @ParameterizedTest
    @EnumSource(Mode.class)
    void closeReturnsEveryByteHandleAndRangeToTheDevice(Mode mode) {
        start(mode, GIB);
        alloc(KIB);
        Block stillLive = alloc(30 * MIB, WEIGHTS);
        free(alloc(100 * MIB));
        free(alloc(5 * KIB));
        assertTrue(device.used() > 0);

        allocator.close();

        checkDeviceEmpty(device);
        assertFalse(stillLive.isLive());
        allocator.free(stillLive); // a scope closing after the device: nothing left to do
        assertEquals(0, allocator.stats().allocated());
        assertEquals(0, allocator.stats().reserved());
        assertThrows(IllegalStateException.class, () -> allocator.allocate(KIB, WEIGHTS));
        allocator.close(); // idempotent
    }
}

package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.OutOfDeviceMemoryException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static dev.jtune.engine.memory.AllocatorChecks.KIB;
import static dev.jtune.engine.memory.AllocatorChecks.MIB;
import static dev.jtune.engine.memory.AllocatorChecks.checkConsistent;
import static dev.jtune.engine.memory.AllocatorChecks.checkDeviceEmpty;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Thousands of random operations, with every invariant checked after each one. */
class AllocatorStressTest {
    private static final long CAPACITY = 256 * MIB;
    private static final int OPERATIONS = 4000;
    private static final MemoryCategory[] CATEGORIES = MemoryCategory.values();

    @ParameterizedTest
    @EnumSource(Mode.class)
    void randomAllocateAndFreeKeepsEveryInvariant(Mode mode) {
        for (long seed = 1; seed <= 3; seed++) {
            try {
                run(mode, seed);
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError(mode + ", seed " + seed + ": " + e.getMessage(), e);
            }
        }
    }

    private void run(Mode mode, long seed) {
        SimulatedDeviceMemory device = new SimulatedDeviceMemory(CAPACITY);
        CachingAllocator allocator = new CachingAllocator(device, mode.config());
        SplittableRandom random = new SplittableRandom(seed);
        List<Block> live = new ArrayList<>();
        int outOfMemory = 0;
        for (int op = 0; op < OPERATIONS; op++) {
            int dice = random.nextInt(100);
            if (dice < 55 || live.isEmpty()) {
                long bytes = randomSize(random);
                try {
                    live.add(allocator.allocate(bytes, CATEGORIES[random.nextInt(CATEGORIES.length)]));
                } catch (OutOfDeviceMemoryException e) {
                    outOfMemory++;
                    if (mode.expandable) {
                        checkOnlyLiveBlocksCouldCauseIt(allocator, device, bytes);
                    }
                }
            } else if (dice < 99) {
                allocator.free(live.remove(random.nextInt(live.size())));
            } else {
                allocator.emptyCache();
            }
            checkConsistent(allocator, device, live);
        }
        assertTrue(outOfMemory > 0, "the run should reach memory pressure (seed " + seed + ")");
        live.forEach(allocator::free);
        assertEquals(0, allocator.stats().allocated());
        allocator.emptyCache();
        assertEquals(0, allocator.stats().reserved());
        allocator.close();
        checkDeviceEmpty(device);
    }

    /**
     * With expandable segments, an out-of-memory leaves mapped only the pages under live blocks, and the request
     * did not fit in what remains, give or take a partly used page at each end and an unsplit remainder of at most
     * 1 MiB: fragmentation played no part.
     */
    private static void checkOnlyLiveBlocksCouldCauseIt(CachingAllocator allocator, SimulatedDeviceMemory device, long bytes) {
        long page = device.granularity();
        MemoryStats s = allocator.stats();
        assertTrue(s.reserved() <= s.allocated() + 2 * page * Math.max(1, s.allocations() - s.frees()),
                () -> "after an OOM only pages under live blocks stay mapped: " + s);
        assertTrue(s.reserved() + bytes + 3 * page > CAPACITY,
                () -> "OOM for " + bytes + " bytes with " + s.reserved() + " reserved of " + CAPACITY);
    }

    /** Half small (up to 1 MiB), half large (1 to 48 MiB), log-uniform so that every size class gets traffic. */
    private static long randomSize(SplittableRandom random) {
        double lo = random.nextBoolean() ? 1 : MIB;
        double hi = lo == 1 ? MIB : 48 * MIB;
        return Math.max(1, (long) Math.exp(Math.log(lo) + random.nextDouble() * (Math.log(hi) - Math.log(lo))));
    }

    @Test
    void concurrentThreadsShareOneAllocatorSafely() throws Exception {
        for (Mode mode : Mode.values()) {
            SimulatedDeviceMemory device = new SimulatedDeviceMemory(1L << 30);
            CachingAllocator allocator = new CachingAllocator(device, mode.config());
            int threads = 4;
            CyclicBarrier start = new CyclicBarrier(threads);
            ConcurrentLinkedQueue<Block> survivors = new ConcurrentLinkedQueue<>();
            try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    long seed = t;
                    done.add(pool.submit(() -> {
                        start.await();
                        SplittableRandom random = new SplittableRandom(seed);
                        List<Block> mine = new ArrayList<>();
                        for (int i = 0; i < 2000; i++) {
                            if (mine.size() < 20 && random.nextBoolean()) {
                                mine.add(allocator.allocate(1 + random.nextLong(4 * MIB), MemoryCategory.ACTIVATIONS));
                            } else if (!mine.isEmpty()) {
                                allocator.free(mine.remove(random.nextInt(mine.size())));
                            }
                        }
                        survivors.addAll(mine);
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get();
                }
            }
            checkConsistent(allocator, device, survivors);
            survivors.forEach(allocator::free);
            assertEquals(0, allocator.stats().allocated(), mode.name());
            assertEquals(allocator.stats().allocations(), allocator.stats().frees(), mode.name());
            allocator.close();
            checkDeviceEmpty(device);
        }
    }

    @Test
    void kibSizedChurnNeverLeaksSmallSegments() {
        SimulatedDeviceMemory device = new SimulatedDeviceMemory(CAPACITY);
        CachingAllocator allocator = new CachingAllocator(device, Mode.PLAIN.config());
        for (int round = 0; round < 100; round++) {
            List<Block> blocks = new ArrayList<>();
            for (int i = 1; i <= 64; i++) {
                blocks.add(allocator.allocate(i * KIB, MemoryCategory.WORKSPACE));
            }
            blocks.forEach(allocator::free);
        }
        assertEquals(2, allocator.stats().deviceAllocations(), "64 blocks of 1..64 KiB need two 2 MiB segments, reused every round");
    }
}

package dev.jtune.engine.memory;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.OutOfDeviceMemoryException;

import java.util.ArrayList;
import java.util.List;

/**
 * An allocation pattern that runs plain segments out of memory although live tensors plus the failing request
 * need only 92% of the budget, and that expandable segments survive. Written against any {@link CachingAllocator},
 * so that the same scenario runs on the simulated device in tests and on a real GPU (give the allocator a memory
 * limit well below the GPU's free memory; the scenario scales to {@link CachingAllocator#limit()}).
 *
 * <p>In units of {@code u = limit / 512} (2 MiB for a 1 GiB budget):
 * <ol>
 *   <li>ten activations of 45u, each followed by a long-lived 5u tensor (the "pins": think of state kept across
 *       layers); 500u in use, the budget nearly full;</li>
 *   <li>the activations are freed; the pins stay;</li>
 *   <li>ten activations of 27u: each reuses one freed 45u slot, leaving 18u free behind it;</li>
 *   <li>one request of 150u, with 320u live: 470u of 512u in all.</li>
 * </ol>
 * Plain segments: each 45u segment holds a live 27u block, so none can go back, and the 180u of free cache lies in
 * ten 18u pieces: the last request fails. Expandable segments: the pages of the ten free 18u gaps are unmapped and
 * the request is mapped from them. Without the pins, expandable segments would simply pack the activations and
 * never need to unmap anything.
 */
public final class FragmentationScenario {
    private static final long MIN_UNIT = 2L << 20;

    /** What the scenario did: its unit, the live bytes when it made the last request, and that request. */
    public record Report(long unit, long liveAtLastRequest, long lastRequest, MemoryStats statsAfterLastRequest) {
    }

    private FragmentationScenario() {
    }

    /**
     * Runs the scenario on an allocator with no live blocks (its cache is emptied first). Frees everything it
     * allocated before returning or throwing.
     *
     * @return the report, when the last request fits
     * @throws OutOfDeviceMemoryException from the last request, when it does not fit
     * @throws IllegalStateException      when the allocator holds live blocks, or the setup itself did not fit
     */
    public static Report run(CachingAllocator allocator) {
        long unit = unitFor(allocator.limit());
        if (allocator.stats().allocated() != 0) {
            throw new IllegalStateException("fragmentation scenario: the allocator must hold no live blocks, it has "
                    + ByteSizes.human(allocator.stats().allocated()));
        }
        allocator.emptyCache();
        List<Block> live = new ArrayList<>();
        try {
            List<Block> firstActivations = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                firstActivations.add(setup(allocator, 45 * unit, MemoryCategory.ACTIVATIONS, live));
                setup(allocator, 5 * unit, MemoryCategory.OPTIMIZER, live);
            }
            for (Block b : firstActivations) {
                allocator.free(b);
                live.remove(b);
            }
            for (int i = 0; i < 10; i++) {
                setup(allocator, 27 * unit, MemoryCategory.ACTIVATIONS, live);
            }
            long liveBytes = allocator.stats().allocated();
            long request = 150 * unit;
            live.add(allocator.allocate(request, MemoryCategory.ACTIVATIONS));
            return new Report(unit, liveBytes, request, allocator.stats());
        } finally {
            live.forEach(allocator::free);
        }
    }

    /** The unit for a budget: limit / 512 rounded down to 2 MiB, so that every block is page aligned. */
    static long unitFor(long limit) {
        long unit = limit / 512 / MIN_UNIT * MIN_UNIT;
        if (unit < MIN_UNIT) {
            throw new IllegalArgumentException("fragmentation scenario: needs a budget of at least 1 GiB, the allocator's limit is "
                    + ByteSizes.human(limit));
        }
        return unit;
    }

    private static Block setup(CachingAllocator allocator, long bytes, MemoryCategory category, List<Block> live) {
        try {
            Block b = allocator.allocate(bytes, category);
            live.add(b);
            return b;
        } catch (OutOfDeviceMemoryException e) {
            throw new IllegalStateException("fragmentation scenario: its setup did not fit, so it proves nothing "
                    + "(is the device's free memory below the allocator's limit?)", e);
        }
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.OutOfDeviceMemoryException;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.memory.CachingAllocator;
import dev.jtune.engine.memory.FragmentationScenario;
import dev.jtune.engine.memory.MemoryStats;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The allocator, the pinned pool and the kernel cache on real GPU memory. */
@Tag("gpu")
class CudaMemoryGpuTest {
    private static final long GIB = 1L << 30;

    @Test
    void fragmentationFailsWithPlainSegmentsAndPassesWithExpandableOnes() {
        CudaBackend gpu = CudaBackend.get(0);
        try (CachingAllocator plain = new CachingAllocator(gpu.deviceMemory(), new CachingAllocator.Config(CachingAllocator.Segments.PLAIN, GIB))) {
            OutOfDeviceMemoryException e = assertThrows(OutOfDeviceMemoryException.class, () -> FragmentationScenario.run(plain));
            assertTrue(e.requested() > 0, e.getMessage());
            assertEquals(0, plain.stats().allocated(), "the scenario frees what it allocated");
        }
        try (CachingAllocator expandable = new CachingAllocator(gpu.deviceMemory(), new CachingAllocator.Config(CachingAllocator.Segments.EXPANDABLE, GIB))) {
            FragmentationScenario.Report r = FragmentationScenario.run(expandable);
            assertTrue(r.statsAfterLastRequest().reserved() <= GIB, "reserved within the 1 GiB limit: " + r.statsAfterLastRequest());
            assertEquals(0, expandable.stats().allocated());
            expandable.emptyCache();
            assertEquals(0, expandable.stats().reserved(), "emptyCache unmaps every page");
        }
    }

    @Test
    void uncachedBlocksAreTheirOwnAllocationsAndGoBackWhenFreed() {
        CudaBackend gpu = CudaBackend.get(0);
        try (CachingAllocator uncached = new CachingAllocator(gpu.deviceMemory(), CachingAllocator.Config.uncached())) {
            dev.jtune.engine.memory.Block a = uncached.allocate(1000, dev.jtune.engine.MemoryCategory.ACTIVATIONS);
            dev.jtune.engine.memory.Block b = uncached.allocate(3 << 20, dev.jtune.engine.MemoryCategory.ACTIVATIONS);
            assertEquals(1000, a.size(), "not rounded");
            assertEquals(2, uncached.stats().deviceAllocations());
            assertEquals(1000 + (3 << 20), uncached.stats().reserved());
            uncached.free(a);
            uncached.free(b);
            assertEquals(2, uncached.stats().deviceFrees());
            assertEquals(0, uncached.stats().reserved(), "nothing cached");
        }
    }

    @Test
    void statisticsAddUpOnTheGpu() {
        CudaBackend gpu = CudaBackend.get(0);
        gpu.synchronize();
        MemoryStats before = gpu.memoryStats();
        try (Scope s = Scope.open("stats", dev.jtune.engine.MemoryCategory.ACTIVATIONS)) {
            Tensor.empty(Shape.of(64, 1 << 20), DType.BF16, Device.cuda(0)); // 128 MiB
            Tensor.empty(Shape.of(1000), DType.F32, Device.cuda(0));
            MemoryStats during = gpu.memoryStats();
            assertTrue(during.allocated() - before.allocated() >= (128L << 20) + 4000);
            assertTrue(during.reserved() >= during.allocated());
            assertTrue(during.peakAllocated() >= during.allocated());
            long byCategory = during.allocatedByCategory().values().stream().mapToLong(Long::longValue).sum();
            assertEquals(during.allocated(), byCategory, "per-category bytes add up to the total");
            assertTrue(during.allocated(dev.jtune.engine.MemoryCategory.ACTIVATIONS) >= (128L << 20));
        }
        assertEquals(before.allocated(), gpu.memoryStats().allocated());
    }

    @Test
    void anAllocationLargerThanTheGpuNamesTheBytes() {
        CudaBackend gpu = CudaBackend.get(0);
        long tooMany = gpu.context().totalMemory() * 2;
        try (Scope s = Scope.open("oom")) {
            OutOfDeviceMemoryException e = assertThrows(OutOfDeviceMemoryException.class,
                    () -> Tensor.empty(Shape.of(tooMany), DType.U8, Device.cuda(0)));
            assertEquals(tooMany, e.requested());
            assertTrue(e.getMessage().contains("GiB") || e.getMessage().contains(Long.toString(tooMany)), e.getMessage());
        }
        try (Scope s = Scope.open("after")) {
            assertEquals(3.0, Tensor.full(Shape.of(4), 3.0, DType.F32, Device.cuda(0)).sum(0).item() / 4, 0.0, "the GPU still works after an OOM");
        }
    }

    @Test
    void compiledKernelsAreCachedOnDisk() throws IOException {
        try (Scope s = Scope.open("cache")) {
            Tensor.full(Shape.of(3), 1.0, DType.F32, Device.cuda(0)).scale(2).toFloatArray();
        }
        Path dir = KernelCompiler.cacheDirectory();
        try (Stream<Path> files = Files.list(dir)) {
            assertTrue(files.anyMatch(p -> p.getFileName().toString().startsWith("elementwise_cu-" + CudaBackend.get(0).context().arch())),
                    "a cached CUBIN of elementwise.cu in " + dir);
        }
    }

    @Test
    void pinnedBuffersAreReused() {
        PinnedHostPool pool = CudaBackend.get(0).pinnedPool();
        long before;
        try (PinnedHostPool.Buffer b = pool.acquire(5 << 20)) {
            b.segment().fill((byte) 7);
            before = pool.reservedBytes();
        }
        try (PinnedHostPool.Buffer b = pool.acquire(5 << 20)) {
            assertEquals(before, pool.reservedBytes(), "the second loan reuses the first buffer");
            assertTrue(b.segment().byteSize() >= 5 << 20);
        }
    }
}

package dev.jtune.engine.meta;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.memory.MemoryStats;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MetaBackendTest {
    private static final long MIB = 1L << 20;
    private final MetaBackend meta = MetaBackend.instance();
    private long allocatedBefore;

    @BeforeEach
    void freshPlan() {
        meta.reset();
        allocatedBefore = meta.memoryStats().allocated();
    }

    @Test
    void metaDeviceResolvesToTheSingleton() {
        assertSame(meta, Backends.get(Device.META));
        assertEquals(Device.META, meta.device());
    }

    @Test
    void tensorsAreCountedBySizeAndCategoryAndFreedWithTheirScope() {
        try (Scope plan = Scope.open("plan", MemoryCategory.WEIGHTS)) {
            Tensor w = Tensor.empty(Shape.of(1024, 1024), DType.BF16, Device.META); // 2 MiB
            Tensor bias = Tensor.empty(Shape.of(3), DType.F32, Device.META);          // 12 bytes -> 512
            try (Scope step = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
                Tensor x = Tensor.empty(Shape.of(2048, 1024), DType.BF16, Device.META);  // 4 MiB
                Tensor y = Ops.matmul(x, w);                                               // 4 MiB
                assertEquals(Shape.of(2048, 1024), y.shape());
                MemoryStats s = meta.memoryStats();
                assertEquals(2 * MIB + 512, s.allocated(MemoryCategory.WEIGHTS));
                assertEquals(8 * MIB, s.allocated(MemoryCategory.ACTIVATIONS));
                assertEquals(allocatedBefore + 10 * MIB + 512, s.allocated());
                assertTrue(w.address() != 0 && x.address() != y.address(), "blocks get distinct simulated addresses");
            }
            MemoryStats afterStep = meta.memoryStats();
            assertEquals(0, afterStep.allocated(MemoryCategory.ACTIVATIONS));
            assertEquals(8 * MIB, afterStep.peak(MemoryCategory.ACTIVATIONS), "the step's peak is what a GPU must hold");
            assertEquals(allocatedBefore + 10 * MIB + 512, afterStep.peakAllocated());
            assertTrue(afterStep.reserved() >= afterStep.allocated());
            assertTrue(bias.numel() == 3);
        }
        assertEquals(allocatedBefore, meta.memoryStats().allocated());
        meta.emptyCache();
        assertEquals(0, meta.memoryStats().reserved(), "no other meta tensors are live");
    }

    @Test
    void opsRunOnMetaWithoutData() {
        try (Scope scope = Scope.open("ops")) {
            Tensor a = Tensor.zeros(Shape.of(4, 8), DType.F32, Device.META);
            Tensor b = Tensor.randn(Shape.of(8), DType.F32, Device.META, 7);
            Tensor c = a.add(b).scale(2.0).sum(1);
            assertEquals(Shape.of(4), c.shape());
            assertEquals(Device.META, c.device());
        }
        assertEquals(allocatedBefore, meta.memoryStats().allocated());
    }

    @Test
    void readingValuesOfAMetaTensorThrows() {
        try (Scope scope = Scope.open("read")) {
            Tensor t = Tensor.empty(Shape.of(2, 2), DType.F32, Device.META);
            UnsupportedOpException e = assertThrows(UnsupportedOpException.class, t::toFloatArray);
            assertTrue(e.getMessage().startsWith("meta tensors hold no data"), e.getMessage());
        }
    }

    @Test
    void resetPeaksStartsANewMeasurement() {
        try (Scope scope = Scope.open("big", MemoryCategory.ACTIVATIONS)) {
            Tensor.empty(Shape.of(64, 1024, 1024), DType.F32, Device.META); // 256 MiB
        }
        assertTrue(meta.memoryStats().peakAllocated() >= 256 * MIB);
        meta.resetPeaks();
        assertEquals(meta.memoryStats().allocated(), meta.memoryStats().peakAllocated());
        assertEquals(0, meta.memoryStats().peak(MemoryCategory.ACTIVATIONS));
    }
}

package dev.jtune.engine;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.backend.HostVisible;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.Isolated;

import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Placement#HOST_MAPPED} tensors on cpu (plain host memory) and meta (simulated): they compute like any other,
 * are freed with their scope, and are counted in the host figure of the memory statistics, never in the device ones.
 */
@Isolated // reads the cpu and meta backends' process-wide counters
class HostMappedTensorTest {

    @Test
    void cpuHostMappedTensorsComputeAndAreCountedAsHostMemory() {
        CpuBackend cpu = CpuBackend.instance();
        MemoryStats before = cpu.memoryStats();
        try (Scope s = Scope.open("host", MemoryCategory.OPTIMIZER)) {
            Tensor a = Tensor.zeros(Shape.of(2, 3), DType.F32, Device.CPU, Placement.HOST_MAPPED);
            assertEquals(Placement.HOST_MAPPED, a.placement());
            assertArrayEquals(new float[6], a.toFloatArray(), "zeroed");
            MemoryStats inside = cpu.memoryStats();
            assertEquals(before.allocated(), inside.allocated(), "not device memory");
            assertEquals(before.host().allocated() + 24, inside.host().allocated());
            assertEquals(before.host().allocated(MemoryCategory.OPTIMIZER) + 24, inside.host().allocated(MemoryCategory.OPTIMIZER));
            assertTrue(inside.host().peak() >= inside.host().allocated());

            // the host writes in place, an op reads it and writes another host-mapped tensor
            HostVisible hv = assertInstanceOf(HostVisible.class, TensorInternals.storage(a));
            for (int i = 0; i < 6; i++) {
                hv.hostSegment().setAtIndex(ValueLayout.JAVA_FLOAT, i, i + 0.5f);
            }
            Tensor b = Tensor.fromArray(new float[] {1, 2, 3, 4, 5, 6}, Shape.of(2, 3), DType.F32, Device.CPU);
            Tensor out = Tensor.empty(Shape.of(2, 3), DType.F32, Device.CPU, Placement.HOST_MAPPED);
            Backends.of(a).binary(BinaryOp.ADD, a, b, out);
            assertArrayEquals(new float[] {1.5f, 3.5f, 5.5f, 7.5f, 9.5f, 11.5f}, out.toFloatArray());
            assertTrue(a.describe().contains("host-mapped"), a.describe());
            assertEquals(Placement.DEVICE, b.placement());
        }
        MemoryStats after = cpu.memoryStats();
        assertEquals(before.host().allocated(), after.host().allocated(), "freed with its scope");
        assertEquals(before.allocated(), after.allocated());
    }

    @Test
    void metaCountsHostMappedTensorsAsHostAndLeavesTheDevicePeakAlone() {
        MetaBackend meta = MetaBackend.instance();
        long base = meta.memoryStats().host().allocated();
        try (Scope s = Scope.open("plan", MemoryCategory.OPTIMIZER)) {
            meta.resetPeaks();
            MemoryStats before = meta.memoryStats();
            Tensor t = Tensor.zeros(Shape.of(1 << 20), DType.F32, Device.META, Placement.HOST_MAPPED);
            Tensor u = Tensor.zeros(Shape.of(1 << 20), DType.F32, Device.META, Placement.HOST_MAPPED);
            MemoryStats inside = meta.memoryStats();
            assertEquals(before.allocated(), inside.allocated());
            assertEquals(before.peakAllocated(), inside.peakAllocated(), "the device peak leaves host memory out");
            assertEquals(before.host().allocated() + (8L << 20), inside.host().allocated());
            assertEquals(before.host().allocated(MemoryCategory.OPTIMIZER) + (8L << 20), inside.host().allocated(MemoryCategory.OPTIMIZER));
            assertEquals(inside.host().allocated(), inside.host().peak());
            assertTrue(t.address() != u.address(), "distinct simulated addresses");
            assertEquals(Placement.HOST_MAPPED, t.placement());
            t.close();
            assertEquals(before.host().allocated() + (4L << 20), meta.memoryStats().host().allocated(), "freed on close");
        }
        assertEquals(base, meta.memoryStats().host().allocated(), "freed with its scope");
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.HostVisible;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Host-mapped tensors on a GPU: kernels read and write the pinned host memory through its device pointer, the host
 * sees the kernels' results in place, and the device allocator holds none of it.
 */
@Tag("gpu")
class HostMappedGpuTest {

    @Test
    void kernelsReadAndWriteHostMappedMemoryAndTheDeviceAllocatorDoesNotGrow() {
        CudaBackend gpu = CudaBackend.get(0);
        Device cuda = Device.cuda(0);
        Random rnd = Seeds.random();
        int n = 100_003; // not a multiple of any vector width
        float[] x = new float[n];
        float[] y = new float[n];
        long base = gpu.memoryStats().host().allocated();
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
            y[i] = (float) rnd.nextGaussian();
        }
        try (Scope s = Scope.open("mapped", MemoryCategory.OPTIMIZER)) {
            Tensor dy = Tensor.fromArray(y, Shape.of(n), DType.F32, cuda); // device memory, allocated before the baseline
            gpu.synchronize();
            MemoryStats before = gpu.memoryStats();
            gpu.poisonAllocations(true);
            Tensor hx;
            Tensor out;
            try {
                hx = Tensor.empty(Shape.of(n), DType.F32, cuda, Placement.HOST_MAPPED);
                out = Tensor.empty(Shape.of(n), DType.F32, cuda, Placement.HOST_MAPPED);
            } finally {
                gpu.poisonAllocations(false);
            }
            assertEquals(Placement.HOST_MAPPED, hx.placement());
            MemorySegment hostX = assertInstanceOf(HostVisible.class, TensorInternals.storage(hx)).hostSegment();
            MemorySegment hostOut = assertInstanceOf(HostVisible.class, TensorInternals.storage(out)).hostSegment();
            assertTrue(Float.isNaN(hostOut.getAtIndex(ValueLayout.JAVA_FLOAT, 7)), "poisoned like device allocations");
            MemorySegment.copy(x, 0, hostX, ValueLayout.JAVA_FLOAT, 0, n); // the host writes in place

            gpu.binary(BinaryOp.ADD, hx, dy, out); // a kernel reads host memory and writes host memory
            gpu.synchronize();
            float[] expected = new float[n];
            for (int i = 0; i < n; i++) {
                expected[i] = x[i] + y[i];
            }
            float[] seen = new float[n];
            MemorySegment.copy(hostOut, ValueLayout.JAVA_FLOAT, 0, seen, 0, n); // the host reads the kernel's result in place
            assertArrayEquals(expected, seen);
            assertArrayEquals(expected, out.toFloatArray(), "copies reach it through the device pointer too");

            gpu.scale(out, 2.0, out); // in place, read and written over PCIe
            gpu.synchronize();
            assertEquals(2 * expected[n - 1], hostOut.getAtIndex(ValueLayout.JAVA_FLOAT, n - 1));

            MemoryStats inside = gpu.memoryStats();
            assertEquals(before.allocated(), inside.allocated(), "the device allocator holds none of it");
            assertEquals(before.reserved(), inside.reserved());
            assertEquals(before.host().allocated() + 8L * n, inside.host().allocated());
            assertEquals(before.host().allocated(MemoryCategory.OPTIMIZER) + 8L * n, inside.host().allocated(MemoryCategory.OPTIMIZER));
        }
        assertEquals(base, gpu.memoryStats().host().allocated(), "freed with its scope");
    }

    @Test
    void zerosOnAHostMappedTensorAreWrittenByTheDevice() {
        CudaBackend gpu = CudaBackend.get(0);
        try (Scope s = Scope.open("zeros")) {
            Tensor z = Tensor.zeros(Shape.of(4097), DType.BF16, Device.cuda(0), Placement.HOST_MAPPED);
            gpu.synchronize();
            MemorySegment host = ((HostVisible) TensorInternals.storage(z)).hostSegment();
            for (long i = 0; i < 4097; i++) {
                assertEquals(0, host.getAtIndex(ValueLayout.JAVA_SHORT, i));
            }
        }
    }
}

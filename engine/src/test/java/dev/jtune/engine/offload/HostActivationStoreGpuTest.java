package dev.jtune.engine.offload;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * Activation offload on a GPU: the inputs go to pinned host memory on a copy stream and come back (prefetched one
 * checkpoint ahead) before their recomputation; copies move bytes only, so over a chain of checkpointed blocks of a
 * size where the copies take real time, two passes give the device store's loss and gradients bit for bit. Freed
 * blocks are poisoned, so a recomputation that read an input before its copy back landed would show.
 */
@Tag("gpu")
class HostActivationStoreGpuTest {
    @Test
    void offloadedCheckpointsEqualTheDeviceOnesBitForBit() {
        Random rnd = Seeds.random();
        Device gpu = Device.cuda(0);
        CudaBackend.get(0).poisonAllocations(true);
        try (Scope scope = Scope.open("gpu store", MemoryCategory.WEIGHTS); HostActivationStore store = new HostActivationStore(gpu)) {
            List<Tensor> ws = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                ws.add(Tensor.fromArray(rnd.doubles(512 * 512).map(v -> (v - 0.5) * 0.05).toArray(), Shape.of(512, 512), DType.BF16, gpu).requiresGrad(true));
            }
            Tensor x0 = Tensor.fromArray(rnd.doubles(4096 * 512).toArray(), Shape.of(4096, 512), DType.BF16, gpu).requiresGrad(true);
            List<float[]> expected = pass(ws, x0, ActivationStore.DEVICE);
            for (int p = 0; p < 2; p++) {
                List<float[]> actual = pass(ws, x0, store);
                for (int k = 0; k < expected.size(); k++) {
                    assertArrayEquals(expected.get(k), actual.get(k), "pass " + p + ", result " + k);
                }
            }
        } finally {
            CudaBackend.get(0).poisonAllocations(false);
        }
    }

    private static List<float[]> pass(List<Tensor> ws, Tensor x0, ActivationStore store) {
        return HostActivationStoreTest.pass(ws, x0, store);
    }
}

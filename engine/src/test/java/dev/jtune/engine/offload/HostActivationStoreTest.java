package dev.jtune.engine.offload;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checkpointed inputs kept in host memory: a chain of checkpointed blocks gives the same loss and gradients, bit for
 * bit, as with the inputs left on the device (the arithmetic is the same; only where the inputs wait changes), over
 * two passes that reuse the pooled host buffers; on meta, the inputs leave the device and appear as host activations.
 */
class HostActivationStoreTest {
    private static final int LAYERS = 5;

    /** block_i(x) = x + (x @ w_i) * x: each layer's input is what the next checkpoint saves. */
    private static Function<Tensor[], Tensor> block(Tensor w) {
        return in -> in[0].add(in[0].matmul(w).mul(in[0]));
    }

    /**
     * Loss and every gradient (weights, then the first input) of one pass through the chain of one block per weight
     * (the loss summed in fp32 whatever the chain's dtype; shared with the GPU test).
     */
    static List<float[]> pass(List<Tensor> ws, Tensor x0, ActivationStore store) {
        List<float[]> out = new ArrayList<>();
        try (Scope s = Scope.open("pass", MemoryCategory.ACTIVATIONS)) {
            Tensor x = x0.mul(x0); // a fresh first input (the chain's own)
            for (int i = 0; i < ws.size(); i++) {
                x = Autograd.checkpoint(block(ws.get(i)), i == 0 ? ActivationStore.DEVICE : store, x);
            }
            Tensor wide = x.dtype() == DType.F32 ? x : x.cast(DType.F32);
            Tensor loss = wide.mul(wide).sum(1).sum(0);
            loss.backward();
            out.add(loss.toFloatArray());
            for (Tensor w : ws) {
                out.add(w.grad().toFloatArray());
                w.zeroGrad();
            }
            out.add(x0.grad().toFloatArray());
            x0.zeroGrad();
        }
        return out;
    }

    @Test
    void offloadedCheckpointsEqualTheDeviceOnesBitForBit() {
        Random rnd = Seeds.random();
        try (Scope scope = Scope.open("store", MemoryCategory.WEIGHTS)) {
            List<Tensor> ws = new ArrayList<>();
            for (int i = 0; i < LAYERS; i++) {
                ws.add(Tensor.fromArray(rnd.doubles(64).map(v -> v * 0.1).toArray(), Shape.of(8, 8), DType.F32, Device.CPU).requiresGrad(true));
            }
            Tensor x0 = Tensor.fromArray(rnd.doubles(48).toArray(), Shape.of(6, 8), DType.F32, Device.CPU).requiresGrad(true);
            List<float[]> expected = pass(ws, x0, ActivationStore.DEVICE);
            try (HostActivationStore store = new HostActivationStore(Device.CPU)) {
                for (int p = 0; p < 2; p++) { // the second pass reuses the first one's host buffers
                    long hostBefore = Backends.get(Device.CPU).memoryStats().host().allocated(MemoryCategory.ACTIVATIONS);
                    List<float[]> actual = pass(ws, x0, store);
                    long hostAfter = Backends.get(Device.CPU).memoryStats().host().allocated(MemoryCategory.ACTIVATIONS);
                    for (int k = 0; k < expected.size(); k++) {
                        assertArrayEquals(expected.get(k), actual.get(k), "pass " + p + ", result " + k + " (loss, weights' gradients, input's)");
                    }
                    if (p == 0) {
                        assertEquals(hostBefore + (LAYERS - 1) * 48 * 4, hostAfter, "one pinned buffer per offloaded input");
                    } else {
                        assertEquals(hostBefore, hostAfter, "the second pass reuses them");
                    }
                }
            }
        }
    }

    /**
     * Micro-batches of different lengths (real data): every pass still equals the device's bit for bit, and the pinned
     * host memory stays at one buffer per offloaded input of the longest length seen, not one set per distinct length.
     */
    @Test
    void inputsOfDifferentLengthsShareTheLongestBuffers() {
        Random rnd = Seeds.random();
        try (Scope scope = Scope.open("store", MemoryCategory.WEIGHTS)) {
            List<Tensor> ws = new ArrayList<>();
            for (int i = 0; i < LAYERS; i++) {
                ws.add(Tensor.fromArray(rnd.doubles(64).map(v -> v * 0.1).toArray(), Shape.of(8, 8), DType.F32, Device.CPU).requiresGrad(true));
            }
            try (HostActivationStore store = new HostActivationStore(Device.CPU)) {
                long hostBefore = Backends.get(Device.CPU).memoryStats().host().allocated(MemoryCategory.ACTIVATIONS);
                int longest = 0;
                for (int rows : new int[] {6, 9, 4, 9, 7, 3}) {
                    longest = Math.max(longest, rows);
                    Tensor x0 = Tensor.fromArray(rnd.doubles(rows * 8L).toArray(), Shape.of(rows, 8), DType.F32, Device.CPU).requiresGrad(true);
                    List<float[]> expected = pass(ws, x0, ActivationStore.DEVICE);
                    List<float[]> actual = pass(ws, x0, store);
                    for (int k = 0; k < expected.size(); k++) {
                        assertArrayEquals(expected.get(k), actual.get(k), rows + " rows, result " + k);
                    }
                    long host = Backends.get(Device.CPU).memoryStats().host().allocated(MemoryCategory.ACTIVATIONS) - hostBefore;
                    assertEquals((LAYERS - 1) * longest * 8L * 4, host, "after " + rows + " rows: one buffer per input, the longest seen");
                }
            }
        }
    }

    /** On meta: the offloaded inputs' device memory is freed after forward and counted on the host instead. */
    @Test
    void theInputsLeaveTheDevice() {
        MetaBackend meta = MetaBackend.instance();
        try (Scope scope = Scope.open("meta", MemoryCategory.WEIGHTS); HostActivationStore store = new HostActivationStore(Device.META)) {
            List<Tensor> ws = new ArrayList<>();
            for (int i = 0; i < LAYERS; i++) {
                ws.add(Tensor.zeros(Shape.of(256, 256), DType.F32, Device.META).requiresGrad(true));
            }
            long[] device = new long[2];
            for (ActivationStore s : List.of(ActivationStore.DEVICE, (ActivationStore) store)) {
                try (Scope pass = Scope.open("pass", MemoryCategory.ACTIVATIONS)) {
                    Tensor x = Tensor.zeros(Shape.of(1024, 256), DType.F32, Device.META).requiresGrad(true).scale(2.0);
                    for (int i = 0; i < LAYERS; i++) {
                        x = Autograd.checkpoint(block(ws.get(i)), i == 0 ? ActivationStore.DEVICE : s, x);
                    }
                    MemoryStats after = meta.memoryStats();
                    device[s == ActivationStore.DEVICE ? 0 : 1] = after.allocated(MemoryCategory.ACTIVATIONS);
                    if (s != ActivationStore.DEVICE) {
                        assertTrue(after.host().allocated(MemoryCategory.ACTIVATIONS) >= (LAYERS - 1) * 1024L * 256 * 4,
                                "the inputs on the host: " + after.host());
                    }
                    x.mul(x).sum(1).sum(0).backward();
                }
            }
            // all but the newest stashed input (its copy may still run) left the device
            assertEquals(device[0] - (LAYERS - 2) * 1024L * 256 * 4, device[1], "device activations with and without offload");
        }
    }
}

package dev.jtune.engine.offload;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.nn.RmsNorm;
import dev.jtune.engine.ops.RmsNorm.Scale;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Weight offload over a chain of checkpointed blocks: with the blocks' weights in host memory and staged to two
 * device slots, a pass gives the loss and gradients of the same blocks with their weights on the device, bit for bit
 * (the arithmetic is the same; only where the weights wait changes), for trained dense weights (gradients reach the
 * host values), frozen ones and NF4 ones; the copies follow the direction of travel; on meta the device holds two
 * blocks' weights and the host all of them.
 */
class HostWeightsTest {
    static final int BLOCKS = 5;
    static final int WIDTH = 64;

    /** x + linear(norm(x)): the shape of a decoder layer's half. */
    static final class Block extends Module {
        final RmsNorm norm;
        final Linear linear;

        Block(DequantWorkspace workspace) {
            norm = child("norm", new RmsNorm(WIDTH, 1e-6, Scale.ONE_PLUS_WEIGHT));
            linear = child("linear", new Linear(WIDTH, WIDTH, Linear.Bias.WITH, workspace));
        }

        Tensor forward(Tensor x) {
            return x.add(linear.forward(norm.forward(x)));
        }
    }

    static List<Block> blocks(Device device, long seed, boolean trained) {
        DequantWorkspace workspace = new DequantWorkspace(DType.F32, device);
        List<Block> out = new ArrayList<>();
        Random rnd = new Random(seed);
        for (int i = 0; i < BLOCKS; i++) {
            Block b = new Block(workspace);
            for (Parameter p : b.namedParameters().values()) {
                double[] v = rnd.doubles(p.shape().numel()).map(d -> (d - 0.5) * 0.2).toArray();
                p.set(device == Device.META ? Tensor.zeros(p.shape(), DType.F32, device)
                        : Tensor.fromArray(v, p.shape(), DType.F32, device).requiresGrad(trained));
            }
            out.add(b);
        }
        return out;
    }

    /** Loss, the input's gradient and (trained) every parameter's, of one pass through the chain, checkpointed per block. */
    static List<float[]> pass(List<Block> blocks, SlottedUnits weights, Tensor x0, boolean trained) {
        List<float[]> out = new ArrayList<>();
        try (Scope s = Scope.open("pass", MemoryCategory.ACTIVATIONS)) {
            Tensor x = x0.mul(x0);
            for (int i = 0; i < BLOCKS; i++) {
                int index = i;
                x = Autograd.checkpoint(in -> {
                    if (weights != null) {
                        weights.acquire(index);
                    }
                    return blocks.get(index).forward(in[0]);
                }, x);
            }
            Tensor loss = x.mul(x).sum(1).sum(0);
            loss.backward();
            out.add(loss.toFloatArray());
            out.add(x0.grad().toFloatArray());
            x0.zeroGrad();
            if (trained) {
                for (Block b : blocks) {
                    for (Parameter p : b.namedParameters().values()) {
                        out.add(p.tensor().grad().toFloatArray());
                        p.tensor().zeroGrad();
                    }
                }
            }
        }
        return out;
    }

    static void assertSame(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size(), what);
        for (int k = 0; k < expected.size(); k++) {
            assertArrayEquals(expected.get(k), actual.get(k), what + ", result " + k + " (loss, input's gradient, parameters')");
        }
    }

    @Test
    void offloadedTrainedWeightsGiveTheDevicesLossAndGradientsBitForBit() {
        long seed = Seeds.seed();
        try (Scope scope = Scope.open("weights", MemoryCategory.WEIGHTS)) {
            Tensor x0 = Tensor.fromArray(new Random(seed + 1).doubles(6 * WIDTH).toArray(), Shape.of(6, WIDTH), DType.F32, Device.CPU).requiresGrad(true);
            List<float[]> expected = pass(blocks(Device.CPU, seed, true), null, x0, true);
            List<Block> offloaded = blocks(Device.CPU, seed, true);
            try (HostWeights weights = HostWeights.offload(offloaded, Device.CPU)) {
                for (Block b : offloaded) {
                    for (Parameter p : b.namedParameters().values()) {
                        assertEquals(Placement.HOST_MAPPED, p.tensor().placement(), "the value lives on the host");
                        assertTrue(p.tensor().requiresGrad(), "still trained");
                    }
                }
                assertSame(expected, pass(offloaded, weights, x0, true), "first pass");
                assertEquals(2L * BLOCKS - 2, weights.copies(), "forward copies every block once, backward all but the two at the turn");
                assertSame(expected, pass(offloaded, weights, x0, true), "second pass");
                assertEquals(2L * BLOCKS - 2 + 2L * BLOCKS - 4, weights.copies(), "the second forward starts on the two blocks backward ended with");
                weights.invalidate(); // as after an optimizer step
                assertSame(expected, pass(offloaded, weights, x0, true), "after invalidate");
                assertEquals(2 * (2L * BLOCKS - 2) + 2L * BLOCKS - 4, weights.copies(), "every block copied again");
            }
            for (Block b : offloaded) {
                assertFalse(b.linear.weightParameter().isStaged(), "closing unstages");
            }
        }
    }

    @Test
    void offloadedNf4WeightsGiveTheDevicesLossBitForBit() {
        long seed = Seeds.seed();
        try (Scope scope = Scope.open("weights", MemoryCategory.WEIGHTS)) {
            Tensor x0 = Tensor.fromArray(new Random(seed + 1).doubles(6 * WIDTH).toArray(), Shape.of(6, WIDTH), DType.F32, Device.CPU).requiresGrad(true);
            List<List<float[]>> results = new ArrayList<>();
            for (boolean offload : new boolean[] {false, true}) {
                List<Block> blocks = blocks(Device.CPU, seed, false);
                Linear.quantize(blocks.stream().map(b -> b.linear).toList(), Nf4Scales.DOUBLE_QUANTIZED);
                HostWeights weights = offload ? HostWeights.offload(blocks, Device.CPU) : null;
                if (offload) {
                    assertEquals(Placement.HOST_MAPPED, blocks.getFirst().linear.quantizedWeight().codes().placement());
                }
                results.add(pass(blocks, weights, x0, false));
                if (weights != null) {
                    weights.close();
                }
            }
            assertSame(results.get(0), results.get(1), "NF4 blocks offloaded");
        }
    }

    @Test
    void trainingWithoutRecomputationIsTheModelsToRefuse() {
        // the store itself stages whatever it is asked: an index out of range is the one thing it refuses
        try (Scope scope = Scope.open("weights", MemoryCategory.WEIGHTS); HostWeights w = HostWeights.offload(blocks(Device.CPU, 1, false), Device.CPU)) {
            assertThrows(IndexOutOfBoundsException.class, () -> w.acquire(BLOCKS));
        }
    }

    /** The bytes the caching allocator gives a request: rounded up to 512. */
    private static long block(long bytes) {
        return Math.ceilDiv(bytes, 512) * 512;
    }

    /** On meta: the device holds two blocks' weights (the slots), the host all of them. */
    @Test
    void theDeviceHoldsTwoBlocks() {
        MetaBackend meta = MetaBackend.instance();
        try (Scope scope = Scope.open("meta", MemoryCategory.WEIGHTS)) {
            List<Block> blocks = blocks(Device.META, 0, false);
            long perBlock = 0;
            for (Parameter p : blocks.getFirst().namedParameters().values()) {
                perBlock += Math.ceilDiv(p.shape().numel() * 4, HostWeights.ALIGN) * HostWeights.ALIGN;
            }
            long deviceBefore = meta.memoryStats().allocated(MemoryCategory.WEIGHTS);
            long hostBefore = meta.memoryStats().host().allocated(MemoryCategory.WEIGHTS);
            try (HostWeights w = HostWeights.offload(blocks, Device.META)) {
                MemoryStats after = meta.memoryStats();
                assertEquals(perBlock, w.slotBytes().get(MemoryCategory.WEIGHTS));
                long dense = BLOCKS * (WIDTH + WIDTH * WIDTH + WIDTH) * 4L;
                long denseBlocks = BLOCKS * (block(WIDTH * 4L) + block(WIDTH * WIDTH * 4L) + block(WIDTH * 4L));
                assertEquals(deviceBefore - denseBlocks + 2 * block(perBlock), after.allocated(MemoryCategory.WEIGHTS),
                        "device: two slots instead of the blocks");
                assertEquals(hostBefore + dense, after.host().allocated(MemoryCategory.WEIGHTS), "host: every block");
            }
        }
    }
}

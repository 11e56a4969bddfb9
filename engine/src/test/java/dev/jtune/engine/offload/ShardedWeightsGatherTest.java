package dev.jtune.engine.offload;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.ShardedWeights;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ZeRO stage 3's gathers run beside the computation ({@link Collectives#allGatherOverlapped}) and are joined before a
 * layer runs: through a world of one whose overlapped all-gather lands only when awaited (its output is 0xFF bytes, a
 * NaN in every float, until then), the frozen blocks' pass gives the whole weights' loss and input gradient bit for
 * bit, so every read of a slot came after its gather's await. The blocks are {@link HostWeightsTest}'s chain.
 */
class ShardedWeightsGatherTest {
    /** A world of one whose overlapped all-gathers copy only when awaited, their output poisoned until then. */
    private static final class Deferred implements Collectives {
        int awaited;
        int queued;

        @Override
        public int rank() {
            return 0;
        }

        @Override
        public int worldSize() {
            return 1;
        }

        @Override
        public void allGather(Tensor in, Tensor out) {
            try (Autograd.GradMode off = Autograd.noGrad()) {
                Ops.copyInto(in, out);
            }
        }

        @Override
        public Overlap allGatherOverlapped(Tensor in, Tensor out) {
            queued++;
            try (Autograd.GradMode off = Autograd.noGrad()) {
                Ops.copyInto(Tensor.full(out.shape(), 255, DType.U8, out.device()), out);
            }
            boolean[] done = {false};
            return () -> {
                if (!done[0]) {
                    done[0] = true;
                    awaited++;
                    allGather(in, out);
                }
            };
        }

        @Override
        public void allReduce(Tensor t, Reduction op) {
        }

        @Override
        public void reduceScatter(Tensor in, Tensor out, Reduction op) {
            allGather(in, out);
        }

        @Override
        public void broadcast(Tensor t, int root) {
        }

        @Override
        public void abort() {
        }

        @Override
        public void close() {
        }
    }

    @Test
    void aLayerRunsOnlyAfterItsGatherIsJoined() {
        long seed = Seeds.seed();
        try (Scope scope = Scope.open("weights", MemoryCategory.WEIGHTS)) {
            Tensor x0 = Tensor.fromArray(new Random(seed + 1).doubles(6 * HostWeightsTest.WIDTH).toArray(), Shape.of(6, HostWeightsTest.WIDTH),
                    DType.F32, Device.CPU).requiresGrad(true);
            List<float[]> expected = HostWeightsTest.pass(HostWeightsTest.blocks(Device.CPU, seed, false), null, x0, false);
            List<HostWeightsTest.Block> sharded = HostWeightsTest.blocks(Device.CPU, seed, false);
            Deferred world = new Deferred();
            ShardedWeights weights = ShardedWeights.shard(sharded, world, Device.CPU);
            for (HostWeightsTest.Block b : sharded) {
                for (Parameter p : b.namedParameters().values()) {
                    assertEquals(Device.META, p.tensor().device(), "the whole value is gone: a placeholder");
                }
            }
            HostWeightsTest.assertSame(expected, HostWeightsTest.pass(sharded, weights, x0, false), "first pass");
            HostWeightsTest.assertSame(expected, HostWeightsTest.pass(sharded, weights, x0, false), "second pass");
            System.out.println("gathers queued " + world.queued + ", joined " + world.awaited);
            assertTrue(world.queued >= 2 * HostWeightsTest.BLOCKS - 2, "every block gathered in forward, and again in backward");
            weights.gatherWhole();
            for (HostWeightsTest.Block b : sharded) {
                for (Parameter p : b.namedParameters().values()) {
                    assertEquals(Device.CPU, p.tensor().device(), "whole again");
                }
            }
            HostWeightsTest.assertSame(expected, HostWeightsTest.pass(sharded, null, x0, false), "whole again");
        }
    }
}

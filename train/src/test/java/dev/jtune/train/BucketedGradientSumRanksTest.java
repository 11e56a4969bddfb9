package dev.jtune.train;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.BucketedGradientSum;
import dev.jtune.engine.optim.GradientBuffer;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link BucketedGradientSum} over two in-process ranks whose graphs differ in a step: rank 0's uses w0 once more than
 * the first step taught it, so its w0 bucket is summed early and its last contribution goes aside, while rank 1 has
 * nothing late. Both must still agree to sum the late contributions, and every gradient must be the sum of the ranks'
 * plain backwards (up to float reassociation), the same bits on both ranks.
 */
class BucketedGradientSumRanksTest {
    private static final int N = 16;

    /** x w0 -> square -> w1 (checkpointed) -> square -> w2 -> w3, plus sum(x w0), and with {@code extra} sum(x^2 w0). */
    private static Tensor loss(Tensor x, List<Tensor> w, boolean extra) {
        Tensor h = square(x.matmul(w.get(0)));
        h = Autograd.checkpoint(t -> square(t[0].matmul(w.get(1))), h);
        Tensor out = h.matmul(w.get(2)).matmul(w.get(3)).reshape(-1).sum(0).add(x.matmul(w.get(0)).reshape(-1).sum(0));
        return extra ? out.add(x.mul(x).matmul(w.get(0)).reshape(-1).sum(0)) : out;
    }

    private static Tensor square(Tensor t) {
        return t.mul(t);
    }

    private static List<Tensor> weights() {
        List<Tensor> w = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            w.add(Ops.scale(Tensor.randn(Shape.of(N, N), DType.F32, Device.CPU, 40 + i), 0.3).requiresGrad(true));
        }
        return w;
    }

    private static Tensor input(int rank) {
        return Tensor.randn(Shape.of(4, N), DType.F32, Device.CPU, 70 + rank);
    }

    /** Rank {@code rank}'s plain gradients of its step-2 loss. */
    private static List<float[]> plain(int rank) {
        try (Scope s = Scope.open("plain")) {
            List<Tensor> w = weights();
            loss(input(rank), w, rank == 0).backward();
            return w.stream().map(t -> t.grad().toFloatArray()).toList();
        }
    }

    @Test
    void ranksAgreeOnLateContributionsAndSumThem() throws Exception {
        List<List<float[]>> got = new InProcessWorld(2, Duration.ofMinutes(1)).run(world -> {
            try (Scope s = Scope.open("rank " + world.rank())) {
                List<Tensor> w = weights();
                SequencedMap<String, Tensor> named = new LinkedHashMap<>();
                for (int i = 0; i < w.size(); i++) {
                    named.put("w" + i, w.get(i));
                }
                GradientBuffer buf = GradientBuffer.attach(named);
                Tensor x = input(world.rank());
                try (BucketedGradientSum sum = new BucketedGradientSum(world, List.of(buf), 1024, w)) {
                    sum.arm();
                    loss(x, w, false).backward(); // step 1: the counts
                    sum.finish();
                    buf.zero();
                    sum.arm();
                    loss(x, w, world.rank() == 0).backward(); // step 2: rank 0 uses w0 once more
                    sum.finish();
                    assertEquals(1, sum.lateSums(), "rank " + world.rank() + ": w0's late contributions summed (rank 1 adds zeros)");
                    assertTrue(sum.summedDuringBackward() > 0, "rank " + world.rank() + ": buckets summed during backward");
                }
                return w.stream().map(t -> t.grad().toFloatArray()).toList();
            }
        });
        List<float[]> r0 = plain(0);
        List<float[]> r1 = plain(1);
        for (int i = 0; i < 4; i++) {
            assertArrayEquals(got.get(0).get(i), got.get(1).get(i), 0f, "w" + i + ": the ranks' gradients are one");
            float[] g = got.get(0).get(i);
            double num = 0;
            double den = 0;
            for (int j = 0; j < g.length; j++) {
                double expected = (double) r0.get(i)[j] + r1.get(i)[j];
                num += (g[j] - expected) * (g[j] - expected);
                den += expected * expected;
            }
            double rel = Math.sqrt(num / den);
            System.out.printf(java.util.Locale.ROOT, "w%d: relative difference to the sum of plain backwards %.2e%n", i, rel);
            assertTrue(rel < 1e-6, "w" + i + ": " + rel);
        }
    }
}

package dev.jtune.engine.dist;

import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ZeRO stage 2's overlapped reduce-scatters against their contract, through a world of one whose overlapped
 * reduce-scatter runs only when awaited (as a collective on another stream may run any time before its join): the
 * output holds NaN until then, so reading a part early poisons the shard, and a bucket freed before its collective ran
 * fails the copy. The shards must still equal a plain backward's gradients (bit for bit where a weight gets one
 * contribution a backward), with buckets handed over during
 * backward and never more than {@link ShardedGradients#IN_FLIGHT} in flight.
 */
class ShardedGradientsTest {
    private static final int N = 16;

    /** A world of one: a reduce-scatter is a copy; the overlapped one happens at its await. */
    private static final class Deferred implements Collectives {
        final ArrayDeque<Runnable> pending = new ArrayDeque<>();
        int launched;
        int mostInFlight;

        @Override public int rank() { return 0; }
        @Override public int worldSize() { return 1; }
        @Override public void allReduce(Tensor t, Reduction op) { }
        @Override public void reduceScatter(Tensor in, Tensor out, Reduction op) {
            Ops.copyInto(in, out);
        }

        @Override
        public Overlap reduceScatterOverlapped(Tensor in, Tensor out, Reduction op) {
            dev.jtune.engine.backend.Backends.of(out).fill(out, Float.NaN);
            Runnable run = () -> Ops.copyInto(in, out); // throws if the bucket was freed before its collective ran
            pending.addLast(run);
            launched++;
            mostInFlight = Math.max(mostInFlight, pending.size());
            return () -> {
                // overlapped collectives run in order: awaiting one runs it and every one before it
                while (pending.contains(run)) {
                    pending.removeFirst().run();
                }
            };
        }

        @Override public void allGather(Tensor in, Tensor out) { throw new UnsupportedOperationException(); }
        @Override public void broadcast(Tensor t, int root) { }
        @Override public void abort() { }
        @Override public void close() { }
    }

    /**
     * The buckets' cut: from the layout's end, whole parameters up to the byte cap (a larger one alone), and, for ZeRO
     * stage 3, never across a change of unit, so every bucket lies in one unit (or in none).
     */
    @Test
    void bucketsAreCutAtTheCapAndWhereTheUnitChanges() {
        SequencedMap<String, dev.jtune.engine.Shape> shapes = new LinkedHashMap<>();
        long[] sizes = {1024, 256, 256, 512, 256, 256, 2048};
        for (int i = 0; i < sizes.length; i++) {
            shapes.put("p" + i, dev.jtune.engine.Shape.of(sizes[i]));
        }
        dev.jtune.engine.optim.FlatLayout layout = dev.jtune.engine.optim.FlatLayout.of(shapes);
        int[] none = {-1, -1, -1, -1, -1, -1, -1};
        // 4-byte elements, a cap of 4 KiB (1024 elements), from the end: p6 alone (larger), p3-p5 (exactly the cap), p1-p2, p0
        assertEquals(List.of("0-0", "1-2", "3-5", "6-6"), cuts(ShardedGradients.cut(layout, 4, 4096, none)));
        // units: p0 none, p1-p3 layer 0, p4-p6 layer 1: p3 leaves p4-p5's bucket (another unit) and joins p1-p2 (the cap holds)
        int[] units = {-1, 0, 0, 0, 1, 1, 1};
        assertEquals(List.of("0-0", "1-3", "4-5", "6-6"), cuts(ShardedGradients.cut(layout, 4, 4096, units)));
        assertEquals(List.of("0-0", "1-3", "4-6"), cuts(ShardedGradients.cut(layout, 4, 1 << 20, units)));
        assertEquals(List.of("0-6"), cuts(ShardedGradients.cut(layout, 4, 1 << 20, none)));
    }

    private static List<String> cuts(List<int[]> cuts) {
        return cuts.stream().map(c -> c[0] + "-" + c[1]).toList();
    }

    @Test
    void overlappedReduceScattersAreAwaitedBeforeTheirPartsAreReadOrTheirBucketsFreed() {
        try (Scope outer = Scope.open("test")) {
            run();
        }
    }

    private static void run() {
        List<float[]> plain = new ArrayList<>();
        try (Scope s = Scope.open("plain")) {
            BucketedGradientSumTest.Net n = BucketedGradientSumTest.net(); // W0 gets two contributions a backward
            for (int round = 0; round < 2; round++) {
                n.loss(false).backward();
            }
            n.w().forEach(t -> plain.add(t.grad().toFloatArray()));
        }
        Deferred world = new Deferred();
        try (Scope s = Scope.open("stage 2")) {
            BucketedGradientSumTest.Net n = BucketedGradientSumTest.net();
            List<Tensor> w = n.w();
            SequencedMap<String, Tensor> named = new LinkedHashMap<>();
            for (int i = 0; i < w.size(); i++) {
                named.put("w" + i, w.get(i));
            }
            try (ShardedGradients g = new ShardedGradients(world, List.of(named), N * N * 4, w)) {
                for (int round = 0; round < 2; round++) { // one step of two micro-batches
                    int before = world.launched;
                    n.loss(false).backward();
                    int duringBackward = world.launched - before;
                    g.reduce();
                    assertTrue(world.pending.isEmpty(), "round " + round + ": every reduce-scatter landed by the end of reduce()");
                    assertTrue(duringBackward > 0, "round " + round + ": buckets handed over during backward (" + duringBackward + ")");
                }
                g.finish(); // w0's second contribution in the first backward came late: reduced now
                w.forEach(t -> assertNull(t.grad(), "no parameter holds a gradient of its own"));
                float[] shard = g.groups().getFirst().shard().toFloatArray();
                assertEquals(4 * N * N, shard.length, "a world of one: the shard is the whole layout");
                for (int i = 0; i < 4; i++) {
                    float[] mine = java.util.Arrays.copyOfRange(shard, i * N * N, (i + 1) * N * N);
                    for (float v : mine) {
                        assertFalse(Float.isNaN(v), "w" + i + ": a part read before its reduce-scatter ran");
                    }
                    // w0's two contributions are summed per round before the rounds are (plain: one running sum): rounding
                    float tolerance = 0;
                    if (i == 0) {
                        for (float v : plain.get(0)) {
                            tolerance = Math.max(tolerance, 1e-6f * Math.abs(v));
                        }
                    }
                    assertArrayEquals(plain.get(i), mine, tolerance, "w" + i + ": the plain backward's gradient, summed over two rounds");
                }
            }
        }
        System.out.println("reduce-scatters " + world.launched + ", at most " + world.mostInFlight + " in flight");
        assertTrue(world.mostInFlight <= ShardedGradients.IN_FLIGHT + 1, "in flight: " + world.mostInFlight); // the newest, before the oldest lands
        assertTrue(world.mostInFlight >= 2, "several reduce-scatters overlapped: " + world.mostInFlight);
    }
}

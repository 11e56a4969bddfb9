package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.engine.ops.KeptAttention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

/**
 * {@link Autograd#castKept}: an fp32 leaf computed in bf16 (LoRA's weights) is cast once per checkpoint, the
 * recomputation (and the other tiles of a tiled checkpoint, and a checkpoint nested in it) reuse that cast, the
 * gradients are those of plain casts bit for bit, and the kept casts are freed when backward is done.
 * {@link Autograd#keptResults}: an op's results made in a checkpoint's first run are what its recomputation gets, in
 * call order, and a global attention layer keeps its output and log-sum-exp so (the {@link KeptAttention} policy).
 */
class KeptResultsTest {
    private final Random rnd = Seeds.random();

    /** A two-layer block in bf16 whose fp32 weights are cast by {@code cast}; records the storage of each cast. */
    private record Block(Tensor w1, Tensor w2, Function<Tensor, Tensor> cast, List<Storage> casts) {
        Tensor apply(Tensor x) {
            Tensor c1 = cast.apply(w1);
            Tensor c2 = cast.apply(w2);
            casts.add(c1.storage());
            casts.add(c2.storage());
            return x.matmul(c1.transpose(0, 1)).mul(x.matmul(c2.transpose(0, 1)));
        }
    }

    private enum Wrap { LAYER, NESTED, TILED }

    /** w1's and w2's gradients after one backward through the block under {@code wrap}; fills {@code casts}. */
    private double[][] gradients(long seed, Wrap wrap, boolean kept, List<Storage> casts) {
        try (Scope s = Scope.open("kept casts")) {
            Tensor w1 = Tensor.uniform(Shape.of(6, 8), DType.F32, Device.CPU, seed, -1, 1).requiresGrad(true);
            Tensor w2 = Tensor.uniform(Shape.of(6, 8), DType.F32, Device.CPU, seed + 1, -1, 1).requiresGrad(true);
            Tensor x = Tensor.uniform(Shape.of(9, 8), DType.BF16, Device.CPU, seed + 2, -1, 1).requiresGrad(true);
            Block block = new Block(w1, w2, kept ? w -> Autograd.castKept(w, DType.BF16) : w -> w.cast(DType.BF16), casts);
            int before = s.ownedCount();
            Tensor y = switch (wrap) {
                case LAYER -> Autograd.checkpoint(in -> block.apply(in[0]), x);
                case NESTED -> Autograd.checkpoint(in -> Autograd.checkpoint(inner -> block.apply(inner[0]), in[0]).scale(2), x);
                case TILED -> TiledCheckpoint.apply(block::apply, ActivationStore.DEVICE, x, 4);
            };
            y.cast(DType.F32).sum(0).sum(0).backward();
            // what backward leaves (outputs, the loss, the gradients), the same count whether casts were kept or not
            return new double[][] {w1.grad().toDoubleArray(), w2.grad().toDoubleArray(), x.grad().toDoubleArray(), {s.ownedCount() - before}};
        }
    }

    @Test
    void theRecomputationReusesTheFirstRunsCastsAndTheGradientsAreThoseOfPlainCasts() {
        for (Wrap wrap : Wrap.values()) {
            long seed = rnd.nextLong();
            List<Storage> plainCasts = new ArrayList<>();
            List<Storage> keptCasts = new ArrayList<>();
            double[][] plain = gradients(seed, wrap, false, plainCasts);
            double[][] kept = gradients(seed, wrap, true, keptCasts);
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(plain[i], kept[i], 0, wrap + ": gradient " + i);
            }
            assertEquals(plain[3][0], kept[3][0], wrap + ": storages left after backward (kept casts are freed)");
            // a first run and a recomputation; nested: the outer's recomputation runs the inner's first run, then the
            // inner's recomputation; tiled: 3 tiles each time
            int runs = switch (wrap) {
                case LAYER -> 2;
                case NESTED -> 3;
                case TILED -> 6;
            };
            assertEquals(2 * runs, keptCasts.size(), wrap + ": the block ran " + runs + " times");
            for (int i = 2; i < keptCasts.size(); i++) {
                assertSame(keptCasts.get(i % 2), keptCasts.get(i), wrap + ": cast " + i + " reuses the first run's");
                assertNotSame(plainCasts.get(i % 2), plainCasts.get(i), wrap + ": a plain cast is cast again");
            }
        }
    }

    @Test
    void withoutGradTheKeptResultsAreFreedWithTheCheckpointAndOutsideOneCastIsPlain() {
        try (Scope s = Scope.open("no grad")) {
            Tensor w = Tensor.uniform(Shape.of(6, 8), DType.F32, Device.CPU, rnd.nextLong(), -1, 1).requiresGrad(true);
            Tensor x = Tensor.uniform(Shape.of(9, 8), DType.BF16, Device.CPU, rnd.nextLong(), -1, 1);
            int before = s.ownedCount();
            try (Autograd.GradMode off = Autograd.noGrad()) {
                Autograd.checkpoint(in -> in[0].matmul(Autograd.castKept(w, DType.BF16).transpose(0, 1)), x);
            }
            assertEquals(before + 1, s.ownedCount(), "the output alone");
            Tensor c = Autograd.castKept(w, DType.BF16);
            assertEquals(before + 2, s.ownedCount(), "outside a checkpoint a plain cast, owned by the current scope");
            assertArrayEquals(w.cast(DType.BF16).toDoubleArray(), c.toDoubleArray(), 0);
        }
    }

    /** x * x as an op whose forward is kept ({@link Autograd#keptResults}); counts the forwards it runs in {@code runs}. */
    private static Tensor keptSquare(Tensor x, int[] runs) {
        return square(x, runs, true);
    }

    /** The same op kept or, with {@code keep} false, computed every time. */
    private static Tensor square(Tensor x, int[] runs, boolean keep) {
        java.util.function.Supplier<Tensor[]> forward = () -> {
            runs[0]++;
            try (Autograd.GradMode off = Autograd.noGrad()) {
                return new Tensor[] {x.mul(x)};
            }
        };
        Tensor[] made = keep ? Autograd.keptResults("square " + x.shape(), forward) : forward.get();
        Tensor out = made[0];
        Autograd.attach("kept square", out, g -> new Tensor[] {g.mul(x).scale(2)}, x);
        return out;
    }

    /** x's gradient through two kept squares (and a product between) under {@code wrap}; counts their forwards. */
    private double[][] squares(long seed, Wrap wrap, int[] runs, boolean keep) {
        try (Scope s = Scope.open("kept results")) {
            Tensor x = Tensor.uniform(Shape.of(5, 3), DType.F64, Device.CPU, seed, -1, 1).requiresGrad(true);
            Tensor w = Tensor.uniform(Shape.of(1, 3), DType.F64, Device.CPU, seed + 1, -1, 1); // row-wise, for the tiles
            Function<Tensor, Tensor> block = in -> square(square(in, runs, keep).mul(w), runs, keep);
            int before = s.ownedCount();
            Tensor y = switch (wrap) {
                case LAYER -> Autograd.checkpoint(in -> block.apply(in[0]), x);
                case NESTED -> Autograd.checkpoint(in -> Autograd.checkpoint(inner -> block.apply(inner[0]), in[0]).scale(2), x);
                case TILED -> TiledCheckpoint.apply(block::apply, ActivationStore.DEVICE, x, 2);
            };
            y.sum(0).sum(0).backward();
            return new double[][] {x.grad().toDoubleArray(), {s.ownedCount() - before}, x.toDoubleArray(), w.toDoubleArray()};
        }
    }

    @Test
    void aCheckpointsRecomputationGetsTheFirstRunsResultsAndTheSameGradients() {
        for (Wrap wrap : Wrap.values()) {
            long seed = rnd.nextLong();
            int[] runs = {0};
            double[][] kept = squares(seed, wrap, runs, true);
            double[][] plain = squares(seed, wrap, new int[1], false);
            assertArrayEquals(plain[0], kept[0], 0, wrap + ": kept vs computed again");
            double[] x = kept[2];
            double[] w = kept[3];
            double factor = wrap == Wrap.NESTED ? 2 : 1;
            for (int i = 0; i < x.length; i++) {
                // y = (x^2 w)^2 = x^4 w^2: dy/dx = 4 x^3 w^2, with the same products in the same order as the ops
                double expected = factor * 2 * (x[i] * x[i] * w[i % 3]) * w[i % 3] * 2 * x[i];
                assertEquals(expected, kept[0][i], 1e-12 * Math.max(1, Math.abs(expected)), wrap + ": dx " + i);
            }
            assertEquals(plain[1][0], kept[1][0], wrap + ": storages left after backward (kept results are freed)");
            // two squares a run: a first run and a recomputation that reuses it (layer); nested: the outer's first
            // run (the inner's results are freed, not handed over), the outer's recomputation running the inner's
            // first run, then the inner's recomputation reusing it; tiled: nothing kept, 3 tiles each time
            int expectedRuns = switch (wrap) {
                case LAYER -> 2;
                case NESTED -> 4;
                case TILED -> 12;
            };
            assertEquals(expectedRuns, runs[0], wrap + ": forwards of the kept op");
        }
    }

    @Test
    void outsideACheckpointOrWithoutGradTheOpComputesEveryTime() {
        try (Scope s = Scope.open("plain")) {
            Tensor x = Tensor.uniform(Shape.of(4, 2), DType.F64, Device.CPU, rnd.nextLong(), -1, 1).requiresGrad(true);
            int[] runs = {0};
            keptSquare(keptSquare(x, runs), runs).sum(0).sum(0).backward();
            assertEquals(2, runs[0]);
            int before = s.ownedCount();
            try (Autograd.GradMode off = Autograd.noGrad()) {
                Autograd.checkpoint(in -> keptSquare(in[0], runs), x);
            }
            assertEquals(3, runs[0]);
            assertEquals(before + 1, s.ownedCount(), "without grad the checkpoint's kept results are freed: its output alone");
        }
    }

    /** q, k, v's gradients of a checkpointed attention (global or sliding) under a keep policy; and the storages held between forward and backward. */
    private double[][] attention(long seed, long window, KeptAttention policy) {
        try (Scope s = Scope.open("attention")) {
            Tensor q = Tensor.randn(Shape.of(1, 4, 24, 8), DType.F64, Device.CPU, seed).requiresGrad(true);
            Tensor k = Tensor.randn(Shape.of(1, 2, 24, 8), DType.F64, Device.CPU, seed + 1).requiresGrad(true);
            Tensor v = Tensor.randn(Shape.of(1, 2, 24, 8), DType.F64, Device.CPU, seed + 2).requiresGrad(true);
            Tensor g = Tensor.randn(Shape.of(1, 4, 24, 8), DType.F64, Device.CPU, seed + 3);
            AttentionSpec spec = new AttentionSpec(window, 0.3, 8).keeping(policy);
            int start = s.ownedCount();
            Tensor y = Autograd.checkpoint(in -> Attention.causal(in[0].scale(1.5), in[1], in[2], spec).mul(in[0]), q, k, v);
            int held = s.ownedCount() - start;
            y.backward(g);
            return new double[][] {q.grad().toDoubleArray(), k.grad().toDoubleArray(), v.grad().toDoubleArray(), {held}};
        }
    }

    @Test
    void aGlobalAttentionLayerIsKeptAndASlidingOneRecomputedWithTheSameGradients() {
        long seed = rnd.nextLong();
        for (long window : new long[] {0, 5, 24}) {
            double[][] none = attention(seed, window, KeptAttention.NONE);
            double[][] global = attention(seed, window, KeptAttention.GLOBAL);
            double[][] all = attention(seed, window, KeptAttention.ALL);
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(none[i], global[i], 0, "window " + window + ": gradient " + i + " kept (global) vs recomputed");
                assertArrayEquals(none[i], all[i], 0, "window " + window + ": gradient " + i + " kept (all) vs recomputed");
            }
            boolean global0 = window == 0 || window >= 24;
            // held between forward and backward: the output alone, or with the kept attention output and lse
            assertEquals(1, none[3][0], "window " + window + ": none keeps nothing");
            assertEquals(global0 ? 3 : 1, global[3][0], "window " + window + ": global keeps a layer that sees every earlier key");
            assertEquals(3, all[3][0], "window " + window + ": all keeps every layer");
        }
        assertEquals(KeptAttention.NONE, AttentionSpec.causal(1).keep(), "nothing is kept unless asked");
    }
}

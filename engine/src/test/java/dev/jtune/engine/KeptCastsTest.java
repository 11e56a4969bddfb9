package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

/**
 * {@link Autograd#castKept}: an fp32 leaf computed in bf16 (LoRA's weights) is cast once per checkpoint, the
 * recomputation (and the other tiles of a tiled checkpoint, and a checkpoint nested in it) reuse that cast, the
 * gradients are those of plain casts bit for bit, and the kept casts are freed when backward is done.
 */
class KeptCastsTest {
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
    void withoutGradTheKeptCastsAreFreedWithTheCheckpointAndOutsideOneCastIsPlain() {
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
}

package dev.jtune.engine.ops;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.GradCheck;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.testing.Seeds;
import dev.jtune.testing.SystemProperties;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link CrossEntropy#linear} with hidden's gradient made in forward (a frozen weight: LoRA's tied embedding) against
 * the backward that recomputes the logits ({@code -Djtune.crossEntropyGradientInForward=false}): with the incoming
 * gradient 1 (a loss's own backward) the loss and every gradient element are the same bits, in F32 and BF16; with
 * another incoming gradient it is still the gradient (float64 finite differences).
 */
class LinearCrossEntropyGradientInForwardTest {
    private final Random rnd = Seeds.random();

    private record Result(double loss, float[] grad) {
    }

    private static Result run(boolean inForward, DType dtype, double[] h, double[] w, int[] labels, int n, int vocab, int hid, int chunk,
                              double normalizer) {
        return SystemProperties.with(CrossEntropy.GRADIENT_IN_FORWARD, Boolean.toString(inForward),
                () -> runWith(inForward, dtype, h, w, labels, n, vocab, hid, chunk, normalizer));
    }

    private static Result runWith(boolean inForward, DType dtype, double[] h, double[] w, int[] labels, int n, int vocab, int hid, int chunk,
                                  double normalizer) {
        try (Scope s = Scope.open("linear cross-entropy")) {
            Tensor hidden = Tensor.fromArray(h, Shape.of(n, hid), dtype, Device.CPU).requiresGrad(true);
            Tensor weight = Tensor.fromArray(w, Shape.of(vocab, hid), dtype, Device.CPU);
            assertEquals(inForward, CrossEntropy.gradientInForward(hidden, weight, 0));
            Tensor loss = CrossEntropy.linear(hidden, weight, Tensor.fromArray(labels, Shape.of(n), DType.I32, Device.CPU), chunk, normalizer);
            double value = loss.item();
            loss.backward();
            return new Result(value, hidden.grad().toFloatArray());
        }
    }

    @Test
    void theSameBitsAsTheRecomputingBackward() {
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = trial % 2 == 0 ? DType.F32 : DType.BF16;
            int n = 1 + rnd.nextInt(40);
            int vocab = 2 + rnd.nextInt(120);
            int hid = 1 + rnd.nextInt(10);
            double[] h = new double[n * hid];
            double[] w = new double[vocab * hid];
            for (int i = 0; i < h.length; i++) {
                h[i] = 2 * (2 * rnd.nextDouble() - 1);
            }
            for (int i = 0; i < w.length; i++) {
                w[i] = 2 * rnd.nextDouble() - 1;
            }
            int[] labels = RandomLabels.oneCounted(rnd, n, vocab);
            int chunk = rnd.nextBoolean() ? 0 : 1 + rnd.nextInt(n + 2);
            double normalizer = rnd.nextBoolean() ? 0 : 1 + rnd.nextInt(3 * n);
            Result recomputed = run(false, dtype, h, w, labels, n, vocab, hid, chunk, normalizer);
            Result inForward = run(true, dtype, h, w, labels, n, vocab, hid, chunk, normalizer);
            String what = "trial " + trial + ": " + dtype + " N " + n + " V " + vocab + " H " + hid + " chunk " + chunk + " normalizer " + normalizer;
            assertEquals(recomputed.loss(), inForward.loss(), 0.0, what + ": loss");
            assertArrayEquals(recomputed.grad(), inForward.grad(), 0f, what + ": dL/dhidden");
        }
    }

    @Test
    void itIsTheGradientForAnyIncomingGradient() {
        for (int trial = 0; trial < 3; trial++) {
            int n = 2 + rnd.nextInt(9);
            int vocab = 3 + rnd.nextInt(12);
            int[] lab = RandomLabels.firstCounted(rnd, n, vocab);
            int chunk = 1 + rnd.nextInt(n);
            long seed = rnd.nextLong();
            try (Scope s = Scope.open("frozen weight")) {
                Tensor weight = Tensor.randn(Shape.of(vocab, 4), DType.F64, Device.CPU, seed);
                Tensor labels = Tensor.fromArray(lab, Shape.of(n), DType.I32, Device.CPU);
                // GradCheck weighs the output by a random number: an incoming gradient other than 1
                GradCheck.check("linear CE, gradient in forward, chunk " + chunk,
                        t -> CrossEntropy.linear(t[0].scale(3), weight, labels, chunk), seed + 1, Shape.of(n, 4));
            }
        }
    }

    @Test
    void onlyForAFrozenWeightWhileRecordingWithoutACap() {
        try (Scope s = Scope.open("when")) {
            Tensor hidden = Tensor.zeros(Shape.of(2, 3), DType.F32, Device.CPU).requiresGrad(true);
            Tensor frozen = Tensor.zeros(Shape.of(5, 3), DType.F32, Device.CPU);
            Tensor trained = Tensor.zeros(Shape.of(5, 3), DType.F32, Device.CPU).requiresGrad(true);
            assertTrue(CrossEntropy.gradientInForward(hidden, frozen, 0));
            assertFalse(CrossEntropy.gradientInForward(hidden, trained, 0), "the weight's gradient: the sliced backward");
            assertFalse(CrossEntropy.gradientInForward(hidden, frozen, 30), "a cap");
            assertFalse(CrossEntropy.gradientInForward(Tensor.zeros(Shape.of(2, 3), DType.F32, Device.CPU), frozen, 0), "nothing wants it");
            try (var off = dev.jtune.engine.Autograd.noGrad()) {
                assertFalse(CrossEntropy.gradientInForward(hidden, frozen, 0), "not recording (evaluation)");
            }
        }
    }
}

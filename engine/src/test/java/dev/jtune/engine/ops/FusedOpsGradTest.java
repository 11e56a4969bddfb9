package dev.jtune.engine.ops;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.GradCheck;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every fused op of the training step: its gradient by float64 finite differences on random shapes, and its value
 * against a naive reference written here from the definition.
 */
class FusedOpsGradTest {
    private final Random rnd = Seeds.random();

    private long d(int max) {
        return 1 + rnd.nextInt(max);
    }

    private Tensor ints(int[] values, Shape shape) {
        return Tensor.fromArray(values, shape, DType.I32, Device.CPU);
    }

    @Test
    void embeddingGradientScatterAddsRepeatedIds() {
        long v = d(6) + 1;
        long dim = d(5);
        int n = 2 + rnd.nextInt(8);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = rnd.nextInt((int) v);
        }
        ids[n - 1] = ids[0]; // a repeated id
        GradCheck.check("embedding", t -> Embedding.lookup(t[0], ints(ids, Shape.of(n))), rnd.nextLong(), Shape.of(v, dim));
        if (n % 2 == 0) {
            GradCheck.check("embedding 2-D ids", t -> Embedding.lookup(t[0], ints(ids, Shape.of(2, n / 2))), rnd.nextLong(), Shape.of(v, dim));
        }
    }

    @Test
    void rmsNormBothVariants() {
        Shape x = Shape.of(d(3), d(4), d(8) + 1);
        Shape w = Shape.of(x.dim(2));
        GradCheck.check("rmsNorm (1 + w)", t -> RmsNorm.apply(t[0], t[1], 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT), rnd.nextLong(), x, w);
        GradCheck.check("rmsNorm w", t -> RmsNorm.apply(t[0], t[1], 1e-5, RmsNorm.Scale.WEIGHT), rnd.nextLong(), x, w);
    }

    /** The residual add fused into the norm: both outputs used, each alone, and against the unfused add then norm. */
    @Test
    void rmsNormWithTheResidualAdd() {
        Shape x = Shape.of(d(3), d(4), d(8) + 1);
        Shape w = Shape.of(x.dim(2));
        GradCheck.check("sum and norm", t -> {
            Tensor[] o = RmsNorm.applyResidual(t[0], t[1], t[2], 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
            return o[1].mul(o[0]).add(o[0]);
        }, rnd.nextLong(), x, x, w);
        GradCheck.check("the norm alone", t -> RmsNorm.applyResidual(t[0], t[1], t[2], 1e-5, RmsNorm.Scale.WEIGHT)[1], rnd.nextLong(), x, x, w);
        GradCheck.check("the sum alone", t -> RmsNorm.applyResidual(t[0], t[1], t[2], 1e-5, RmsNorm.Scale.WEIGHT)[0].mul(t[0]), rnd.nextLong(), x, x, w);
        // in 16 and 32 bits the forward is the unfused add (rounded) then norm, and the gradients are theirs, bit for bit
        for (DType dt : new DType[] {DType.F32, DType.BF16}) {
            try (Scope s = Scope.open("residual " + dt)) {
                Tensor a = Tensor.randn(x, DType.F32, Device.CPU, rnd.nextLong()).cast(dt).requiresGrad(true);
                Tensor b = Tensor.randn(x, DType.F32, Device.CPU, rnd.nextLong()).cast(dt).requiresGrad(true);
                Tensor wt = Tensor.randn(w, DType.F32, Device.CPU, rnd.nextLong()).requiresGrad(true);
                Tensor[] fused = RmsNorm.applyResidual(a, b, wt, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
                Tensor sum = a.add(b);
                Tensor plain = RmsNorm.apply(sum, wt, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
                assertArrayEquals(sum.toDoubleArray(), fused[0].toDoubleArray(), 0, dt + " sum");
                assertArrayEquals(plain.toDoubleArray(), fused[1].toDoubleArray(), 0, dt + " norm");
                Tensor seed = Tensor.randn(x, DType.F32, Device.CPU, rnd.nextLong()).cast(dt);
                fused[1].mul(seed).add(fused[0].mul(seed)).sum(2).sum(1).sum(0).backward();
                double[] ga = a.grad().toDoubleArray();
                double[] gb = b.grad().toDoubleArray();
                double[] gw = wt.grad().toDoubleArray();
                a.zeroGrad();
                b.zeroGrad();
                wt.zeroGrad();
                plain.mul(seed).add(sum.mul(seed)).sum(2).sum(1).sum(0).backward();
                assertArrayEquals(gb, ga, 0, dt + ": x and h get one gradient");
                assertArrayEquals(a.grad().toDoubleArray(), ga, 0, dt + " gradient of x");
                assertArrayEquals(wt.grad().toDoubleArray(), gw, 0, dt + " gradient of the weight");
            }
        }
    }

    private static void assertClose(double[] expected, double[] got, double tol, String what) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            num += (got[i] - expected[i]) * (got[i] - expected[i]);
            den += expected[i] * expected[i];
        }
        double rel = Math.sqrt(num / Math.max(den, 1e-300));
        assertTrue(rel <= tol, what + ": relative error " + rel + " above " + tol);
    }

    @Test
    void activations() {
        Shape s = Shape.of(d(4), d(7));
        GradCheck.check("gelu", t -> Activations.gelu(t[0]), rnd.nextLong(), s);
        GradCheck.check("geglu", t -> Activations.geglu(t[0], t[1]), rnd.nextLong(), s, s);
    }

    @Test
    void ropeWithSharedAndPerBatchPositions() {
        long b = d(2);
        long t = d(6);
        Shape x = Shape.of(b, d(3), t, 2 * d(4));
        int[] pos = new int[(int) (b * t)];
        for (int i = 0; i < pos.length; i++) {
            pos[i] = rnd.nextInt(5000);
        }
        GradCheck.check("rope [B, T]", u -> Rope.apply(u[0], ints(pos, Shape.of(b, t)), 10_000), rnd.nextLong(), x);
        int[] shared = java.util.Arrays.copyOf(pos, (int) t);
        GradCheck.check("rope [T]", u -> Rope.apply(u[0], ints(shared, Shape.of(t)), 1_000_000), rnd.nextLong(), x);
        GradCheck.check("rope, linear scaling 8", u -> Rope.apply(u[0], ints(shared, Shape.of(t)), 1_000_000, 8.0), rnd.nextLong(), x);
        // the attention path: x is the [B, H, T, D] view of a [B, T, H, D] tensor, read and written back without a copy
        Shape bthd = Shape.of(b, t, x.dim(1), x.dim(3));
        GradCheck.check("rope of a transposed view", u -> Rope.apply(u[0].transpose(1, 2), ints(pos, Shape.of(b, t)), 10_000), rnd.nextLong(), bthd);
        try (Scope s = Scope.open("rope layouts")) {
            Tensor p = Tensor.randn(bthd, DType.F64, Device.CPU, 5);
            assertTrue(Rope.apply(p.transpose(1, 2), ints(pos, Shape.of(b, t)), 10_000).isContiguous(), "rope's output is a contiguous [B, H, T, D]");
            // the gradient of the [B, H, T, D] view is written in the [B, T, H, D] tensor's layout: transposing it back is free
            assertTrue(Rope.emptyLaidOutAs(p.transpose(1, 2)).transpose(1, 2).isContiguous(), "the view's gradient in the projection's layout");
            assertTrue(Rope.emptyLaidOutAs(p).isContiguous(), "a contiguous input's gradient is contiguous");
        }
        try (Scope s = Scope.open("rope scaling")) {
            // linear scaling by s rotates position p as the unscaled rope rotates p / s
            Tensor v = Tensor.randn(Shape.of(1, 1, 1, 8), DType.F64, Device.CPU, 3);
            double[] scaled = Rope.apply(v, ints(new int[] {24}, Shape.of(1)), 10_000, 8.0).toDoubleArray();
            double[] plain = Rope.apply(v, ints(new int[] {3}, Shape.of(1)), 10_000).toDoubleArray();
            assertTrue(java.util.Arrays.equals(roundAll(scaled), roundAll(plain)), java.util.Arrays.toString(scaled) + " vs " + java.util.Arrays.toString(plain));
        }
    }

    /**
     * The q/k path's norm and rotation as one op: its float64 gradients (x as the projection's transposed view, the
     * weight, shared and per-batch positions), and in 16 and 32 bits the unfused norm then rope's values and gradients
     * bit for bit; a head dimension over the fused kernel's limit takes the unfused pair.
     */
    @Test
    void rmsNormRopeIsTheNormThenTheRotation() {
        long b = d(2);
        long t = d(5);
        long h = d(3);
        long dim = 2 * d(4);
        Shape bthd = Shape.of(b, t, h, dim);
        Shape w = Shape.of(dim);
        int[] pos = new int[(int) (b * t)];
        for (int i = 0; i < pos.length; i++) {
            pos[i] = rnd.nextInt(5000);
        }
        int[] shared = java.util.Arrays.copyOf(pos, (int) t);
        GradCheck.check("rmsNormRope of a transposed view, [B, T] positions", u -> RmsNormRope.fused(u[0].transpose(1, 2), u[1], 1e-6,
                RmsNorm.Scale.ONE_PLUS_WEIGHT, ints(pos, Shape.of(b, t)), 10_000, 1), rnd.nextLong(), bthd, w);
        GradCheck.check("rmsNormRope, [T] positions, scaling 8", u -> RmsNormRope.fused(u[0], u[1], 1e-5, RmsNorm.Scale.WEIGHT,
                ints(shared, Shape.of(t)), 1_000_000, 8), rnd.nextLong(), Shape.of(b, h, t, dim), w);
        for (DType dt : new DType[] {DType.F32, DType.BF16}) {
            try (Scope s = Scope.open("rmsNormRope " + dt)) {
                Tensor x = Tensor.randn(bthd, DType.F32, Device.CPU, rnd.nextLong()).cast(dt).requiresGrad(true);
                Tensor wt = Tensor.randn(w, DType.F32, Device.CPU, rnd.nextLong()).cast(dt).requiresGrad(true);
                Tensor positions = ints(pos, Shape.of(b, t));
                Tensor fused = RmsNormRope.fused(x.transpose(1, 2), wt, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT, positions, 10_000, 1);
                Tensor plain = Rope.apply(RmsNorm.apply(x.transpose(1, 2), wt, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT), positions, 10_000, 1);
                assertTrue(fused.isContiguous(), "a contiguous [B, H, T, D]");
                assertArrayEquals(plain.toDoubleArray(), fused.toDoubleArray(), 0, dt + " values");
                assertArrayEquals(plain.toDoubleArray(), RmsNormRope.twoOps(x.transpose(1, 2), wt, 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT, positions,
                        10_000, 1).toDoubleArray(), 0, dt + " values of the two ops over the projection's layout");
                Tensor seed = Tensor.randn(fused.shape(), DType.F32, Device.CPU, rnd.nextLong()).cast(dt);
                fused.mul(seed).sum(3).sum(2).sum(1).sum(0).backward();
                double[] gx = x.grad().toDoubleArray();
                double[] gw = wt.grad().toDoubleArray();
                x.zeroGrad();
                wt.zeroGrad();
                plain.mul(seed).sum(3).sum(2).sum(1).sum(0).backward();
                assertArrayEquals(x.grad().toDoubleArray(), gx, 0, dt + " gradient of x");
                assertArrayEquals(wt.grad().toDoubleArray(), gw, 0, dt + " gradient of the weight");
            }
        }
        long wide = RmsNormRope.FUSED_HEAD_DIM_LIMIT + 2;
        GradCheck.check("rmsNormRope over the fused limit (the unfused pair)", u -> RmsNormRope.fused(u[0], u[1], 1e-6,
                RmsNorm.Scale.ONE_PLUS_WEIGHT, ints(new int[] {7}, Shape.of(1)), 10_000, 1), rnd.nextLong(), Shape.of(1, 1, 1, wide), Shape.of(wide));
        try (Scope s = Scope.open("rmsNormRope checks")) {
            Tensor x = Tensor.zeros(Shape.of(1, 2, 3, 8), DType.F32, Device.CPU);
            assertThrows(ShapeException.class, () -> RmsNormRope.fused(x, Tensor.zeros(Shape.of(6), DType.F32, Device.CPU), 1e-6,
                    RmsNorm.Scale.WEIGHT, ints(new int[] {0, 1, 2}, Shape.of(3)), 10_000, 1));
            assertThrows(ShapeException.class, () -> RmsNormRope.fused(x, Tensor.zeros(Shape.of(8), DType.F32, Device.CPU), 1e-6,
                    RmsNorm.Scale.WEIGHT, ints(new int[] {0, 1}, Shape.of(2)), 10_000, 1));
        }
    }

    @Test
    void softmaxAlongEveryAxis() {
        Shape s = Shape.of(d(3), d(4) + 1, d(3) + 1);
        for (int axis = -3; axis < 3; axis++) {
            int ax = axis;
            GradCheck.check("softmax " + ax, t -> Softmax.softmax(t[0], ax), rnd.nextLong(), s);
            GradCheck.check("logSoftmax " + ax, t -> Softmax.logSoftmax(t[0], ax), rnd.nextLong(), s);
        }
        try (Scope sc = Scope.open("sum to one")) {
            Tensor p = Softmax.softmax(Tensor.randn(s, DType.F64, Device.CPU, 4), 1);
            for (double v : p.sum(1).toDoubleArray()) {
                assertEquals(1.0, v, 1e-12);
            }
        }
    }

    private static double[] roundAll(double[] v) {
        double[] r = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = Math.round(v[i] * 1e5) / 1e5; // fp32 angles: equal to ~1e-6
        }
        return r;
    }

    private int[] labels(int n, int vocab) {
        return RandomLabels.firstCounted(rnd, n, vocab);
    }

    @Test
    void crossEntropyMatchesTheDefinitionAndItsGradient() {
        int n = 2 + rnd.nextInt(9);
        int vocab = 2 + rnd.nextInt(11);
        int[] lab = labels(n, vocab);
        GradCheck.check("crossEntropy", t -> CrossEntropy.mean(t[0], ints(lab, Shape.of(n))), rnd.nextLong(), Shape.of(n, vocab));
        try (Scope s = Scope.open("ce value")) {
            Tensor logits = Tensor.randn(Shape.of(n, vocab), DType.F64, Device.CPU, 5);
            double[] x = logits.toDoubleArray();
            double total = 0;
            int count = 0;
            for (int i = 0; i < n; i++) {
                if (lab[i] == CrossEntropy.IGNORE_INDEX) {
                    continue;
                }
                double max = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < vocab; c++) {
                    max = Math.max(max, x[i * vocab + c]);
                }
                double sum = 0;
                for (int c = 0; c < vocab; c++) {
                    sum += Math.exp(x[i * vocab + c] - max);
                }
                total += max + Math.log(sum) - x[i * vocab + lab[i]];
                count++;
            }
            double loss = CrossEntropy.mean(logits, ints(lab, Shape.of(n))).item();
            assertEquals(total / count, loss, 1e-6 * Math.abs(total / count), "mean over counted tokens (F32 result)");
        }
    }

    @Test
    void linearCrossEntropyEqualsTheUnchunkedLossAndGradients() {
        int n = 3 + rnd.nextInt(12);
        int vocab = 2 + rnd.nextInt(9);
        long hid = d(6);
        int[] lab = labels(n, vocab);
        int chunk = 1 + rnd.nextInt(n);
        GradCheck.check("linear CE chunk " + chunk, t -> CrossEntropy.linear(t[0], t[1], ints(lab, Shape.of(n)), chunk),
                rnd.nextLong(), Shape.of(n, hid), Shape.of(vocab, hid));
        try (Scope s = Scope.open("linear CE value")) {
            Tensor h = Tensor.randn(Shape.of(n, hid), DType.F64, Device.CPU, 6);
            Tensor w = Tensor.randn(Shape.of(vocab, hid), DType.F64, Device.CPU, 7);
            Tensor labels = ints(lab, Shape.of(n));
            double full = CrossEntropy.mean(h.matmul(w.transpose(0, 1)), labels).item();
            double chunked = CrossEntropy.linear(h, w, labels, chunk).item();
            assertEquals(full, chunked, 1e-6 * Math.abs(full));
        }
    }

    @Test
    void attentionGradientsWithWindowAndGroupedHeads() {
        long b = d(2);
        long hkv = d(2);
        long hq = hkv * d(2);
        long t = 2 + rnd.nextInt(9);
        long dim = d(4);
        long window = rnd.nextBoolean() ? 0 : 1 + rnd.nextInt((int) t);
        AttentionSpec spec = new AttentionSpec(window, 1.0 / Math.sqrt(dim), 1 + rnd.nextInt((int) t));
        GradCheck.check("attention " + spec, u -> Attention.causal(u[0], u[1], u[2], spec), rnd.nextLong(),
                Shape.of(b, hq, t, dim), Shape.of(b, hkv, t, dim), Shape.of(b, hkv, t, dim));
    }

    @Test
    void attentionEqualsTheNaiveMaskedSoftmax() {
        long b = d(2);
        long hkv = d(2);
        long g = d(3);
        long hq = hkv * g;
        long t = 3 + rnd.nextInt(20);
        long dim = d(8);
        long window = rnd.nextBoolean() ? 0 : 1 + rnd.nextInt((int) t);
        double scale = 0.3 + rnd.nextDouble();
        try (Scope s = Scope.open("attention value")) {
            Tensor q = Tensor.randn(Shape.of(b, hq, t, dim), DType.F64, Device.CPU, rnd.nextLong());
            Tensor k = Tensor.randn(Shape.of(b, hkv, t, dim), DType.F64, Device.CPU, rnd.nextLong());
            Tensor v = Tensor.randn(Shape.of(b, hkv, t, dim), DType.F64, Device.CPU, rnd.nextLong());
            double[] out = Attention.causal(q, k, v, new AttentionSpec(window, scale, 1 + rnd.nextInt((int) t))).toDoubleArray();
            double[] qa = q.toDoubleArray();
            double[] ka = k.toDoubleArray();
            double[] va = v.toDoubleArray();
            double maxErr = 0;
            for (int bi = 0; bi < b; bi++) {
                for (int h = 0; h < hq; h++) {
                    int hk = (int) (h / g);
                    for (int i = 0; i < t; i++) {
                        double[] w = new double[(int) t];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int j = 0; j <= i; j++) {
                            if (window > 0 && i - j >= window) {
                                w[j] = Double.NEGATIVE_INFINITY;
                                continue;
                            }
                            double dot = 0;
                            for (int c = 0; c < dim; c++) {
                                dot += qa[(int) ((((bi * hq + h) * t) + i) * dim + c)] * ka[(int) ((((bi * hkv + hk) * t) + j) * dim + c)];
                            }
                            w[j] = dot * scale;
                            max = Math.max(max, w[j]);
                        }
                        double sum = 0;
                        for (int j = 0; j <= i; j++) {
                            sum += w[j] == Double.NEGATIVE_INFINITY ? 0 : Math.exp(w[j] - max);
                        }
                        for (int c = 0; c < dim; c++) {
                            double o = 0;
                            for (int j = 0; j <= i; j++) {
                                if (w[j] != Double.NEGATIVE_INFINITY) {
                                    o += Math.exp(w[j] - max) / sum * va[(int) ((((bi * hkv + hk) * t) + j) * dim + c)];
                                }
                            }
                            maxErr = Math.max(maxErr, Math.abs(o - out[(int) ((((bi * hq + h) * t) + i) * dim + c)]));
                        }
                    }
                }
            }
            assertTrue(maxErr < 1e-12, "attention differs from the naive masked softmax by " + maxErr);
        }
    }

    @Test
    void softCappingOfLogitsAndAttentionScores() {
        GradCheck.check("softcap", t -> Softcap.apply(t[0].scale(20), 7.0), rnd.nextLong(), Shape.of(d(4), d(9)));
        long t = 2 + rnd.nextInt(8);
        AttentionSpec capped = new AttentionSpec(rnd.nextBoolean() ? 0 : 1 + rnd.nextInt((int) t), 0.7, 1 + rnd.nextInt((int) t), 1.5);
        GradCheck.check("attention softcap " + capped, u -> Attention.causal(u[0].scale(3), u[1], u[2], capped), rnd.nextLong(),
                Shape.of(1, 2, t, 4), Shape.of(1, 1, t, 4), Shape.of(1, 1, t, 4));
        int n = 3 + rnd.nextInt(8);
        int vocab = 3 + rnd.nextInt(7);
        int[] lab = labels(n, vocab);
        GradCheck.check("linear CE softcap", u -> CrossEntropy.linear(u[0].scale(4), u[1], ints(lab, Shape.of(n)), 2, 0, 2.5),
                rnd.nextLong(), Shape.of(n, 5), Shape.of(vocab, 5));
        try (Scope s = Scope.open("softcap values")) {
            Tensor h = Tensor.randn(Shape.of(n, 5), DType.F64, Device.CPU, 8).scale(4);
            Tensor w = Tensor.randn(Shape.of(vocab, 5), DType.F64, Device.CPU, 9);
            Tensor labels = ints(lab, Shape.of(n));
            double full = CrossEntropy.mean(Softcap.apply(h.matmul(w.transpose(0, 1)), 2.5), labels).item();
            assertEquals(full, CrossEntropy.linear(h, w, labels, 2, 0, 2.5).item(), 1e-9 * Math.abs(full));
            // capped attention equals the softmax over cap * tanh(scale * q.k / cap), computed with plain ops
            Tensor q = Tensor.randn(Shape.of(1, 1, t, 4), DType.F64, Device.CPU, 10).scale(3);
            Tensor k = Tensor.randn(Shape.of(1, 1, t, 4), DType.F64, Device.CPU, 11);
            Tensor v = Tensor.randn(Shape.of(1, 1, t, 4), DType.F64, Device.CPU, 12);
            double[] got = Attention.causal(q, k, v, new AttentionSpec(0, 0.7, 2, 1.5)).toDoubleArray();
            double[] z = Softcap.apply(q.reshape(t, 4).matmul(k.reshape(t, 4).transpose(0, 1)).scale(0.7), 1.5).toDoubleArray();
            double[] va = v.toDoubleArray();
            for (int i = 0; i < t; i++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= i; j++) {
                    max = Math.max(max, z[(int) (i * t + j)]);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    sum += Math.exp(z[(int) (i * t + j)] - max);
                }
                for (int c = 0; c < 4; c++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) {
                        o += Math.exp(z[(int) (i * t + j)] - max) / sum * va[j * 4 + c];
                    }
                    assertEquals(o, got[i * 4 + c], 1e-12);
                }
            }
        }
    }

    @Test
    void addMatmulIntoAccumulatesIntoAFreshProduct() {
        long m = d(7);
        long k = d(5);
        long n = d(6);
        // c must be a fresh product: scale(2) makes one from the leaf on every evaluation
        GradCheck.check("addMatmulInto b^T", t -> Ops.addMatmulInto(t[0].scale(2), t[1], t[2], Transpose.B), rnd.nextLong(),
                Shape.of(m, n), Shape.of(m, k), Shape.of(n, k));
        GradCheck.check("addMatmulInto b", t -> Ops.addMatmulInto(t[0].scale(2), t[1], t[2], Transpose.NONE), rnd.nextLong(),
                Shape.of(m, n), Shape.of(m, k), Shape.of(k, n));
        try (Scope s = Scope.open("value")) {
            Tensor c = Tensor.randn(Shape.of(m, n), DType.F64, Device.CPU, 1);
            Tensor a = Tensor.randn(Shape.of(m, k), DType.F64, Device.CPU, 2);
            Tensor b = Tensor.randn(Shape.of(n, k), DType.F64, Device.CPU, 3);
            double[] expected = c.add(a.matmul(b.transpose(0, 1))).toDoubleArray();
            double[] got = Ops.addMatmulInto(c.copy(), a, b, Transpose.B).toDoubleArray();
            for (int i = 0; i < expected.length; i++) {
                assertEquals(expected[i], got[i], 1e-12, "element " + i);
            }
        }
    }

    @Test
    void addMatmulIntoAColumnWindowLeavesTheOtherColumns() {
        long m = d(7);
        long k = d(5);
        long n = d(3);
        long wide = n + d(4) + 1;
        long column = wide - n - 1; // neither edge
        GradCheck.check("addMatmulInto window b^T", t -> Ops.addMatmulInto(t[0].scale(2), column, t[1], t[2], Transpose.B), rnd.nextLong(),
                Shape.of(m, wide), Shape.of(m, k), Shape.of(n, k));
        GradCheck.check("addMatmulInto window b", t -> Ops.addMatmulInto(t[0].scale(2), column, t[1], t[2], Transpose.NONE), rnd.nextLong(),
                Shape.of(m, wide), Shape.of(m, k), Shape.of(k, n));
        try (Scope s = Scope.open("value")) {
            Tensor c = Tensor.randn(Shape.of(m, wide), DType.F64, Device.CPU, 1);
            Tensor a = Tensor.randn(Shape.of(m, k), DType.F64, Device.CPU, 2);
            Tensor b = Tensor.randn(Shape.of(n, k), DType.F64, Device.CPU, 3);
            double[] product = a.matmul(b.transpose(0, 1)).toDoubleArray();
            double[] before = c.toDoubleArray();
            double[] got = Ops.addMatmulInto(c.copy(), column, a, b, Transpose.B).toDoubleArray();
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < wide; j++) {
                    boolean in = j >= column && j < column + n;
                    double expected = before[(int) (i * wide + j)] + (in ? product[(int) (i * n + j - column)] : 0);
                    assertEquals(expected, got[(int) (i * wide + j)], 1e-12, "element " + i + ", " + j);
                }
            }
            assertThrows(ShapeException.class, () -> Ops.addMatmulInto(c.copy(), wide - n + 1, a, b, Transpose.B));
        }
    }

    @Test
    void gegluOverAFusedGateUpProductIsGegluOfItsHalves() {
        long rows = d(5);
        long n = d(6);
        GradCheck.check("geglu fused", t -> Activations.geglu(t[0]), rnd.nextLong(), Shape.of(rows, 2 * n));
        // the halves read in place (row-strided views) give what contiguous copies give, value and gradient, bit for bit
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            try (Scope s = Scope.open("geglu halves")) {
                Tensor x = Tensor.randn(Shape.of(rows, 2 * n), dtype, Device.CPU, rnd.nextLong()).requiresGrad(true);
                Tensor g = Tensor.randn(Shape.of(rows, n), dtype, Device.CPU, rnd.nextLong());
                Tensor fused = Activations.geglu(x);
                fused.mul(g).sum(1).sum(0).backward();
                double[] fusedGrad = x.grad().toDoubleArray();
                Tensor x2 = x.detach().copy().requiresGrad(true);
                Tensor apart = Activations.geglu(x2.slice(1, 0, n).contiguous(), x2.slice(1, n, 2 * n).contiguous());
                apart.mul(g).sum(1).sum(0).backward();
                assertArrayEquals(apart.toDoubleArray(), fused.toDoubleArray(), dtype + " value");
                assertArrayEquals(x2.grad().toDoubleArray(), fusedGrad, dtype + " gradient");
                // the two-operand form takes the column slices in place too
                assertArrayEquals(apart.toDoubleArray(), Activations.geglu(x.detach().slice(1, 0, n), x.detach().slice(1, n, 2 * n)).toDoubleArray(),
                        dtype + " strided operands");
            }
        }
        try (Scope s = Scope.open("odd")) {
            assertThrows(ShapeException.class, () -> Activations.geglu(Tensor.zeros(Shape.of(2, 5), DType.F32, Device.CPU)));
        }
    }

    @Test
    void dropoutKeepsScaledElementsByASeededMask() {
        long seed = rnd.nextLong();
        GradCheck.check("dropout", t -> Dropout.apply(t[0], 0.3, seed), rnd.nextLong(), Shape.of(d(5), d(9)));
        try (Scope s = Scope.open("dropout")) {
            Tensor x = Tensor.full(Shape.of(20_000), 2.0, DType.F32, Device.CPU);
            double[] y = Dropout.apply(x, 0.25, 9).toDoubleArray();
            int dropped = 0;
            for (double v : y) {
                if (v == 0) {
                    dropped++;
                } else {
                    assertEquals(2.0 / 0.75, v, 1e-6);
                }
            }
            assertEquals(0.25, dropped / 20_000.0, 0.015, "fraction dropped");
            assertTrue(java.util.Arrays.equals(y, Dropout.apply(x, 0.25, 9).toDoubleArray()), "same seed, same mask");
        }
    }

    @Test
    void opsComposeIntoOneGraph() {
        // a miniature transformer block: the ops' gradients chain correctly through each other
        long t = 2 + rnd.nextInt(5);
        long dim = 2 * d(3);
        int[] pos = new int[(int) t];
        for (int i = 0; i < t; i++) {
            pos[i] = i;
        }
        GradCheck.check("block", u -> {
            Tensor x = u[0];
            Tensor h = RmsNorm.apply(x, u[1], 1e-6, RmsNorm.Scale.ONE_PLUS_WEIGHT);
            Tensor q = Rope.apply(h.reshape(1, 1, t, dim), ints(pos, Shape.of(t)), 10_000);
            Tensor a = Attention.causal(q, q, h.reshape(1, 1, t, dim), AttentionSpec.causal(0.5));
            Tensor m = Activations.geglu(a.reshape(t, dim), h);
            return Ops.add(x, m);
        }, rnd.nextLong(), Shape.of(t, dim), Shape.of(dim));
    }
}

package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tape itself and every basic op's gradient, by float64 finite differences on random shapes. */
class AutogradTest {
    private final Random rnd = Seeds.random();

    private long seed() {
        return rnd.nextLong();
    }

    private long d() {
        return 1 + rnd.nextInt(5);
    }

    @Test
    void backwardFreesConsumedGradientsButNeverTheCallersSeed() {
        try (Scope s = Scope.open("seed")) {
            Tensor x = Tensor.fromArray(new double[] {1, 2, 3, 4, 5, 6}, Shape.of(2, 3), DType.F64, Device.CPU).requiresGrad(true);
            // the reshape's backward hands a view of the seed to the product's node, which consumes it
            Tensor root = x.scale(2).reshape(-1);
            Tensor seed = Tensor.fromArray(new double[] {1, 1, 1, 1, 1, 1}, Shape.of(6), DType.F64, Device.CPU);
            root.backward(seed);
            assertFalse(seed.isClosed(), "the seed is the caller's");
            assertArrayEquals(new double[] {1, 1, 1, 1, 1, 1}, seed.toDoubleArray());
            assertArrayEquals(new double[] {2, 2, 2, 2, 2, 2}, x.grad().toDoubleArray());
        }
    }

    /**
     * A leaf's cast (LoRA's fp32 weights computed in bf16) hands its gradient over in the cast's dtype, and it is
     * converted as it accumulates: the first contribution becomes the gradient, the second adds to it, with the values
     * of casting each contribution and adding in fp32. A gradient sink and a non-leaf still receive the leaf's dtype.
     */
    @Test
    void aCastLeafsGradientAccumulatesConverted() {
        try (Scope s = Scope.open("cast leaf")) {
            Tensor w = Tensor.uniform(Shape.of(3, 5), DType.F32, Device.CPU, seed(), -1, 1).requiresGrad(true);
            Tensor x = Tensor.uniform(Shape.of(4, 5), DType.BF16, Device.CPU, seed(), -1, 1);
            Tensor half = x.scale(0.5);
            Tensor y = x.matmul(w.cast(DType.BF16).transpose(0, 1)).add(half.matmul(w.cast(DType.BF16).transpose(0, 1)));
            y.sum(0).sum(0).backward();
            Tensor ones = Tensor.full(Shape.of(4, 3), 1, DType.BF16, Device.CPU);
            Tensor expected = ones.transpose(0, 1).matmul(x).cast(DType.F32).add(ones.transpose(0, 1).matmul(half).cast(DType.F32));
            assertEquals(DType.F32, w.grad().dtype());
            assertArrayEquals(expected.toDoubleArray(), w.grad().toDoubleArray(), 0);

            Tensor v = Tensor.uniform(Shape.of(3, 5), DType.F32, Device.CPU, seed(), -1, 1).requiresGrad(true);
            java.util.List<DType> seen = new java.util.ArrayList<>();
            Autograd.streamGradient(v, (g, owned) -> seen.add(g.dtype()));
            x.matmul(v.cast(DType.BF16).transpose(0, 1)).sum(0).sum(0).backward();
            assertEquals(java.util.List.of(DType.F32), seen, "a sink takes the leaf's dtype");

            Tensor u = Tensor.uniform(Shape.of(3, 5), DType.F32, Device.CPU, seed(), -1, 1).requiresGrad(true);
            Tensor viaNonLeaf = x.matmul(u.scale(2).cast(DType.BF16).transpose(0, 1)).add(x.matmul(u.scale(2).cast(DType.BF16).transpose(0, 1)));
            viaNonLeaf.sum(0).sum(0).backward();
            Tensor dWOnce = ones.transpose(0, 1).matmul(x).cast(DType.F32).scale(2);
            assertArrayEquals(dWOnce.add(dWOnce).toDoubleArray(), u.grad().toDoubleArray(), 0);
        }
    }

    /**
     * {@link Autograd#gradientTarget}: a backward function sees the gradient already summed for a non-leaf input
     * (another consumer's contribution) and may add into it; a leaf, an input with no contribution yet, or a tensor
     * that is not the node's input gets none. Products use it (x read by two products: the second adds its dX into
     * the first's), with the values of two products and an add within a rounding.
     */
    @Test
    void backwardFunctionsMayAddIntoAnInputsPendingGradient() {
        try (Scope s = Scope.open("target")) {
            Tensor leaf = Tensor.uniform(Shape.of(4, 6), DType.F32, Device.CPU, seed(), -1, 1).requiresGrad(true);
            Tensor x = leaf.scale(2);
            java.util.List<Tensor> seen = new java.util.ArrayList<>();
            // probe(x) = 3 x; its backward asks for x's pending gradient (and a leaf's, and a stranger's) and adds into it
            Tensor probed = Autograd.op("probe", () -> x.scale(3), g -> {
                Tensor target = Autograd.gradientTarget(x);
                seen.add(target);
                seen.add(Autograd.gradientTarget(leaf));
                if (target == null) {
                    return new Tensor[] {g.scale(3)};
                }
                Ops.addInPlace(target, g.scale(3));
                return new Tensor[] {target};
            }, x);
            // x's other consumer also consumes probe's output, so its backward runs first: x's pending gradient is its
            Tensor y = x.mul(probed);
            y.sum(1).sum(0).backward();
            assertTrue(seen.get(0) != null, "x had a contribution pending when probe's backward ran");
            assertNull(seen.get(1), "a leaf gets no target");
            double[] lv = leaf.toDoubleArray();
            double[] expected = new double[lv.length];
            for (int i = 0; i < lv.length; i++) {
                expected[i] = 24 * lv[i]; // d/dleaf of 3 (2l)^2
            }
            assertArrayEquals(expected, leaf.grad().toDoubleArray(), 1e-6);

            // two nodes passing one incoming gradient on (add hands g to both) give two addends, not a sum added into
            Tensor leaf3 = Tensor.uniform(Shape.of(2, 3), DType.F32, Device.CPU, seed(), -1, 1).requiresGrad(true);
            Tensor x3 = leaf3.scale(1);
            Tensor id1 = Autograd.op("identity 1", () -> x3.scale(1), g -> new Tensor[] {g}, x3);
            Tensor id2 = Autograd.op("identity 2", () -> x3.scale(1), g -> new Tensor[] {g}, x3);
            id1.add(id2).sum(1).sum(0).backward();
            assertArrayEquals(new double[] {2, 2, 2, 2, 2, 2}, leaf3.grad().toDoubleArray(), 0);

            // no contribution pending yet: none
            seen.clear();
            Tensor leaf2 = Tensor.uniform(Shape.of(3), DType.F32, Device.CPU, seed(), -1, 1).requiresGrad(true);
            Tensor x2 = leaf2.scale(1);
            Autograd.op("probe alone", () -> x2.scale(3), g -> {
                seen.add(Autograd.gradientTarget(x2));
                return new Tensor[] {g.scale(3)};
            }, x2).sum(0).backward();
            assertNull(seen.get(0), "the first contribution has no sum to add into");
            assertNull(Autograd.gradientTarget(x2), "outside a backward function: none");

            // two products of one input: the second's input gradient goes into the first's
            Tensor a = Tensor.uniform(Shape.of(5, 8), DType.F32, Device.CPU, seed(), -1, 1).requiresGrad(true);
            Tensor w1 = Tensor.uniform(Shape.of(3, 8), DType.F32, Device.CPU, seed(), -1, 1);
            Tensor w2 = Tensor.uniform(Shape.of(6, 8), DType.F32, Device.CPU, seed(), -1, 1);
            Tensor h = a.scale(1);
            h.matmul(w1.transpose(0, 1)).sum(1).sum(0).add(Ops.matmul(h, w2, Transpose.B, 0.5).sum(1).sum(0)).backward();
            Tensor ref = Tensor.full(Shape.of(5, 3), 1, DType.F32, Device.CPU).matmul(w1)
                    .add(Tensor.full(Shape.of(5, 6), 0.5, DType.F32, Device.CPU).matmul(w2));
            assertArrayEquals(ref.toDoubleArray(), a.grad().toDoubleArray(), 1e-6);
        }
    }

    @Test
    void elementwiseOpsWithBroadcasting() {
        long a = d();
        long b = d();
        long c = d();
        Shape full = Shape.of(a, b, c);
        GradCheck.check("add", t -> t[0].add(t[1]), seed(), full, Shape.of(b, 1));
        GradCheck.check("sub", t -> t[0].sub(t[1]), seed(), Shape.of(c), full);
        GradCheck.check("mul", t -> t[0].mul(t[1]), seed(), full, Shape.of(a, 1, c));
        // divisors away from zero
        double[] den = new double[(int) (b * c)];
        for (int i = 0; i < den.length; i++) {
            den[i] = (rnd.nextBoolean() ? 1 : -1) * (0.5 + rnd.nextDouble());
        }
        GradCheck.check("div", t -> t[0].div(t[1]), new Shape[] {full, Shape.of(b, c)}, seed(), new double[][] {null, den});
        GradCheck.check("scale", t -> t[0].scale(-2.5), seed(), full);
        GradCheck.check("x * x", t -> t[0].mul(t[0]), seed(), full);
    }

    @Test
    void reductions() {
        Shape s = Shape.of(d(), d() + 1, d());
        for (int axis = 0; axis < 3; axis++) {
            int ax = axis;
            GradCheck.check("sum " + ax, t -> t[0].sum(ax), seed(), s);
            GradCheck.check("mean keep " + ax, t -> Ops.mean(t[0], ax, ReducedAxis.KEEP), seed(), s);
        }
    }

    @Test
    void matmulInEveryLayout() {
        long m = d();
        long k = d() + 1;
        long n = d();
        long batch = 1 + rnd.nextInt(3);
        for (Transpose tr : Transpose.values()) {
            boolean ta = tr.a();
            boolean tb = tr.b();
            Shape sa = ta ? Shape.of(batch, k, m) : Shape.of(batch, m, k);
            Shape sb = tb ? Shape.of(batch, n, k) : Shape.of(batch, k, n);
            Shape sb2 = tb ? Shape.of(n, k) : Shape.of(k, n);
            GradCheck.check("batched ta=" + ta + " tb=" + tb, t -> Ops.matmul(t[0], t[1], tr), seed(), sa, sb);
            GradCheck.check("shared b ta=" + ta + " tb=" + tb, t -> Ops.matmul(t[0], t[1], tr), seed(), sa, sb2);
        }
        GradCheck.check("2-D", t -> t[0].matmul(t[1]), seed(), Shape.of(m, k), Shape.of(k, n));
        GradCheck.check("transposed view operand", t -> t[0].matmul(t[1].transpose(0, 1)), seed(), Shape.of(m, k), Shape.of(n, k));
        // the scale on the product (the GEMM's alpha) reaches both gradients
        double scale = -0.3 + 2 * rnd.nextDouble();
        for (Transpose tr : Transpose.values()) {
            Shape sa = tr.a() ? Shape.of(batch, k, m) : Shape.of(batch, m, k);
            Shape sb2 = tr.b() ? Shape.of(n, k) : Shape.of(k, n);
            GradCheck.check("scaled by " + scale + " " + tr, t -> Ops.matmul(t[0], t[1], tr, scale), seed(), sa, sb2);
        }
    }

    @Test
    void aScaledProductIsTheScaledProduct() {
        try (Scope s = Scope.open("scaled matmul")) {
            Tensor a = Tensor.randn(Shape.of(2, 5, 7), DType.F64, Device.CPU, seed());
            Tensor b = Tensor.randn(Shape.of(3, 7), DType.F64, Device.CPU, seed());
            double[] expected = Ops.matmul(a, b, Transpose.B).scale(0.625).toDoubleArray();
            assertArrayEquals(expected, Ops.matmul(a, b, Transpose.B, 0.625).toDoubleArray(), 1e-12);
            assertThrows(IllegalArgumentException.class, () -> Ops.matmul(a, b, Transpose.B, Double.NaN));
        }
    }

    /** A two-output op (s = a + b, p = a * b) as one node: its backward gets both outputs' gradients, null for an unused one. */
    private static Tensor[] sumAndProduct(Tensor a, Tensor b, int[] calls, boolean[] sawNull) {
        return Autograd.opMulti("sum and product", () -> new Tensor[] {a.add(b), a.mul(b)}, g -> {
            calls[0]++;
            sawNull[0] |= g[0] == null || g[1] == null;
            Tensor ga = g[0];
            Tensor gb = g[0];
            if (g[1] != null) {
                ga = ga == null ? g[1].mul(b) : ga.add(g[1].mul(b));
                gb = gb == null ? g[1].mul(a) : gb.add(g[1].mul(a));
            }
            return new Tensor[] {ga, gb};
        }, a, b);
    }

    @Test
    void anOpWithSeveralOutputsIsOneNode() {
        Shape s = Shape.of(d(), d() + 1);
        int[] calls = new int[1];
        boolean[] sawNull = new boolean[1];
        // s used twice and p once: both gradients reach the one backward, s's summed first
        GradCheck.check("both outputs", t -> {
            Tensor[] o = sumAndProduct(t[0], t[1], calls, sawNull);
            return o[0].mul(o[1]).add(o[0]);
        }, seed(), s, s);
        GradCheck.check("the second output alone", t -> sumAndProduct(t[0], t[1], calls, sawNull)[1].mul(t[0]), seed(), s, s);
        GradCheck.check("the first output alone", t -> sumAndProduct(t[0], t[1], calls, sawNull)[0], seed(), s, s);
        assertTrue(sawNull[0], "an output no gradient reached comes to backward as null");
        try (Scope sc = Scope.open("multi")) {
            Tensor a = Tensor.randn(s, DType.F64, Device.CPU, seed()).requiresGrad(true);
            Tensor b = Tensor.randn(s, DType.F64, Device.CPU, seed()).requiresGrad(true);
            int[] once = new int[1];
            Tensor[] o = sumAndProduct(a, b, once, new boolean[1]);
            assertEquals(1, o[1].gradOutput());
            o[0].mul(o[1]).sum(0).sum(0).backward();
            assertEquals(1, once[0], "one backward call for both outputs");
            double[] av = a.toDoubleArray();
            double[] bv = b.toDoubleArray();
            double[] ga = a.grad().toDoubleArray();
            for (int i = 0; i < av.length; i++) { // d((a + b) a b)/da = a b + (a + b) b
                assertEquals(av[i] * bv[i] + (av[i] + bv[i]) * bv[i], ga[i], 1e-12);
            }
            // backward from an output that is not the first
            Tensor a2 = Tensor.randn(s, DType.F64, Device.CPU, seed()).requiresGrad(true);
            Tensor b2 = Tensor.randn(s, DType.F64, Device.CPU, seed()).requiresGrad(true);
            Tensor p = sumAndProduct(a2, b2, new int[1], new boolean[1])[1];
            p.backward(Tensor.full(s, 1.0, DType.F64, Device.CPU));
            assertArrayEquals(b2.toDoubleArray(), a2.grad().toDoubleArray(), 0);
        }
    }

    @Test
    void viewsAndCopies() {
        Shape s = Shape.of(d() + 1, d(), d() + 1);
        GradCheck.check("reshape", t -> t[0].reshape(-1).mul(t[0].reshape(-1)), seed(), s);
        GradCheck.check("transpose", t -> t[0].transpose(0, 2).contiguous(), seed(), s);
        GradCheck.check("permute", t -> t[0].permute(2, 0, 1).mul(t[1]), seed(), s, Shape.of(s.dim(2), s.dim(0), s.dim(1)));
        GradCheck.check("slice", t -> t[0].slice(0, 1, s.dim(0)).slice(2, 0, -1), seed(), s);
        GradCheck.check("unsqueeze/squeeze", t -> t[0].unsqueeze(1).mul(t[0].unsqueeze(1)).squeeze(1), seed(), s);
        GradCheck.check("expand", t -> t[0].expand(Shape.of(3, s.dim(0), 4, s.dim(2))).contiguous(),
                seed(), Shape.of(s.dim(0), 1, s.dim(2)));
        GradCheck.check("concat", t -> Ops.concat(1, t[0], t[1], t[0]), seed(), s, Shape.of(s.dim(0), 2, s.dim(2)));
        GradCheck.check("copy", t -> t[0].copy().mul(t[0]), seed(), s);
        // split into views, every piece used (one gradient assembled from three) and one left unused (its part zero)
        Shape wide = Shape.of(s.dim(0), 5, s.dim(2));
        GradCheck.check("split", t -> {
            Tensor[] p = Ops.split(t[0], 1, 2, 1, 2);
            return Ops.concat(1, p[2].mul(p[0]), p[1].scale(3));
        }, seed(), wide);
        GradCheck.check("split, a piece unused", t -> {
            Tensor[] p = Ops.split(t[0], -2, 2, 3);
            return p[0].mul(p[0]);
        }, seed(), wide);
    }

    @Test
    void splitGivesViewsOfItsInputAndRefusesSizesThatDoNotAddUp() {
        try (Scope scope = Scope.open("split")) {
            Tensor x = Tensor.randn(Shape.of(2, 6, 3), DType.F64, Device.CPU, 5);
            Tensor[] p = Ops.split(x, 1, 1, 0, 5);
            assertEquals(Shape.of(2, 1, 3), p[0].shape());
            assertEquals(Shape.of(2, 0, 3), p[1].shape());
            assertArrayEquals(x.slice(1, 1, 6).contiguous().toDoubleArray(), p[2].contiguous().toDoubleArray(), 0);
            Ops.copyInto(Tensor.full(p[0].shape(), 7.0, DType.F64, Device.CPU), p[0]);
            assertEquals(7.0, x.slice(1, 0, 1).contiguous().toDoubleArray()[0], 0, "a piece is a view of x");
            ShapeException e = assertThrows(ShapeException.class, () -> Ops.split(x, 1, 2, 3));
            assertTrue(e.getMessage().contains("must add up to 6"), e.getMessage());
        }
    }

    @Test
    void gradientsAccumulateAcrossBackwardCallsAndZeroGradResets() {
        try (Scope s = Scope.open("acc")) {
            Tensor x = Tensor.fromArray(new double[] {1, 2, 3}, Shape.of(3), DType.F64, Device.CPU).requiresGrad(true);
            x.mul(x).sum(0).backward();
            x.scale(3).sum(0).backward();
            assertArrayEquals(new double[] {5, 7, 9}, x.grad().toDoubleArray(), 0);
            x.zeroGrad();
            assertNull(x.grad());
            x.sum(0).backward();
            assertArrayEquals(new double[] {1, 1, 1}, x.grad().toDoubleArray(), 0);
        }
    }

    @Test
    void leafGradientsLiveInTheLeafsScopeAndBackwardLeavesNothingElse() {
        try (Scope params = Scope.open("params")) {
            Tensor w = Tensor.randn(Shape.of(8, 8), DType.F64, Device.CPU, 3).requiresGrad(true);
            long before = params.ownedBytes();
            try (Scope step = Scope.open("step")) {
                Tensor x = Tensor.randn(Shape.of(4, 8), DType.F64, Device.CPU, 4);
                long stepBefore = step.ownedBytes();
                Tensor loss = x.matmul(w).mul(x.matmul(w)).reshape(-1).sum(0);
                long afterForward = step.ownedBytes();
                loss.backward();
                assertEquals(afterForward, step.ownedBytes(), "backward allocates nothing that outlives it in the step scope");
                assertTrue(afterForward > stepBefore);
            }
            assertEquals(before + 8 * 8 * 8, params.ownedBytes(), "w.grad is in the parameters' scope");
            assertFalse(w.grad().isClosed());
        }
    }

    /**
     * A tensor read by many ops gets one gradient from each; their running sum must not keep every addend until
     * backward returns. On meta, y (one [n] F32 node output) feeds eight scales: without freeing, backward would hold
     * the eight contributions and seven partial sums at once (15 n floats); freed as they are summed, at most the
     * running sum, the new addend and their sum (plus the incoming gradient, one more) are live.
     */
    @Test
    void gradientContributionsAreFreedAsTheyAreSummed() {
        dev.jtune.engine.meta.MetaBackend meta = dev.jtune.engine.meta.MetaBackend.instance();
        long n = 1 << 16;
        try (Scope s = Scope.open("fan-out", MemoryCategory.ACTIVATIONS)) {
            Tensor w = Tensor.zeros(Shape.of(n), DType.F32, Device.META).requiresGrad(true);
            Tensor y = w.scale(2);
            Tensor sum = y.scale(1);
            for (int k = 2; k <= 8; k++) {
                sum = sum.add(y.scale(k));
            }
            Tensor loss = sum.sum(0);
            meta.resetPeaks();
            long before = meta.memoryStats().allocated(MemoryCategory.BACKWARD);
            loss.backward();
            long peak = meta.memoryStats().peak(MemoryCategory.BACKWARD) - before;
            assertTrue(peak <= 5 * n * 4 + (64 << 10), "backward's peak " + peak + " bytes, at most 5 of " + n * 4 + " bytes expected");
            assertTrue(w.grad() != null);
        }
    }

    @Test
    void noGradRecordsNothing() {
        try (Scope s = Scope.open("nograd")) {
            Tensor x = Tensor.randn(Shape.of(3), DType.F64, Device.CPU, 1).requiresGrad(true);
            Tensor y;
            try (Autograd.GradMode off = Autograd.noGrad()) {
                y = x.mul(x);
            }
            assertFalse(y.requiresGrad());
            assertNull(y.gradFn());
            assertTrue(x.mul(x).requiresGrad());
        }
    }

    @Test
    void checkpointGivesTheSameGradientsAndKeepsLessMemory() {
        long seed = seed();
        double[][] plain = gradientsOfTwoLayers(seed, false);
        double[][] checkpointed = gradientsOfTwoLayers(seed, true);
        for (int i = 0; i < plain.length; i++) {
            assertArrayEquals(plain[i], checkpointed[i], 0.0, "gradient " + i + " with and without checkpoint");
        }
    }

    /** A two-layer tanh-free MLP: x -> (x W1)^2 -> W2, optionally each layer under checkpoint. */
    private static double[][] gradientsOfTwoLayers(long seed, boolean checkpoint) {
        try (Scope s = Scope.open("mlp")) {
            Tensor x = Tensor.randn(Shape.of(5, 6), DType.F64, Device.CPU, seed).requiresGrad(true);
            Tensor w1 = Tensor.randn(Shape.of(6, 7), DType.F64, Device.CPU, seed + 1).requiresGrad(true);
            Tensor w2 = Tensor.randn(Shape.of(7, 3), DType.F64, Device.CPU, seed + 2).requiresGrad(true);
            java.util.function.Function<Tensor[], Tensor> layer1 = t -> {
                Tensor h = t[0].matmul(w1);
                return h.mul(h);
            };
            Tensor h = checkpoint ? Autograd.checkpoint(layer1, x) : layer1.apply(new Tensor[] {x});
            Tensor out = checkpoint ? Autograd.checkpoint(t -> t[0].matmul(w2), h) : h.matmul(w2);
            out.reshape(-1).sum(0).backward();
            return new double[][] {x.grad().toDoubleArray(), w1.grad().toDoubleArray(), w2.grad().toDoubleArray()};
        }
    }

    @Test
    void errorsSayWhatWentWrong() {
        try (Scope s = Scope.open("errors")) {
            Tensor plain = Tensor.randn(Shape.of(3), DType.F64, Device.CPU, 1);
            AutogradException e1 = assertThrows(AutogradException.class, () -> plain.sum(0).backward());
            assertTrue(e1.getMessage().contains("does not require grad"), e1.getMessage());

            Tensor x = Tensor.randn(Shape.of(3), DType.F64, Device.CPU, 2).requiresGrad(true);
            AutogradException e2 = assertThrows(AutogradException.class, () -> x.mul(x).backward());
            assertTrue(e2.getMessage().contains("not a scalar"), e2.getMessage());

            Tensor loss = x.mul(x).sum(0);
            loss.backward();
            AutogradException e3 = assertThrows(AutogradException.class, loss::backward);
            assertTrue(e3.getMessage().contains("already freed"), e3.getMessage());

            Tensor kept = x.mul(x).sum(0);
            kept.backward(null, Autograd.Graph.RETAIN);
            kept.backward(null, Autograd.Graph.FREE); // retained once: a second backward works
            AutogradException e4 = assertThrows(AutogradException.class, () -> x.mul(x).requiresGrad(false));
            assertTrue(e4.getMessage().contains("only leaves"), e4.getMessage());
            assertThrows(DTypeException.class, () -> Tensor.zeros(Shape.of(2), DType.I32, Device.CPU).requiresGrad(true));
            ShapeException e5 = assertThrows(ShapeException.class, () -> x.add(Tensor.zeros(Shape.of(4), DType.F64, Device.CPU)));
            assertTrue(e5.getMessage().contains("[3]") && e5.getMessage().contains("[4]") && e5.getMessage().contains("add"), e5.getMessage());
        }
    }
}

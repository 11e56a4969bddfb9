package dev.jtune.engine;

import dev.jtune.engine.nn.ComputeCopies;
import dev.jtune.testing.Seeds;
import dev.jtune.testing.SystemProperties;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Autograd#leafGradientTarget}: a 16-bit product's weight is a cast of an fp32 leaf (LoRA's A or B) whose
 * gradient is an attached buffer: the product's backward adds {@code g^T x} into that buffer itself, in fp32 (no 16-bit
 * gradient, no conversion). Checked against the fp32 product of the same 16-bit values, for a kept cast inside a
 * checkpoint and a plain one, with dropout's own weight-gradient product ({@link Ops#weightGradient}), and against
 * the path a leaf without an attached buffer still takes (the gradient rounded to 16 bits, then converted); and with
 * the cast made beforehand with other leaves' in one launch ({@link ComputeCopies}) and found by castKept. A leaf
 * whose listener redirects its gradient (ZeRO stage 2's bucket, no attached buffer) takes the same path, bit for bit,
 * its listener told of each contribution; so does one whose gradient streams to a sink (the host offload's), which
 * gets each contribution in fp32.
 */
class LeafGradientTargetTest {
    private final Random rnd = Seeds.random();

    enum Use { PLAIN_CAST, KEPT_IN_CHECKPOINT, WEIGHT_GRADIENT, PROVIDED_COPY }

    /**
     * Where w's gradient is held: an attached buffer, a listener's redirect (no attached buffer), a sink it streams to
     * (the host offload's: here one that sums the contributions), or w's own gradient.
     */
    enum Holder { ATTACHED, REDIRECTED, SUNK, NONE }

    /** w's and x's gradients; how many contributions w's listener was told of (REDIRECTED only). */
    record Run(double[] w, double[] x, int told) {
    }

    /**
     * w's and x's gradients after {@code passes} backward passes of sum(r * (x @ cast(w)^T)) on {@code device} (the
     * inputs drawn on the cpu, then moved).
     */
    static Run run(long seed, Use use, Holder holder, int passes, Device device) {
        try (Scope s = Scope.open("leaf gradient target")) {
            Tensor w = Tensor.uniform(Shape.of(6, 8), DType.F32, Device.CPU, seed, -1, 1).to(device).requiresGrad(true);
            if (holder == Holder.ATTACHED) {
                Autograd.attachGradient(w, Tensor.zeros(w.shape(), DType.F32, device));
            }
            Tensor bucket = holder == Holder.REDIRECTED ? Tensor.zeros(Shape.of(50), DType.F32, device) : null;
            int[] told = {0};
            Tensor streamed = holder == Holder.SUNK ? Tensor.zeros(w.shape(), DType.F32, device) : null;
            if (streamed != null) {
                Autograd.streamGradient(w, (contribution, owned) -> {
                    assertEquals(DType.F32, contribution.dtype(), "the sink gets the leaf's dtype");
                    Ops.addInPlace(streamed, contribution);
                    told[0]++;
                    if (owned) {
                        contribution.close();
                    }
                });
            }
            if (bucket != null) { // as ZeRO stage 2's bucket: w's place in a larger flat buffer, w holding no gradient
                Autograd.listenGradient(w, new Autograd.GradientListener() {
                    @Override
                    public Tensor redirect(Tensor leaf) {
                        return bucket.slice(0, 1, 49).reshape(6, 8);
                    }

                    @Override
                    public void added(Tensor leaf) {
                        told[0]++;
                    }
                });
            }
            Tensor x = Tensor.uniform(Shape.of(9, 8), DType.BF16, Device.CPU, seed + 1, -1, 1).to(device).requiresGrad(true);
            Tensor r = Tensor.uniform(Shape.of(9, 6), DType.F32, Device.CPU, seed + 2, -2, 2).to(device);
            // PROVIDED_COPY: w's bf16 copy made beside another weight's in one launch, found by castKept in the checkpoint's
            // first run and in its recomputation
            Tensor other = Tensor.uniform(Shape.of(3, 5), DType.F32, Device.CPU, seed + 3, -1, 1).to(device).requiresGrad(true);
            java.util.SequencedMap<String, Tensor> weights = new java.util.LinkedHashMap<>();
            weights.put("other", other);
            weights.put("w", w);
            ComputeCopies copies = use == Use.PROVIDED_COPY ? ComputeCopies.of(weights, DType.BF16) : null;
            Function<Tensor, Tensor> product = in -> switch (use) {
                case PLAIN_CAST -> Ops.matmul(in, w.cast(DType.BF16), Transpose.B);
                case KEPT_IN_CHECKPOINT -> Ops.matmul(in, Autograd.castKept(w, DType.BF16), Transpose.B);
                case PROVIDED_COPY -> {
                    Tensor c = Autograd.castKept(w, DType.BF16);
                    assertTrue(c.storage() == Autograd.castKept(other, DType.BF16).storage(), "the copies share one flat buffer");
                    yield Ops.matmul(in, c, Transpose.B);
                }
                case WEIGHT_GRADIENT -> {
                    Tensor c = Autograd.castKept(w, DType.BF16);
                    yield Autograd.op("product with its own weight gradient", () -> Ops.matmul(in, c, Transpose.B),
                            g -> new Tensor[] {Ops.matmul(g, c), Ops.weightGradient(g, in, c, 1.0)}, in, c);
                }
            };
            for (int p = 0; p < passes; p++) {
                try (Scope.Entered provided = copies == null ? null : copies.provide()) {
                    Tensor y = use == Use.PLAIN_CAST ? product.apply(x) : Autograd.checkpoint(in -> product.apply(in[0]), x);
                    y.cast(DType.F32).mul(r).sum(0).sum(0).backward();
                }
            }
            if (copies != null) {
                copies.close();
            }
            double[] wGrad = bucket != null ? bucket.slice(0, 1, 49).toDoubleArray()
                    : streamed != null ? streamed.toDoubleArray() : w.grad().toDoubleArray();
            if (bucket != null) {
                assertTrue(w.grad() == null, "a redirected leaf holds no gradient of its own");
                assertEquals(0.0, bucket.slice(0, 0, 1).toDoubleArray()[0], "nothing outside w's place in the bucket");
                assertEquals(0.0, bucket.slice(0, 49, 50).toDoubleArray()[0], "nothing outside w's place in the bucket");
            }
            return new Run(wGrad, x.grad().toDoubleArray(), told[0]);
        }
    }

    /** The fp32 product g^T x of the 16-bit values backward sees: g = r rounded to bf16 (the output's dtype). */
    static double[] reference(long seed) {
        try (Scope s = Scope.open("reference")) {
            Tensor x = Tensor.uniform(Shape.of(9, 8), DType.BF16, Device.CPU, seed + 1, -1, 1).cast(DType.F32);
            Tensor g = Tensor.uniform(Shape.of(9, 6), DType.F32, Device.CPU, seed + 2, -2, 2).cast(DType.BF16).cast(DType.F32);
            return Ops.matmul(g, x, Transpose.A).toDoubleArray();
        }
    }

    @Test
    void anAttachedBufferTakesTheProductsFp32GradientItself() {
        check(Device.CPU, 1e-5, rnd);
    }

    /**
     * A sink's fresh buffer from a product over no rows (an empty micro-batch) holds zeros, not what the memory held.
     * The cpu's new memory is zeroed, so only the GPU twin, with its allocations poisoned (NaN), tells a buffer left
     * unwritten apart.
     */
    @Test
    void anEmptyBatchHandsTheSinkZeros() {
        checkEmptyBatch(Device.CPU);
    }

    static void checkEmptyBatch(Device device) {
        SystemProperties.with(Autograd.LEAF_GRADIENT_TARGETS, "true", () -> {
            try (Scope s = Scope.open("empty batch")) {
                Tensor w = Tensor.uniform(Shape.of(6, 8), DType.F32, Device.CPU, 5, -1, 1).to(device).requiresGrad(true);
                java.util.List<double[]> taken = new java.util.ArrayList<>();
                Autograd.streamGradient(w, (contribution, owned) -> taken.add(contribution.toDoubleArray()));
                Tensor x = Tensor.zeros(Shape.of(0, 8), DType.BF16, device).requiresGrad(true);
                Tensor y = Ops.matmul(x, w.cast(DType.BF16), Transpose.B);
                y.backward(Tensor.zeros(y.shape(), y.dtype(), device));
                assertEquals(1, taken.size(), "one contribution on " + device);
                assertArrayEquals(new double[48], taken.getFirst(), 0, "the sink's contribution on " + device);
            }
        });
    }

    /**
     * On {@code device}: the buffer holds the fp32 product (within {@code tolerance}, relative above 1), two passes add
     * up, the buffer-less path is within half a bf16 ulp of it, and x's gradient is the buffer-less path's.
     */
    static void check(Device device, double tolerance, Random rnd) {
        // on by default; set, so a run that turns it off still checks it
        SystemProperties.with(Autograd.LEAF_GRADIENT_TARGETS, "true", () -> checkAll(device, tolerance, rnd));
    }

    private static void checkAll(Device device, double tolerance, Random rnd) {
        for (Use use : Use.values()) {
            long seed = rnd.nextLong();
            double[] expected = reference(seed);
            Run once = run(seed, use, Holder.ATTACHED, 1, device);
            Run twice = run(seed, use, Holder.ATTACHED, 2, device);
            Run unattached = run(seed, use, Holder.NONE, 1, device);
            Run redirected = run(seed, use, Holder.REDIRECTED, 2, device);
            assertArrayEquals(twice.w(), redirected.w(), 0, use + " (seed " + seed + "): a redirect takes the attached buffer's fp32 path");
            assertArrayEquals(twice.x(), redirected.x(), 0, use + " (seed " + seed + "): x's gradient with a redirect");
            assertEquals(2, redirected.told(), use + " (seed " + seed + "): the listener is told of each pass's contribution");
            Run sunk = run(seed, use, Holder.SUNK, 2, device);
            assertArrayEquals(twice.w(), sunk.w(), 0, use + " (seed " + seed + "): a sink gets the attached buffer's fp32 values");
            assertArrayEquals(twice.x(), sunk.x(), 0, use + " (seed " + seed + "): x's gradient with a sink");
            assertEquals(2, sunk.told(), use + " (seed " + seed + "): the sink takes one contribution a pass");
            double worstRounding = 0;
            for (int i = 0; i < expected.length; i++) {
                double bound = tolerance * Math.max(1, Math.abs(expected[i]));
                assertEquals(expected[i], once.w()[i], bound, use + " (seed " + seed + "): w's gradient " + i);
                assertEquals(2 * once.w()[i], twice.w()[i], 2 * bound, use + " (seed " + seed + "): two passes add up " + i);
                // the buffer-less path rounds the gradient to bf16 before converting it: within half a bf16 ulp
                double d = Math.abs(unattached.w()[i] - expected[i]);
                assertTrue(d <= Math.ulp((float) expected[i]) * 65536 * 0.5 + bound, use + " (seed " + seed + "): unattached " + i + " off by " + d);
                worstRounding = Math.max(worstRounding, d);
            }
            assertArrayEquals(unattached.x(), once.x(), 0, use + " (seed " + seed + "): x's gradient does not change");
            System.out.printf("%s on %s (seed %d): fp32 gradient in the buffer; without it, bf16 rounding up to %.2e%n", use, device, seed,
                    worstRounding);
        }
    }
}

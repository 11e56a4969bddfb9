package dev.jtune.engine.ops;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.GradCheck;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.testing.Seeds;
import dev.jtune.testing.SystemProperties;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@link CrossEntropy#linear}'s backward one block (token chunk by vocabulary slice) at a time, against the one pass
 * over token chunks it replaced when the weight needs a gradient (one slice, the whole vocabulary: what
 * {@code sliceColumns = V} runs), and {@link CrossEntropy.Blocks#choose}'s default blocking and its memory on the meta
 * device.
 */
class LinearCrossEntropyBlocksTest {
    private static final double U32 = 0x1p-24; // fp32's unit roundoff (round to nearest, 24-bit significand)
    private static final double U_BF16 = 0x1p-8; // bf16's (8-bit significand)
    private static final double U64 = 0x1p-53;

    private final Random rnd = Seeds.random();

    /** Which inputs require grad: both, or one of them (LoRA's case is hidden only). */
    private enum Wanted {
        BOTH, HIDDEN, WEIGHT
    }

    private record Problem(int n, int vocab, int hid, double[] h, double[] w, int[] labels, double softcap, Wanted wanted) {
    }

    /** The gradients of the mean loss (null where not wanted). */
    private record Grads(double[] h, double[] w) {
    }

    /** Random sizes that are rarely multiples of the blocks; inputs already rounded to {@code dtype}. */
    private Problem problem(DType dtype) {
        int n = 1 + rnd.nextInt(50);
        int vocab = 2 + rnd.nextInt(150);
        int hid = 1 + rnd.nextInt(12);
        double[] h = new double[n * hid];
        double[] w = new double[vocab * hid];
        for (int i = 0; i < h.length; i++) {
            h[i] = round(dtype, 2 * (2 * rnd.nextDouble() - 1));
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = round(dtype, 2 * rnd.nextDouble() - 1);
        }
        int[] labels = RandomLabels.oneCounted(rnd, n, vocab);
        double softcap = rnd.nextBoolean() ? 0 : 1 + 4 * rnd.nextDouble();
        return new Problem(n, vocab, hid, h, w, labels, softcap, Wanted.values()[rnd.nextInt(3)]);
    }

    private static double round(DType dtype, double x) {
        try (Scope s = Scope.open("round")) {
            return Tensor.fromArray(new double[] {x}, Shape.of(1), dtype, Device.CPU).item();
        }
    }

    private static Grads grads(Problem p, DType dtype, int chunkRows, long sliceColumns) {
        try (Scope s = Scope.open("linear cross-entropy")) {
            Tensor h = Tensor.fromArray(p.h, Shape.of(p.n, p.hid), dtype, Device.CPU).requiresGrad(p.wanted != Wanted.WEIGHT);
            Tensor w = Tensor.fromArray(p.w, Shape.of(p.vocab, p.hid), dtype, Device.CPU).requiresGrad(p.wanted != Wanted.HIDDEN);
            Tensor labels = Tensor.fromArray(p.labels, Shape.of(p.n), DType.I32, Device.CPU);
            CrossEntropy.linear(h, w, labels, chunkRows, sliceColumns, 0, p.softcap).backward();
            return new Grads(h.requiresGrad() ? h.grad().toDoubleArray() : null, w.requiresGrad() ? w.grad().toDoubleArray() : null);
        }
    }

    /**
     * What the rounding analysis needs from the exact (double) computation: for every gradient element the sum of the
     * magnitudes of its terms, {@code bh[r, j] = scale * sum_v (p[r, v] + [v == y_r]) |w[v, j]|} and
     * {@code bw[v, j] = scale * sum_r (p[r, v] + [v == y_r]) |h[r, j]|} over counted rows, with p the softmax of the
     * (capped) logits; |dlogits| is at most scale * (p + one-hot) since the cap's derivative is at most 1. And
     * {@code delta}, how far above that the kernels' dlogits can be: p comes from fp32 logits (the matmul's rounding,
     * and the cap's, up to 2u|z|) and an fp32 lse (u|lse| plus those), so exp(x - lse) is within exp(u (4 max|z| +
     * max|lse|)) of the exact p; the scale, the gradient and the cap's product each round once more (u each).
     */
    private record Magnitudes(double[] bh, double[] bw, double delta) {
        static Magnitudes of(Problem p, double u) {
            int n = p.n;
            int vocab = p.vocab;
            double[][] prob = new double[n][vocab];
            double maxZ = 0;
            double maxLse = 0;
            int count = 0;
            for (int r = 0; r < n; r++) {
                double[] z = new double[vocab];
                double max = Double.NEGATIVE_INFINITY;
                for (int v = 0; v < vocab; v++) {
                    double dot = 0;
                    for (int j = 0; j < p.hid; j++) {
                        dot += p.h[r * p.hid + j] * p.w[v * p.hid + j];
                    }
                    maxZ = Math.max(maxZ, Math.abs(dot));
                    z[v] = p.softcap > 0 ? p.softcap * Math.tanh(dot / p.softcap) : dot;
                    max = Math.max(max, z[v]);
                }
                double sum = 0;
                for (int v = 0; v < vocab; v++) {
                    sum += Math.exp(z[v] - max);
                }
                double lse = max + Math.log(sum);
                maxLse = Math.max(maxLse, Math.abs(lse));
                for (int v = 0; v < vocab; v++) {
                    prob[r][v] = Math.exp(z[v] - lse);
                }
                count += p.labels[r] != CrossEntropy.IGNORE_INDEX ? 1 : 0;
            }
            double scale = 1.0 / count;
            double[] bh = new double[n * p.hid];
            double[] bw = new double[vocab * p.hid];
            for (int r = 0; r < n; r++) {
                if (p.labels[r] == CrossEntropy.IGNORE_INDEX) {
                    continue;
                }
                for (int v = 0; v < vocab; v++) {
                    double d = scale * (prob[r][v] + (v == p.labels[r] ? 1 : 0));
                    for (int j = 0; j < p.hid; j++) {
                        bh[r * p.hid + j] += d * Math.abs(p.w[v * p.hid + j]);
                        bw[v * p.hid + j] += d * Math.abs(p.h[r * p.hid + j]);
                    }
                }
            }
            // + u in the exponent for the O(u^2) terms, + 2^-50 for double's exp
            double delta = Math.exp(u * (4 * maxZ + maxLse + 1)) * Math.pow(1 + u, 3) - 1 + 0x1p-50;
            return new Magnitudes(bh, bw, delta);
        }
    }

    /**
     * F32: the logits of every block are the one pass's, element for element (each is one dot product rounded once), so
     * are lse, the scale and dlogits; only the sums differ. Each gradient element is a chain of fp32 accumulations
     * acc = fl(acc + t) of partial products t that the cpu matmul computes in double (each within (K - 1) 2^-53 of its
     * terms' magnitudes, K terms, and the addition to acc rounds in double once more): hidden's over the slices (s
     * roundings; the one pass writes it once), the weight's over the token chunks (m roundings each way). A chain of m
     * fp32 roundings is within m u (1 + u)^m <= m u (1 + 2 m u) of the magnitudes A of its exact sum, and the double
     * roundings of both chains add at most 2 (terms + pieces) 2^-53 A <= 4 max(N, V) 2^-53 A; A <= (1 + delta) B. So
     * |sliced - one pass| <= (k u (1 + 2 k u) + 4 max(N, V) 2^-53) (1 + delta) B, k the roundings of both chains.
     */
    @Test
    void slicedBackwardEqualsTheOnePassBackwardInF32() {
        for (int trial = 0; trial < 60; trial++) {
            Problem p = problem(DType.F32);
            int chunk = 1 + rnd.nextInt(p.n + 2);
            long columns = 1 + rnd.nextInt(Math.max(1, p.vocab - 1));
            int onePassChunk = rnd.nextBoolean() ? 0 : 1 + rnd.nextInt(p.n + 2);
            Grads sliced = grads(p, DType.F32, chunk, columns);
            Grads onePass = grads(p, DType.F32, onePassChunk, p.vocab);
            Magnitudes m = Magnitudes.of(p, U32);
            long slices = ceilDiv(p.vocab, columns);
            long chunks = ceilDiv(p.n, chunk);
            long onePassChunks = onePassChunk > 0 ? ceilDiv(p.n, onePassChunk) : 1; // the default: 256 MiB, all N here
            int terms = Math.max(p.n, p.vocab);
            String what = "trial " + trial + ": N " + p.n + ", V " + p.vocab + ", H " + p.hid + ", softcap " + p.softcap + ", "
                    + p.wanted + ", blocks " + chunk + " x " + columns + " against one pass in chunks of " + onePassChunk;
            if (sliced.h != null) {
                compare(what + ", dL/dhidden", onePass.h, sliced.h, m.bh, chainBound(slices + 1, terms, m.delta), 0);
            }
            if (sliced.w != null) {
                compare(what + ", dL/dweight", onePass.w, sliced.w, m.bw, chainBound(chunks + onePassChunks, terms, m.delta), 0);
            }
        }
    }

    /**
     * BF16: the blocks' accumulators are fp32 and each result rounds once to bf16 (the weight's slice by slice, hidden's
     * at the end), where the one pass rounded the weight's fp32 sum once and wrote hidden's products straight to bf16.
     * With a = the fp32 (or double) sum each rounds, |round(a) - a| <= u_bf16 |a| <= u_bf16 / (1 - u_bf16) |round(a)|, so
     * |sliced - one pass| <= u_bf16 / (1 - u_bf16) (|sliced| + |one pass|) + the F32 bound of the sums (dlogits are
     * again equal element for element; delta uses bf16's u for the logits).
     */
    @Test
    void slicedBackwardEqualsTheOnePassBackwardInBf16() {
        for (int trial = 0; trial < 30; trial++) {
            Problem p = problem(DType.BF16);
            int chunk = 1 + rnd.nextInt(p.n + 2);
            long columns = 1 + rnd.nextInt(Math.max(1, p.vocab - 1));
            Grads sliced = grads(p, DType.BF16, chunk, columns);
            Grads onePass = grads(p, DType.BF16, chunk, p.vocab);
            Magnitudes m = Magnitudes.of(p, U_BF16);
            long slices = ceilDiv(p.vocab, columns);
            long chunks = ceilDiv(p.n, chunk);
            int terms = Math.max(p.n, p.vocab);
            double rounding = U_BF16 / (1 - U_BF16);
            String what = "trial " + trial + ": N " + p.n + ", V " + p.vocab + ", H " + p.hid + ", softcap " + p.softcap + ", "
                    + p.wanted + ", blocks " + chunk + " x " + columns;
            if (sliced.h != null) {
                compare(what + ", dL/dhidden", onePass.h, sliced.h, m.bh, chainBound(slices + 1, terms, m.delta), rounding);
            }
            if (sliced.w != null) {
                compare(what + ", dL/dweight", onePass.w, sliced.w, m.bw, chainBound(2 * chunks, terms, m.delta), rounding);
            }
        }
    }

    /** The sliced backward is the gradient: float64 finite differences through many blocks, capped or not. */
    @Test
    void slicedBackwardIsTheGradient() {
        for (int trial = 0; trial < 3; trial++) {
            int n = 2 + rnd.nextInt(9);
            int vocab = 3 + rnd.nextInt(12);
            int[] lab = RandomLabels.firstCounted(rnd, n, vocab);
            int chunk = 1 + rnd.nextInt(n);
            long columns = 1 + rnd.nextInt(vocab - 1);
            double softcap = trial == 0 ? 0 : 2.5;
            GradCheck.check("linear CE blocks " + chunk + " x " + columns + " softcap " + softcap,
                    t -> CrossEntropy.linear(t[0].scale(3), t[1], Tensor.fromArray(lab, Shape.of(n), DType.I32, Device.CPU), chunk, columns, 0,
                            softcap), rnd.nextLong(), Shape.of(n, 4), Shape.of(vocab, 4));
        }
    }

    /** k fp32 roundings in all, of partial sums computed in double over {@code terms} terms in all (see above). */
    private static double chainBound(long roundings, int terms, double delta) {
        return (roundings * U32 * (1 + 2 * roundings * U32) + 4 * terms * U64) * (1 + delta);
    }

    /** {@code |actual - expected| <= relative * magnitude + rounding * (|actual| + |expected|)} for every element. */
    private static void compare(String what, double[] expected, double[] actual, double[] magnitude, double relative, double rounding) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            double bound = relative * magnitude[i] + rounding * (Math.abs(actual[i]) + Math.abs(expected[i]));
            double err = Math.abs(actual[i] - expected[i]);
            if (!(err <= bound)) {
                fail(what + ": element " + i + " one pass " + expected[i] + ", sliced " + actual[i] + " (error " + err + " > bound "
                        + bound + ", sum of the terms' magnitudes " + magnitude[i] + ")");
            }
        }
    }

    private static long ceilDiv(long a, long b) {
        return Math.ceilDiv(a, b);
    }

    // ------------------------------------------------------------------ the default blocks

    @Test
    void defaultBlocksOfGemma3() {
        // 270M at 8K: slices of 16,384 (40 MiB of fp32 gradient) by all 8,192 tokens: 256 MiB of bf16 logits a block
        assertEquals(new CrossEntropy.Blocks(8192, 16_384), CrossEntropy.Blocks.choose(8192, 262_144, 640, DType.BF16, true, 0, 0));
        // 1B at 8K: the 64 MiB accumulator allows 14,563 rows of 1,152: 19 slices of 13,824 (61 MiB) by all tokens
        assertEquals(new CrossEntropy.Blocks(8192, 13_824), CrossEntropy.Blocks.choose(8192, 262_144, 1152, DType.BF16, true, 0, 0));
        // without the weight's gradient: one slice and forward's chunks (512 tokens of 262,144 bf16 logits), as before
        assertEquals(new CrossEntropy.Blocks(512, 262_144), CrossEntropy.Blocks.choose(8192, 262_144, 640, DType.BF16, false, 0, 0));
        // the GPU tests' 40,000 x 640 head at 4,096 tokens: bf16 two slices, F32 (4-byte logits) three
        assertEquals(new CrossEntropy.Blocks(4096, 20_224), CrossEntropy.Blocks.choose(4096, 40_000, 640, DType.BF16, true, 0, 0));
        assertEquals(new CrossEntropy.Blocks(4096, 13_568), CrossEntropy.Blocks.choose(4096, 40_000, 640, DType.F32, true, 0, 0));
        // a small problem is one block
        assertEquals(new CrossEntropy.Blocks(67_108, 1000), CrossEntropy.Blocks.choose(37, 1000, 64, DType.F32, true, 0, 0));
    }

    @Test
    void defaultBlocksKeepTheirBudgets() {
        for (long n : new long[] {1, 100, 1000, 4096, 8192, 10_000, 32_768, 131_072}) {
            for (long vocab : new long[] {2, 1000, 32_000, 100_000, 262_144, 262_208}) {
                for (long hid : new long[] {64, 640, 1152, 2560, 5376}) {
                    for (DType dtype : new DType[] {DType.BF16, DType.F32}) {
                        String what = "N " + n + " V " + vocab + " H " + hid + " " + dtype;
                        CrossEntropy.Blocks b = CrossEntropy.Blocks.choose(n, vocab, hid, dtype, true, 0, 0);
                        long element = dtype.bytesFor(1);
                        long slices = b.slices(vocab);
                        if (slices > 1) {
                            assertEquals(0, b.columns() % 256, what + ": " + b);
                            assertTrue(b.columns() * hid * 4 <= CrossEntropy.SLICE_GRADIENT_BYTES + 256 * hid * 4, what + ": " + b);
                            assertTrue(b.rows() * b.columns() * element <= CrossEntropy.CHUNK_BYTES + 16 * b.columns() * element, what + ": " + b);
                            // balanced pieces of a target t over V > t are at least t V / (V + t) > t / 2 wide
                            assertTrue(2 * b.columns() >= Math.min(CrossEntropy.MIN_SLICE_COLUMNS, CrossEntropy.SLICE_GRADIENT_BYTES / (hid * 4)),
                                    what + ": " + b);
                            // and the last is short of the others by at most the 256-column rounding of each
                            assertTrue(vocab - (slices - 1) * b.columns() >= b.columns() - 256 * slices, what + ": " + b);
                        } else {
                            assertEquals(vocab, b.columns(), what);
                        }
                        long chunks = Math.ceilDiv(n, b.rows());
                        assertTrue(chunks == 1 || b.rows() >= 16, what + ": " + b);
                        CrossEntropy.Blocks lora = CrossEntropy.Blocks.choose(n, vocab, hid, dtype, false, 0, 0);
                        assertEquals(vocab, lora.columns(), what + ": one slice without the weight's gradient");
                        assertEquals(Math.max(16, CrossEntropy.CHUNK_BYTES / (vocab * element)), lora.rows(), what + ": forward's chunks");
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ memory, on the meta device

    /**
     * Gemma 3 270M's LM head at 8K tokens on the meta device (which runs this code): backward holds the bf16 weight
     * gradient it returns, one slice's fp32 accumulator, hidden's fp32 accumulator and one block of logits, and never
     * an fp32 [V, H]. Without the weight's gradient it holds hidden's gradient only (made in forward), or with the
     * recomputing backward that gradient and one chunk.
     */
    @Test
    void backwardHoldsOneSliceOfFp32WeightGradient() {
        long n = 8192;
        long vocab = 262_144;
        long hid = 640;
        long both = backwardPeak(n, vocab, hid, true);
        long blockBytes = 8192L * 16_384 * 2;
        long expected = vocab * hid * 2 + 16_384 * hid * 4 + n * hid * 4 + blockBytes;
        assertTrue(both >= expected && both <= expected + (64 << 10), "backward's peak " + both + ", expected " + expected + " plus scalars");
        assertTrue(both < vocab * hid * 4, "less than one fp32 [V, H] alone");
        long hiddenOnly = backwardPeak(n, vocab, hid, false);
        long expectedHiddenOnly = n * hid * 2; // the gradient made in forward, times the incoming gradient: no logits
        assertTrue(hiddenOnly >= expectedHiddenOnly && hiddenOnly <= expectedHiddenOnly + (64 << 10),
                "hidden only: backward's peak " + hiddenOnly + ", expected " + expectedHiddenOnly + " plus scalars");
        long recomputing = SystemProperties.with(CrossEntropy.GRADIENT_IN_FORWARD, "false", () -> backwardPeak(n, vocab, hid, false));
        long expectedRecomputing = n * hid * 2 + 512 * vocab * 2; // hidden's gradient and one chunk of logits
        assertTrue(recomputing >= expectedRecomputing && recomputing <= expectedRecomputing + (64 << 10),
                "hidden only, recomputing: backward's peak " + recomputing + ", expected " + expectedRecomputing + " plus scalars");
    }

    private static long backwardPeak(long n, long vocab, long hid, boolean weightGradient) {
        MetaBackend meta = MetaBackend.instance();
        try (Scope s = Scope.open("lm head", MemoryCategory.ACTIVATIONS)) {
            Tensor h = Tensor.empty(Shape.of(n, hid), DType.BF16, Device.META).requiresGrad(true);
            Tensor w = Tensor.empty(Shape.of(vocab, hid), DType.BF16, Device.META).requiresGrad(weightGradient);
            Tensor labels = Tensor.zeros(Shape.of(n), DType.I32, Device.META);
            Tensor loss = CrossEntropy.linear(h, w, labels, 0, 0);
            meta.resetPeaks();
            MemoryStats before = meta.memoryStats();
            loss.backward();
            MemoryStats after = meta.memoryStats();
            return after.peak(MemoryCategory.BACKWARD) - before.allocated(MemoryCategory.BACKWARD);
        }
    }
}

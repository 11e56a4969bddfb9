package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.Attention;
import dev.jtune.engine.ops.AttentionMask;
import dev.jtune.engine.ops.AttentionSpec;
import dev.jtune.engine.ops.Softmax;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Attention over packed rows ({@link AttentionMask}) on the cpu, both paths (the blocked op, and the fused reference
 * through {@code jtune.cpu.fusedAttention}), in F64: a row of several samples gives, sample by sample, the output and
 * the gradients of each sample run alone (causal, and with a window shorter than a sample); padding (segment -1) gets
 * output and gradients 0; a bidirectional group equals attention under a directly built mask.
 *
 * <p>Error analysis (F64, both sides in double): the packed and the separate runs compute the same sums over the
 * same visible terms, differing only in how the sums are grouped (score blocks of other widths; masked terms that
 * add an exact 0). Every output and gradient element is a sum over at most T keys of products of at most four inputs
 * (q, k, v, the output gradient), with softmax weights in [0, 1] and scale <= 1, each product a dot product of D terms;
 * a regrouped sum of n terms differs by at most {@code n u sum|terms|} (u = 2^-53) and an error e in a score
 * changes its weight by the factor exp(e). With m the largest |input| every |term| sum is at most
 * {@code T D m^4 + T D m^2} per element, so elements may differ by {@code 4 (T + D) u (T D m^4 + T D m^2)}: 1e-8 and
 * below for these sizes, where a key of another sample leaking in moves an output by O(1e-1).
 */
class CpuPackedAttentionTest {
    private static final Device CPU = Device.CPU;
    private static final double U = 0x1p-53;

    /** A packed layout: per batch row, the segment lengths in order, then padding to T. */
    private record Layout(int t, int[][] lengths) {
        int[] segments() {
            int[] s = new int[lengths.length * t];
            Arrays.fill(s, -1);
            for (int b = 0; b < lengths.length; b++) {
                int at = 0;
                for (int i = 0; i < lengths[b].length; i++) {
                    Arrays.fill(s, b * t + at, b * t + at + lengths[b][i], i);
                    at += lengths[b][i];
                }
            }
            return s;
        }

        static Layout random(Random rnd, int batch, int t) {
            int[][] lengths = new int[batch][];
            for (int b = 0; b < batch; b++) {
                List<Integer> l = new ArrayList<>();
                int left = t - rnd.nextInt(4); // up to 3 tokens of padding
                while (left > 0) {
                    int n = Math.min(left, 1 + rnd.nextInt(Math.max(1, t / 2)));
                    l.add(n);
                    left -= n;
                }
                lengths[b] = l.stream().mapToInt(Integer::intValue).toArray();
            }
            return new Layout(t, lengths);
        }
    }

    @Test
    void aPackedRowEqualsItsSamplesRunAloneCausalAndWindowed() {
        long seed = Seeds.seed();
        System.out.println("CpuPackedAttentionTest seed " + seed);
        Random rnd = new Random(seed);
        for (boolean fusedPath : new boolean[] {false, true}) {
            for (long window : new long[] {0, 3}) {
                int b = 2;
                int hq = 4;
                int hkv = 2;
                int t = 20 + rnd.nextInt(20);
                int d = 8;
                Layout layout = Layout.random(rnd, b, t);
                String what = (fusedPath ? "fused" : "blocked") + " window " + window + " layout " + Arrays.deepToString(layout.lengths());
                try (Scope s = Scope.open("case")) {
                    Shape qs = Shape.of(b, hq, t, d);
                    Shape kvs = Shape.of(b, hkv, t, d);
                    AttentionSpec spec = new AttentionSpec(window, 1 / Math.sqrt(d), 1 + rnd.nextInt(9));
                    Tensor q = Tensor.randn(qs, DType.F64, CPU, rnd.nextLong()).requiresGrad(true);
                    Tensor k = Tensor.randn(kvs, DType.F64, CPU, rnd.nextLong()).requiresGrad(true);
                    Tensor v = Tensor.randn(kvs, DType.F64, CPU, rnd.nextLong()).requiresGrad(true);
                    Tensor g = Tensor.randn(qs, DType.F64, CPU, rnd.nextLong());
                    AttentionMask mask = AttentionMask.segments(Tensor.fromArray(layout.segments(), Shape.of(b, t), DType.I32, CPU));
                    Tensor out = withFusedPath(fusedPath, () -> {
                        Tensor o = Attention.causal(q, k, v, spec, mask);
                        o.backward(g);
                        return o;
                    });
                    double[] packedOut = out.toDoubleArray();
                    double[] packedGq = q.grad().toDoubleArray();
                    double[] packedGk = k.grad().toDoubleArray();
                    double[] packedGv = v.grad().toDoubleArray();
                    double m = maxAbs(q, k, v, g);
                    double tol = 4 * (t + d) * U * ((double) t * d * Math.pow(m, 4) + (double) t * d * m * m);
                    double[] expectOut = new double[packedOut.length];
                    double[] expectGq = new double[packedGq.length];
                    double[] expectGk = new double[packedGk.length];
                    double[] expectGv = new double[packedGv.length];
                    for (int row = 0; row < b; row++) {
                        int at = 0;
                        for (int len : layout.lengths()[row]) {
                            separately(q, k, v, g, spec, row, at, at + len, expectOut, expectGq, expectGk, expectGv);
                            at += len;
                        }
                    }
                    // padding's entries stay 0 in the expectation: output and gradients 0 there
                    assertClose(expectOut, packedOut, tol, what + " out");
                    assertClose(expectGq, packedGq, tol, what + " dq");
                    assertClose(expectGk, packedGk, tol, what + " dk");
                    assertClose(expectGv, packedGv, tol, what + " dv");
                }
            }
        }
    }

    /** Runs tokens [from, to) of batch row {@code row} alone (no mask) and writes its output and gradients into place. */
    private static void separately(Tensor q, Tensor k, Tensor v, Tensor g, AttentionSpec spec, int row, int from, int to,
                                   double[] out, double[] gq, double[] gk, double[] gv) {
        try (Scope s = Scope.open("sample")) {
            Tensor qs = part(q, row, from, to).requiresGrad(true);
            Tensor ks = part(k, row, from, to).requiresGrad(true);
            Tensor vs = part(v, row, from, to).requiresGrad(true);
            Tensor o = Attention.causal(qs, ks, vs, spec);
            o.backward(part(g, row, from, to));
            place(o, q, row, from, out);
            place(qs.grad(), q, row, from, gq);
            place(ks.grad(), k, row, from, gk);
            place(vs.grad(), v, row, from, gv);
        }
    }

    /** Tokens [from, to) of batch row {@code row} of a [B, H, T, D] tensor, as a fresh [1, H, to - from, D] leaf. */
    private static Tensor part(Tensor x, int row, int from, int to) {
        return x.detach().slice(0, row, row + 1).slice(2, from, to).contiguous().copy();
    }

    /** Writes a [1, H, n, D] part back at tokens [from, from + n) of batch row {@code row} of {@code like}'s layout. */
    private static void place(Tensor part, Tensor like, int row, int from, double[] into) {
        double[] p = part.toDoubleArray();
        long h = like.dim(1);
        long t = like.dim(2);
        long d = like.dim(3);
        long n = part.dim(2);
        for (long hi = 0; hi < h; hi++) {
            for (long i = 0; i < n; i++) {
                System.arraycopy(p, (int) ((hi * n + i) * d), into, (int) ((((row * h) + hi) * t + from + i) * d), (int) d);
            }
        }
    }

    /**
     * Bidirectional groups: two samples, the first with a block of 5 tokens (group 0) in its middle and the second
     * with one of 4 (group 1, a distinct id) and one of 3 (group 2); the same within a sliding window of 2 (a group
     * sees all of itself whatever the window). Against attention under the directly built mask (a -inf bias on the
     * scores, softmax, times v), forward and the three gradients, both paths. Same error analysis.
     */
    @Test
    void aBidirectionalGroupSeesItselfBothWaysWithinItsSample() {
        long seed = Seeds.seed();
        System.out.println("CpuPackedAttentionTest groups seed " + seed);
        Random rnd = new Random(seed);
        int t = 26;
        int d = 8;
        int h = 2;
        int[] segments = new int[t];
        int[] groups = new int[t];
        Arrays.fill(groups, -1);
        Arrays.fill(segments, 0, 12, 0);
        Arrays.fill(segments, 12, 25, 1);
        segments[25] = -1; // padding
        Arrays.fill(groups, 3, 8, 0);
        Arrays.fill(groups, 14, 18, 1);
        Arrays.fill(groups, 20, 23, 2);
        for (boolean fusedPath : new boolean[] {false, true}) {
            for (long window : new long[] {0, 2}) {
                String what = (fusedPath ? "fused" : "blocked") + " window " + window;
                try (Scope s = Scope.open("case")) {
                    Shape shape = Shape.of(1, h, t, d);
                    AttentionSpec spec = new AttentionSpec(window, 1 / Math.sqrt(d), 1 + rnd.nextInt(9));
                    Tensor q = Tensor.randn(shape, DType.F64, CPU, rnd.nextLong()).requiresGrad(true);
                    Tensor k = Tensor.randn(shape, DType.F64, CPU, rnd.nextLong()).requiresGrad(true);
                    Tensor v = Tensor.randn(shape, DType.F64, CPU, rnd.nextLong()).requiresGrad(true);
                    Tensor g = Tensor.randn(shape, DType.F64, CPU, rnd.nextLong());
                    AttentionMask mask = new AttentionMask(Tensor.fromArray(segments, Shape.of(1, t), DType.I32, CPU),
                            Tensor.fromArray(groups, Shape.of(1, t), DType.I32, CPU));
                    double[] out = withFusedPath(fusedPath, () -> {
                        Tensor o = Attention.causal(q, k, v, spec, mask);
                        o.backward(g);
                        return o;
                    }).toDoubleArray();
                    double[][] grads = {q.grad().toDoubleArray(), k.grad().toDoubleArray(), v.grad().toDoubleArray()};

                    // the mask built directly: bias 0 where visible, -inf elsewhere
                    double[] bias = new double[t * t];
                    for (int i = 0; i < t; i++) {
                        for (int j = 0; j < t; j++) {
                            boolean same = segments[i] >= 0 && segments[i] == segments[j];
                            boolean causal = j <= i && (window <= 0 || i - j < window);
                            boolean group = groups[i] >= 0 && groups[i] == groups[j];
                            bias[i * t + j] = same && (causal || group) ? 0 : Double.NEGATIVE_INFINITY;
                        }
                    }
                    // a spot check that the groups reach forward: token 3 sees token 7, token 14 sees 17, not 18
                    assertEquals(0.0, bias[3 * t + 7]);
                    assertEquals(0.0, bias[14 * t + 17]);
                    assertEquals(Double.NEGATIVE_INFINITY, bias[14 * t + 18]);
                    assertEquals(Double.NEGATIVE_INFINITY, bias[11 * t + 12], "no query sees another sample");
                    Tensor qr = q.detach().copy().requiresGrad(true);
                    Tensor kr = k.detach().copy().requiresGrad(true);
                    Tensor vr = v.detach().copy().requiresGrad(true);
                    Tensor biasT = Tensor.fromArray(bias, Shape.of(t, t), DType.F64, CPU);
                    double[] expectOut = new double[out.length];
                    for (int hi = 0; hi < h; hi++) {
                        // the padding row (last) sees nothing: leave it out of the dense softmax (its expectation is 0)
                        Tensor qh = qr.slice(1, hi, hi + 1).reshape(t, d).slice(0, 0, t - 1);
                        Tensor kh = kr.slice(1, hi, hi + 1).reshape(t, d);
                        Tensor vh = vr.slice(1, hi, hi + 1).reshape(t, d);
                        Tensor scores = qh.matmul(kh.transpose(0, 1)).scale(spec.scale()).add(biasT.slice(0, 0, t - 1));
                        Tensor o = Softmax.softmax(scores, 1).matmul(vh);
                        o.backward(g.slice(1, hi, hi + 1).reshape(t, d).slice(0, 0, t - 1).contiguous());
                        System.arraycopy(o.toDoubleArray(), 0, expectOut, hi * t * d, (t - 1) * d);
                    }
                    double m = maxAbs(q, k, v, g);
                    double tol = 4 * (t + d) * U * ((double) t * d * Math.pow(m, 4) + (double) t * d * m * m);
                    assertClose(expectOut, out, tol, what + " out");
                    assertClose(qr.grad().toDoubleArray(), grads[0], tol, what + " dq");
                    assertClose(kr.grad().toDoubleArray(), grads[1], tol, what + " dk");
                    assertClose(vr.grad().toDoubleArray(), grads[2], tol, what + " dv");
                }
            }
        }
    }

    /** Runs {@code f} with the op routed through the fused reference when asked (the blocked path otherwise). */
    private static Tensor withFusedPath(boolean fused, java.util.function.Supplier<Tensor> f) {
        return fused ? dev.jtune.testing.SystemProperties.with("jtune.cpu.fusedAttention", "true", f) : f.get();
    }

    private static double maxAbs(Tensor... ts) {
        double m = 0;
        for (Tensor t : ts) {
            for (double x : t.detach().toDoubleArray()) {
                m = Math.max(m, Math.abs(x));
            }
        }
        return m;
    }

    private static void assertClose(double[] expected, double[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what);
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            double e = Math.abs(expected[i] - actual[i]);
            assertTrue(e <= tol, what + "[" + i + "]: " + actual[i] + " vs " + expected[i] + " (bound " + tol + ")");
            worst = Math.max(worst, e);
        }
        assertTrue(worst <= tol);
    }
}

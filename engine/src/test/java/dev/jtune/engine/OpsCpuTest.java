package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.cpu.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.Isolated;

import java.util.Arrays;
import java.util.Random;

import static dev.jtune.engine.TestTensors.FLOATING;
import static dev.jtune.engine.TestTensors.assertClose;
import static dev.jtune.engine.TestTensors.assertSameValues;
import static dev.jtune.engine.TestTensors.rounded;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Arithmetic on the cpu backend against naive references computed in double on host arrays, over random shapes,
 * layouts and values. Element-wise results must match exactly (one rounding of the double result); sums and
 * matmuls within one output ulp plus the double accumulation's error.
 */
@Isolated // some tests read the cpu backend's process-wide allocation counters
class OpsCpuTest extends ScopedTest {

    // ---------------------------------------------------------------- element-wise

    @Test
    void elementwiseOpsBroadcast() {
        Random rnd = Seeds.random(21);
        for (int trial = 0; trial < 30; trial++) {
            long[] out = RandomShapes.shape(rnd, 0, 4);
            long[] sa = RandomShapes.broadcastable(rnd, out);
            long[] sb = RandomShapes.broadcastable(rnd, out);
            for (DType d : FLOATING) {
                for (BinaryOp op : BinaryOp.values()) {
                    HostArray a = rounded(HostArray.random(rnd, sa, -4, 4), d);
                    HostArray b = rounded(op == BinaryOp.DIV ? awayFromZero(rnd, sb) : HostArray.random(rnd, sb, -4, 4), d);
                    Tensor ta = TestTensors.randomLayout(a, d, rnd);
                    Tensor tb = TestTensors.randomLayout(b, d, rnd);
                    HostArray expected = HostArray.generate(broadcastShape(sa, sb),
                            idx -> ReferenceRounding.toFloating(d, op.apply(a.broadcastAt(idx), b.broadcastAt(idx))));
                    assertSameValues(expected, apply(op, ta, tb), op + " " + d + " " + Arrays.toString(sa) + " with " + Arrays.toString(sb));
                }
            }
        }
    }

    /** accumulateInto converts the value to the target's dtype and adds, rounding as a cast then an add would. */
    @Test
    void accumulateIntoConvertsTheValueOfAnyFloatingDtype() {
        Random rnd = Seeds.random(29);
        for (int trial = 0; trial < 6; trial++) {
            long[] shape = RandomShapes.shape(rnd, 1, 4);
            for (DType target : FLOATING) {
                for (DType value : FLOATING) {
                    HostArray t = rounded(HostArray.random(rnd, shape, -4, 4), target);
                    HostArray v = rounded(HostArray.random(rnd, shape, -4, 4), value);
                    Tensor tt = Tensor.fromArray(t.data(), Shape.of(shape), target, Device.CPU);
                    HostArray expected = HostArray.generate(shape,
                            idx -> ReferenceRounding.toFloating(target, t.at(idx) + ReferenceRounding.toFloating(target, v.at(idx))));
                    Ops.accumulateInto(tt, TestTensors.randomLayout(v, value, rnd));
                    assertSameValues(expected, tt, value + " into " + target + " " + Arrays.toString(shape));
                }
            }
        }
    }

    /** Through the named methods, so that each public entry point is exercised. */
    private static Tensor apply(BinaryOp op, Tensor a, Tensor b) {
        return switch (op) {
            case ADD -> a.add(b);
            case SUB -> a.sub(b);
            case MUL -> a.mul(b);
            case DIV -> a.div(b);
        };
    }

    /** Magnitudes in [0.25, 4) of either sign: divisors whose quotients stay finite. */
    private static HostArray awayFromZero(Random rnd, long[] shape) {
        return HostArray.generate(shape, idx -> (rnd.nextBoolean() ? 1 : -1) * Math.scalb(1 + rnd.nextDouble(), rnd.nextInt(4) - 2));
    }

    /** Numpy's rule, written out: align right, a dimension of 1 stretches to the other. */
    private static long[] broadcastShape(long[] a, long[] b) {
        int rank = Math.max(a.length, b.length);
        long[] out = new long[rank];
        for (int i = 0; i < rank; i++) {
            long da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
            long db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    @Test
    void scaleMultipliesEveryElement() {
        Random rnd = Seeds.random(22);
        for (int trial = 0; trial < 10; trial++) {
            long[] shape = RandomShapes.shape(rnd, 0, 4);
            double factor = rnd.nextGaussian() * 3;
            for (DType d : FLOATING) {
                HostArray a = rounded(HostArray.random(rnd, shape, -10, 10), d);
                HostArray expected = HostArray.generate(shape, idx -> ReferenceRounding.toFloating(d, a.at(idx) * factor));
                assertSameValues(expected, TestTensors.randomLayout(a, d, rnd).scale(factor), "scale " + d + " by " + factor);
            }
        }
    }

    // ---------------------------------------------------------------- reductions

    @Test
    void sumMeanMaxAlongEachAxis() {
        Random rnd = Seeds.random(23);
        for (int trial = 0; trial < 12; trial++) {
            long[] shape = RandomShapes.shape(rnd, 1, 4);
            for (DType d : FLOATING) {
                HostArray a = rounded(HostArray.random(rnd, shape, -5, 5), d);
                Tensor t = TestTensors.randomLayout(a, d, rnd);
                for (int axis = 0; axis < shape.length; axis++) {
                    int arg = rnd.nextBoolean() ? axis : axis - shape.length; // also from the end
                    for (boolean keep : new boolean[]{false, true}) {
                        for (ReduceOp op : ReduceOp.values()) {
                            String what = op + " " + d + " " + Arrays.toString(shape) + " axis " + arg + (keep ? " keepDim" : "");
                            checkReduction(op, a, t, axis, arg, keep, d, what);
                        }
                    }
                }
            }
        }
    }

    private static void checkReduction(ReduceOp op, HostArray a, Tensor t, int axis, int arg, boolean keep, DType d, String what) {
        long n = a.shape()[axis];
        long[] outShape = reducedShape(a.shape(), axis, keep);
        double[] exact = new double[Math.toIntExact(HostArray.numel(outShape))];
        double[] tolerance = new double[exact.length];
        int[] next = {0};
        HostArray.forEachIndex(outShape, idx -> {
            long[] src = keep ? idx.clone() : insertAxis(idx, axis);
            double sum = 0;
            double abs = 0;
            double max = Double.NEGATIVE_INFINITY;
            for (long r = 0; r < n; r++) {
                src[axis] = r;
                double v = a.at(src);
                sum += v;
                abs += Math.abs(v);
                max = Math.max(max, v);
            }
            double value = switch (op) {
                case SUM -> sum;
                case MEAN -> sum / n;
                case MAX -> max;
            };
            int i = next[0]++;
            exact[i] = value;
            // one rounding of the output, plus what summing n terms in double may lose
            tolerance[i] = op == ReduceOp.MAX ? 0 : TestTensors.ulp(d, value) + n * 0x1p-52 * abs;
        });
        Tensor result = Ops.reduce(op, t, arg, keep ? ReducedAxis.KEEP : ReducedAxis.DROP);
        assertClose(new HostArray(outShape, exact), tolerance, result, what);
        Tensor named = switch (op) {
            case SUM -> keep ? Ops.sum(t, arg, ReducedAxis.KEEP) : t.sum(arg);
            case MEAN -> keep ? Ops.mean(t, arg, ReducedAxis.KEEP) : t.mean(arg);
            case MAX -> keep ? Ops.max(t, arg, ReducedAxis.KEEP) : t.max(arg);
        };
        assertSameValues(HostArray.of(result), named, what + " via the named method");
    }

    private static long[] reducedShape(long[] shape, int axis, boolean keep) {
        if (keep) {
            long[] out = shape.clone();
            out[axis] = 1;
            return out;
        }
        long[] out = new long[shape.length - 1];
        for (int i = 0, j = 0; i < shape.length; i++) {
            if (i != axis) {
                out[j++] = shape[i];
            }
        }
        return out;
    }

    private static long[] insertAxis(long[] idx, int axis) {
        long[] out = new long[idx.length + 1];
        for (int i = 0, j = 0; i < out.length; i++) {
            out[i] = i == axis ? 0 : idx[j++];
        }
        return out;
    }

    @Test
    void maxPropagatesNaN() {
        Random rnd = Seeds.random(24);
        for (DType d : FLOATING) {
            double[] v = new double[5 * 7];
            for (int i = 0; i < v.length; i++) {
                v[i] = rnd.nextGaussian();
            }
            int row = rnd.nextInt(5);
            v[row * 7 + rnd.nextInt(7)] = Double.NaN;
            double[] max = Tensor.fromArray(v, Shape.of(5, 7), d, Device.CPU).max(1).toDoubleArray();
            for (int r = 0; r < 5; r++) {
                assertEquals(r == row, Double.isNaN(max[r]), d + " row " + r);
            }
        }
    }

    // ---------------------------------------------------------------- matmul

    @Test
    void matmul2dEveryTransposeCombination() {
        Random rnd = Seeds.random(25);
        for (int trial = 0; trial < 8; trial++) {
            int m = 1 + rnd.nextInt(9);
            int k = 1 + rnd.nextInt(9);
            int n = 1 + rnd.nextInt(9);
            for (DType d : new DType[]{DType.F64, DType.F32}) {
                for (boolean ta : new boolean[]{false, true}) {
                    for (boolean tb : new boolean[]{false, true}) {
                        checkMatmul(rnd, new long[0], false, m, k, n, ta, tb, d, d);
                    }
                }
            }
        }
    }

    @Test
    void matmulBatchedAndWithSharedB() {
        Random rnd = Seeds.random(26);
        for (int trial = 0; trial < 8; trial++) {
            long[] batch = RandomShapes.shape(rnd, 1, 2);
            int m = 1 + rnd.nextInt(7);
            int k = 1 + rnd.nextInt(7);
            int n = 1 + rnd.nextInt(7);
            for (boolean shared : new boolean[]{false, true}) {
                for (boolean ta : new boolean[]{false, true}) {
                    for (boolean tb : new boolean[]{false, true}) {
                        DType d = rnd.nextBoolean() ? DType.F64 : DType.F32;
                        checkMatmul(rnd, batch, shared, m, k, n, ta, tb, d, d);
                    }
                }
            }
        }
    }

    @Test
    void matmulOfLowPrecisionInputs() {
        Random rnd = Seeds.random(27);
        for (int trial = 0; trial < 6; trial++) {
            long[] batch = RandomShapes.shape(rnd, 0, 2);
            int m = 1 + rnd.nextInt(9);
            int k = 1 + rnd.nextInt(40);
            int n = 1 + rnd.nextInt(9);
            for (DType d : new DType[]{DType.BF16, DType.F16}) {
                for (DType out : new DType[]{d, DType.F32}) {
                    checkMatmul(rnd, batch, rnd.nextBoolean(), m, k, n, rnd.nextBoolean(), rnd.nextBoolean(), d, out);
                }
            }
        }
    }

    @Test
    void matmulOfLargerMatricesInParallel() {
        Random rnd = Seeds.random(28);
        checkMatmul(rnd, new long[]{2}, false, 67, 150, 45, false, true, DType.F32, DType.F32);
        checkMatmul(rnd, new long[0], false, 130, 64, 97, true, false, DType.BF16, DType.F32);
    }

    @Test
    void matmulTakesTransposedViewsWithoutCopying() {
        Random rnd = Seeds.random(29);
        CpuBackend cpu = CpuBackend.instance();
        for (int trial = 0; trial < 6; trial++) {
            long[] batch = RandomShapes.shape(rnd, 0, 2);
            int m = 2 + rnd.nextInt(6);
            int k = 2 + rnd.nextInt(6);
            int n = 2 + rnd.nextInt(6);
            HostArray a = rounded(HostArray.random(rnd, concat(batch, m, k), -1, 1), DType.F32);
            HostArray b = rounded(HostArray.random(rnd, concat(batch, k, n), -1, 1), DType.F32);
            // each operand as the transpose of a contiguous tensor holding its transpose
            Tensor ta = transposedCopy(a).toTensor(DType.F32).transpose(-1, -2);
            Tensor tb = transposedCopy(b).toTensor(DType.F32).transpose(-1, -2);
            assertFalse(ta.isContiguous());
            long before = cpu.memoryStats().allocations();
            Tensor product = ta.matmul(tb);
            assertEquals(before + 1, cpu.memoryStats().allocations(), "only the output is allocated");
            HostArray expected = referenceMatmul(a, b, false);
            assertClose(expected, matmulTolerance(a, b, false, DType.F32), product, "matmul of transposed views");
        }
    }

    /**
     * 2-D column slices of wider matrices (a fused projection's parts) go to the backend as they are, operands and an
     * accumulated output alike: the product of their contiguous copies, and the output's other columns untouched.
     */
    @Test
    void matmulTakesColumnSlicesWithoutCopying() {
        Random rnd = Seeds.random(30);
        CpuBackend cpu = CpuBackend.instance();
        for (int trial = 0; trial < 6; trial++) {
            int m = 2 + rnd.nextInt(6);
            int k = 2 + rnd.nextInt(6);
            int n = 2 + rnd.nextInt(6);
            int pad = 1 + rnd.nextInt(5);
            boolean transB = rnd.nextBoolean();
            Tensor wideA = Tensor.uniform(Shape.of(m, k + pad), DType.F32, Device.CPU, rnd.nextLong(), -1, 1);
            Tensor wideB = Tensor.uniform(transB ? Shape.of(n, k + pad) : Shape.of(k, n + pad), DType.F32, Device.CPU, rnd.nextLong(), -1, 1);
            Tensor a = wideA.slice(1, pad, pad + k);
            Tensor b = wideB.slice(1, pad, pad + (transB ? k : n));
            assertFalse(a.isContiguous());
            Transpose tr = transB ? Transpose.B : Transpose.NONE;
            long before = cpu.memoryStats().allocations();
            Tensor product = Ops.matmul(a, b, tr);
            assertEquals(before + 1, cpu.memoryStats().allocations(), "only the output is allocated");
            Tensor expected = Ops.matmul(a.contiguous(), b.contiguous(), tr);
            assertArrayEquals(expected.toDoubleArray(), product.toDoubleArray(), 0, "product of column slices");

            Tensor wideC = Tensor.uniform(Shape.of(m, n + pad + 2), DType.F32, Device.CPU, rnd.nextLong(), -1, 1);
            double[] c0 = wideC.toDoubleArray();
            Tensor c = wideC.slice(1, pad, pad + n);
            Tensor sum = c.contiguous().add(expected);
            Ops.addMatmulInto(c, a, b, tr);
            double[] c1 = wideC.toDoubleArray();
            double[] s1 = sum.toDoubleArray();
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n + pad + 2; j++) {
                    int at = i * (n + pad + 2) + j;
                    boolean inside = j >= pad && j < pad + n;
                    assertEquals(inside ? s1[i * n + j - pad] : c0[at], c1[at], inside ? 1e-6 : 0, "c[" + i + ", " + j + "]");
                }
            }
        }
    }

    /** op(a) [batch..., m, k] @ op(b) [batch..., k, n] (or [k, n] shared) against the double reference. */
    private static void checkMatmul(Random rnd, long[] batch, boolean shared, int m, int k, int n, boolean transA,
                                    boolean transB, DType in, DType out) {
        HostArray a = rounded(HostArray.random(rnd, concat(batch, m, k), -2, 2), in);
        HostArray b = rounded(HostArray.random(rnd, shared ? new long[]{k, n} : concat(batch, k, n), -2, 2), in);
        // Ops.matmul(x, y, Transpose.A) multiplies x^T: hand it the stored transpose
        HostArray storedA = transA ? transposedCopy(a) : a;
        HostArray storedB = transB ? transposedCopy(b) : b;
        Tensor ta = TestTensors.randomLayout(storedA, in, rnd);
        Tensor tb = TestTensors.randomLayout(storedB, in, rnd);
        Tensor product = Ops.matmul(ta, tb, transpose(transA, transB), out);
        assertEquals(out, product.dtype());
        String what = "matmul " + in + "->" + out + " " + Arrays.toString(a.shape()) + (transA ? "^T-stored" : "")
                + " @ " + Arrays.toString(b.shape()) + (transB ? "^T-stored" : "");
        assertClose(referenceMatmul(a, b, shared), matmulTolerance(a, b, shared, out), product, what);
    }

    private static Transpose transpose(boolean a, boolean b) {
        return a ? (b ? Transpose.BOTH : Transpose.A) : (b ? Transpose.B : Transpose.NONE);
    }

    private static HostArray referenceMatmul(HostArray a, HostArray b, boolean shared) {
        int r = a.rank();
        long k = a.shape()[r - 1];
        long[] outShape = a.shape().clone();
        outShape[r - 1] = b.shape()[b.rank() - 1];
        return HostArray.generate(outShape, idx -> {
            double s = 0;
            for (long x = 0; x < k; x++) {
                s += a.at(withLastTwo(idx, idx[r - 2], x)) * b.at(bIndex(idx, x, idx[r - 1], shared));
            }
            return s;
        });
    }

    /** Per element: one rounding to the output dtype plus the double accumulation's error bound. */
    private static double[] matmulTolerance(HostArray a, HostArray b, boolean shared, DType out) {
        int r = a.rank();
        long k = a.shape()[r - 1];
        long[] outShape = a.shape().clone();
        outShape[r - 1] = b.shape()[b.rank() - 1];
        HostArray exact = referenceMatmul(a, b, shared);
        HostArray tol = HostArray.generate(outShape, idx -> {
            double abs = 0;
            for (long x = 0; x < k; x++) {
                abs += Math.abs(a.at(withLastTwo(idx, idx[r - 2], x)) * b.at(bIndex(idx, x, idx[r - 1], shared)));
            }
            return TestTensors.ulp(out, exact.at(idx)) + k * 0x1p-52 * abs;
        });
        return tol.data();
    }

    private static long[] withLastTwo(long[] idx, long i, long j) {
        long[] out = idx.clone();
        out[out.length - 2] = i;
        out[out.length - 1] = j;
        return out;
    }

    private static long[] bIndex(long[] outIdx, long row, long col, boolean shared) {
        return shared ? new long[]{row, col} : withLastTwo(outIdx, row, col);
    }

    /** A contiguous host array holding h with its last two axes swapped. */
    private static HostArray transposedCopy(HostArray h) {
        int r = h.rank();
        long[] shape = h.shape().clone();
        shape[r - 2] = h.shape()[r - 1];
        shape[r - 1] = h.shape()[r - 2];
        return HostArray.generate(shape, idx -> h.at(withLastTwo(idx, idx[r - 1], idx[r - 2])));
    }

    private static long[] concat(long[] batch, long... tail) {
        long[] out = Arrays.copyOf(batch, batch.length + tail.length);
        System.arraycopy(tail, 0, out, batch.length, tail.length);
        return out;
    }

    @Test
    void stridedOperandsGiveTheSameMatmulAsContiguousOnes() {
        Random rnd = Seeds.random(30);
        HostArray a = rounded(HostArray.random(rnd, new long[]{3, 5, 6}, -1, 1), DType.F64);
        HostArray b = rounded(HostArray.random(rnd, new long[]{6, 4}, -1, 1), DType.F64);
        Tensor contiguous = a.toTensor(DType.F64).matmul(b.toTensor(DType.F64));
        for (TestTensors.Layout la : TestTensors.Layout.values()) {
            for (TestTensors.Layout lb : TestTensors.Layout.values()) {
                Tensor p = TestTensors.withLayout(a, DType.F64, la, rnd).matmul(TestTensors.withLayout(b, DType.F64, lb, rnd));
                assertTrue(p.isContiguous());
                assertSameValues(HostArray.of(contiguous), p, la + " @ " + lb);
            }
        }
    }
}

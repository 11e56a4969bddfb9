package dev.jtune.engine;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Builds cpu tensors from host references in various memory layouts, and compares results with references. */
final class TestTensors {
    private TestTensors() {
    }

    static final DType[] FLOATING = {DType.F64, DType.F32, DType.BF16, DType.F16};
    static final DType[] NUMERIC = {DType.F64, DType.F32, DType.BF16, DType.F16, DType.I64, DType.I32, DType.U8};

    /** The values a tensor of {@code dtype} holds when given {@code h}: the reference to compute from. */
    static HostArray rounded(HostArray h, DType dtype) {
        double[] d = h.data().clone();
        for (int i = 0; i < d.length; i++) {
            d[i] = ReferenceRounding.toFloating(dtype, d[i]);
        }
        return new HostArray(h.shape(), d);
    }

    enum Layout { CONTIGUOUS, PERMUTED, SLICED }

    static Tensor randomLayout(HostArray h, DType dtype, Random rnd) {
        return withLayout(h, dtype, Layout.values()[rnd.nextInt(Layout.values().length)], rnd);
    }

    /**
     * A tensor whose elements are h's, laid out as asked: contiguous; a permutation of a contiguous tensor of
     * permuted shape; or a slice from the middle of a larger tensor along one axis.
     */
    static Tensor withLayout(HostArray h, DType dtype, Layout layout, Random rnd) {
        long[] shape = h.shape();
        int rank = shape.length;
        if (layout == Layout.CONTIGUOUS || rank == 0) {
            return h.toTensor(dtype);
        }
        if (layout == Layout.PERMUTED) {
            int[] p = RandomShapes.permutation(rnd, rank);
            long[] stored = new long[rank];
            for (int i = 0; i < rank; i++) {
                stored[i] = shape[p[i]];
            }
            // stored element j holds h at idx with idx[p[i]] = j[i]; permuting by p's inverse restores h's order
            HostArray s = HostArray.generate(stored, j -> {
                long[] idx = new long[rank];
                for (int i = 0; i < rank; i++) {
                    idx[p[i]] = j[i];
                }
                return h.at(idx);
            });
            int[] inverse = new int[rank];
            for (int i = 0; i < rank; i++) {
                inverse[p[i]] = i;
            }
            return s.toTensor(dtype).permute(inverse);
        }
        int axis = rnd.nextInt(rank);
        long[] bigger = shape.clone();
        bigger[axis] += 3;
        HostArray s = HostArray.generate(bigger, j -> {
            if (j[axis] < 1 || j[axis] > shape[axis]) {
                return -12345.0; // padding the slice must never read
            }
            long[] idx = j.clone();
            idx[axis] -= 1;
            return h.at(idx);
        });
        return s.toTensor(dtype).slice(axis, 1, 1 + shape[axis]);
    }

    /** Same shape and exactly the same values (NaN matches NaN; -0.0 and 0.0 differ). */
    static void assertSameValues(HostArray expected, Tensor actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape().toArray(), what + ": shape");
        double[] got = actual.toDoubleArray();
        for (int i = 0; i < got.length; i++) {
            if (Double.compare(expected.data()[i], got[i]) != 0) {
                fail(what + ": element " + i + " of " + Arrays.toString(expected.shape()) + " expected " + expected.data()[i] + " but was " + got[i]);
            }
        }
    }

    /** Same shape and values within {@code tolerance[i]} of the reference. */
    static void assertClose(HostArray expected, double[] tolerance, Tensor actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape().toArray(), what + ": shape");
        double[] got = actual.toDoubleArray();
        assertEquals(expected.data().length, got.length, what + ": size");
        assertEquals(got.length, tolerance.length, what + ": tolerances");
        for (int i = 0; i < got.length; i++) {
            double err = Math.abs(expected.data()[i] - got[i]);
            if (!(err <= tolerance[i])) {
                fail(what + ": element " + i + " of " + Arrays.toString(expected.shape()) + " expected " + expected.data()[i]
                        + " but was " + got[i] + " (error " + err + " > " + tolerance[i] + ")");
            }
        }
    }

    /** The spacing of {@code dtype}'s values around |x|: what one rounding to that dtype may be off by, twice. */
    static double ulp(DType dtype, double x) {
        int e = Math.getExponent(Math.abs(x));
        return switch (dtype) {
            case F64 -> Math.ulp(x);
            case F32 -> Math.scalb(1.0, Math.max(e, -126) - 23);
            case BF16 -> Math.scalb(1.0, Math.max(e, -126) - 7);
            case F16 -> Math.scalb(1.0, Math.max(e, -14) - 10);
            default -> throw new IllegalArgumentException(dtype + " is not floating");
        };
    }
}

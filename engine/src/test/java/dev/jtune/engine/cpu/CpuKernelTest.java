package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInfo;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.ToDoubleFunction;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Base of the fused-kernel tests: each test runs in its own scope; tensors are made at a random element offset into a
 * larger storage half the time (the kernels must honour offsets), and the padding around them is checked to be
 * untouched when the test ends; outputs start as NaN, so an element a kernel fails to write shows. Statistics are
 * F32, or F64 with F64 inputs (the SPI's rule), so float64 gradient checks go through the kernels exactly. The references
 * the tests compare with are written here and in the tests, in double, sharing no code with the kernels.
 */
abstract class CpuKernelTest {
    static final DType[] FLOATING = {DType.F64, DType.F32, DType.BF16, DType.F16};
    private static final int[] SIZES = {1, 1, 2, 3, 4, 5, 7, 8, 13};
    private static final double PAD = -777.25;

    final CpuBackend cpu = CpuBackend.instance();
    private Scope scope;
    private final List<Padded> padded = new ArrayList<>();

    private record Padded(Tensor whole, int before, int n, double[] snapshot) {
    }

    @BeforeEach
    void openScope(TestInfo info) {
        scope = Scope.open(info.getDisplayName());
    }

    @AfterEach
    void checkPaddingAndClose() {
        try {
            for (Padded p : padded) {
                if (p.whole.isClosed()) {
                    continue; // made inside a finite-difference scope, already freed
                }
                double[] now = p.whole.toDoubleArray();
                for (int i = 0; i < now.length; i++) {
                    boolean inside = i >= p.before && i < p.before + p.n;
                    if (!inside && Double.compare(now[i], p.snapshot[i]) != 0) {
                        fail("element " + i + " of the storage around a tensor at offset " + p.before + " (" + p.n
                                + " elements) was overwritten: " + p.snapshot[i] + " -> " + now[i]);
                    }
                }
            }
        } finally {
            padded.clear();
            scope.close();
        }
    }

    // ---------------------------------------------------------------- making tensors

    /**
     * A contiguous tensor of {@code values} (rounded to dtype) of the given shape: its own storage, or half the time
     * a view starting at a random offset into a larger one whose padding must survive the test.
     */
    Tensor tensor(Random rnd, DType dtype, double[] values, long... shape) {
        if (rnd.nextBoolean()) {
            return Tensor.fromArray(values, Shape.of(shape), dtype, Device.CPU);
        }
        int before = 1 + rnd.nextInt(5);
        int after = 1 + rnd.nextInt(5);
        double[] all = new double[before + values.length + after];
        Arrays.fill(all, PAD);
        System.arraycopy(values, 0, all, before, values.length);
        Tensor whole = Tensor.fromArray(all, Shape.of(all.length), dtype, Device.CPU);
        padded.add(new Padded(whole, before, values.length, whole.toDoubleArray()));
        return whole.slice(0, before, before + values.length).view(shape);
    }

    Tensor ints(Random rnd, int[] values, long... shape) {
        return tensor(rnd, DType.I32, Arrays.stream(values).asDoubleStream().toArray(), shape);
    }

    /** An output tensor full of NaN. */
    Tensor output(Random rnd, DType dtype, long... shape) {
        double[] v = new double[Math.toIntExact(Shape.of(shape).numel())];
        Arrays.fill(v, Double.NaN);
        return tensor(rnd, dtype, v, shape);
    }

    /** A one-element F32 tensor. */
    Tensor scalar(Random rnd, double value) {
        return tensor(rnd, DType.F32, new double[]{value}, 1);
    }

    // ---------------------------------------------------------------- random values and sizes

    static int size(Random rnd) {
        return SIZES[rnd.nextInt(SIZES.length)];
    }

    static double[] uniform(Random rnd, int n, double lo, double hi) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = lo + (hi - lo) * rnd.nextDouble();
        }
        return v;
    }

    /** The dtype of statistics and accumulators (rstd, lse, loss, scores, sums) for inputs of {@code dtype}. */
    static DType stat(DType dtype) {
        return dtype == DType.F64 ? DType.F64 : DType.F32;
    }

    static DType anyFloating(Random rnd) {
        return FLOATING[rnd.nextInt(FLOATING.length)];
    }

    // ---------------------------------------------------------------- comparing

    /** Relative tolerance of a result rounded once to {@code dtype} (with room for reordered double sums). */
    static double tol(DType dtype) {
        return switch (dtype) {
            case F64 -> 1e-12;
            case F32 -> 1e-6;
            case BF16 -> 1e-2;
            case F16 -> 2e-3;
            default -> throw new IllegalArgumentException(dtype + " is not floating");
        };
    }

    /**
     * {@code |actual - expected| <= rel * (|expected| + 1e-3 * max|expected|)} element by element: relative, with a
     * floor for elements far smaller than the rest (whose error is set by the larger terms they came from).
     */
    static void assertClose(String what, double[] expected, double[] actual, double rel) {
        assertClose(what, expected, actual, rel, 0);
    }

    /**
     * Like {@link #assertClose(String, double[], double[], double)} with the floor at least {@code 1e-3 * terms}:
     * for results that come out of cancellation between terms of magnitude {@code terms}.
     */
    static void assertClose(String what, double[] expected, double[] actual, double rel, double terms) {
        if (expected.length != actual.length) {
            fail(what + ": " + actual.length + " elements, expected " + expected.length);
        }
        double scale = terms;
        for (double e : expected) {
            if (Double.isFinite(e)) {
                scale = Math.max(scale, Math.abs(e));
            }
        }
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            if (Double.isInfinite(e) || Double.isNaN(e)) {
                if (Double.compare(e, a) != 0) {
                    fail(what + ": element " + i + " expected " + e + " but was " + a);
                }
                continue;
            }
            double err = Math.abs(a - e);
            if (!(err <= rel * (Math.abs(e) + 1e-3 * scale))) {
                fail(what + ": element " + i + " of " + expected.length + " expected " + e + " but was " + a + " (error " + err
                        + ", relative tolerance " + rel + ")");
            }
        }
    }

    /** Gradient check: {@code |analytic - numeric| <= tol * max(1, max|numeric|)} element by element. */
    static void assertGradient(String what, double[] numeric, double[] analytic, double tol) {
        double scale = 1;
        for (double g : numeric) {
            scale = Math.max(scale, Math.abs(g));
        }
        for (int i = 0; i < numeric.length; i++) {
            double err = Math.abs(analytic[i] - numeric[i]);
            if (!(err <= tol * scale)) {
                fail(what + ": d/dx[" + i + "] analytic " + analytic[i] + " vs finite difference " + numeric[i] + " (error "
                        + err + " > " + tol * scale + ")");
            }
        }
    }

    /** Central differences {@code (f(x + h e_k) - f(x - h e_k)) / 2h} for every k; f runs in a scope of its own. */
    static double[] centralDifference(double[] x, double h, ToDoubleFunction<double[]> f) {
        double[] g = new double[x.length];
        for (int k = 0; k < x.length; k++) {
            double[] plus = x.clone();
            double[] minus = x.clone();
            plus[k] += h;
            minus[k] -= h;
            try (Scope s = Scope.open("finite difference")) {
                g[k] = (f.applyAsDouble(plus) - f.applyAsDouble(minus)) / (2 * h);
            }
        }
        return g;
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    /**
     * What a tensor of {@code dtype} holds after storing x, written independently of the engine: scale to an integer
     * count of the format's quantum (exact, a power of two), round half to even with {@link Math#rint}, scale back.
     * Finite, in-range values only.
     */
    static double roundTo(DType dtype, double x) {
        return switch (dtype) {
            case F64 -> x;
            case F32 -> roundToBits(x, 24, -126);
            case BF16 -> roundToBits(x, 8, -126);
            case F16 -> roundToBits(x, 11, -14);
            default -> throw new IllegalArgumentException(dtype + " is not floating");
        };
    }

    private static double roundToBits(double x, int precision, int minExponent) {
        if (x == 0 || !Double.isFinite(x)) {
            return x;
        }
        double quantum = Math.scalb(1.0, Math.max(Math.getExponent(x), minExponent) - (precision - 1));
        return Math.rint(x / quantum) * quantum;
    }
}

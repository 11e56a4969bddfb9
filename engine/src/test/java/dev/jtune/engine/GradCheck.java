package dev.jtune.engine;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Finite-difference gradient check in float64 on the cpu: the gradient autograd computes for
 * {@code loss = sum(f(inputs) * w)} (w random, so every output element matters) against central differences
 * {@code (loss(x + h) - loss(x - h)) / 2h} for every element of every input.
 */
public final class GradCheck {
    private static final double H = 1e-6;

    private GradCheck() {
    }

    /** Inputs are drawn uniform in [-1, 1) unless {@code values} supplies them (null entries drawn). */
    public static void check(String name, Function<Tensor[], Tensor> f, Shape[] shapes, long seed, double[][] values) {
        Random rnd = new Random(seed);
        double[][] x = new double[shapes.length][];
        for (int i = 0; i < shapes.length; i++) {
            x[i] = values != null && values[i] != null ? values[i].clone() : uniform(rnd, (int) shapes[i].numel());
        }
        try (Scope scope = Scope.open("gradcheck " + name)) {
            Tensor[] inputs = leaves(shapes, x, true);
            Tensor out = f.apply(inputs);
            double[] w = uniform(rnd, (int) out.numel());
            Tensor weights = Tensor.fromArray(w, out.shape(), DType.F64, Device.CPU);
            Tensor loss = out.mul(weights).reshape(-1).sum(0);
            loss.backward();
            for (int i = 0; i < shapes.length; i++) {
                Tensor g = inputs[i].grad();
                assertNotNull(g, name + ": input " + i + " got no gradient (seed " + seed + ")");
                double[] analytic = g.toDoubleArray();
                double[] numeric = new double[x[i].length];
                for (int j = 0; j < x[i].length; j++) {
                    double keep = x[i][j];
                    x[i][j] = keep + H;
                    double plus = evaluate(f, shapes, x, w);
                    x[i][j] = keep - H;
                    double minus = evaluate(f, shapes, x, w);
                    x[i][j] = keep;
                    numeric[j] = (plus - minus) / (2 * H);
                }
                double err = relativeError(analytic, numeric);
                assertTrue(err < 1e-6, name + ": input " + i + " " + shapes[i] + " gradient relative error " + err + " (seed " + seed + ")");
            }
        }
    }

    public static void check(String name, Function<Tensor[], Tensor> f, long seed, Shape... shapes) {
        check(name, f, shapes, seed, null);
    }

    private static double evaluate(Function<Tensor[], Tensor> f, Shape[] shapes, double[][] x, double[] w) {
        try (Scope s = Scope.open("eval"); Autograd.GradMode off = Autograd.noGrad()) {
            double[] out = f.apply(leaves(shapes, x, false)).toDoubleArray();
            double sum = 0;
            for (int i = 0; i < out.length; i++) {
                sum += out[i] * w[i];
            }
            return sum;
        }
    }

    private static Tensor[] leaves(Shape[] shapes, double[][] x, boolean grad) {
        Tensor[] t = new Tensor[shapes.length];
        for (int i = 0; i < shapes.length; i++) {
            t[i] = Tensor.fromArray(x[i], shapes[i], DType.F64, Device.CPU);
            if (grad) {
                t[i].requiresGrad(true);
            }
        }
        return t;
    }

    static double[] uniform(Random rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = rnd.nextDouble() * 2 - 1;
        }
        return v;
    }

    public static double relativeError(double[] a, double[] b) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < a.length; i++) {
            if (Double.isNaN(a[i]) || Double.isNaN(b[i])) {
                return Double.NaN;
            }
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-12);
    }
}

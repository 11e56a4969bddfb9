package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.ActivationKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

class CpuActivationsTest extends CpuKernelTest {
    private static final double K = Math.sqrt(2 / Math.PI);

    /** The contract's formula: {@code 0.5 x (1 + tanh(u))}, u = sqrt(2/pi) (x + 0.044715 x^3). */
    private static double gelu(double x) {
        double u = K * (x + 0.044715 * x * x * x);
        return 0.5 * x * (1 + Math.tanh(u));
    }

    /** d/dx of the above: {@code 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'}. */
    private static double geluDerivative(double x) {
        double t = Math.tanh(K * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * 0.044715 * x * x);
    }

    /**
     * This reference's own error: {@code 1 + tanh u} cancels for large negative x, leaving ~1e-16 |x| absolute error
     * in the tail (the kernel uses the exact logistic form); as the magnitude of terms for assertClose's floor.
     */
    private static double terms(double[]... arrays) {
        double m = 1;
        for (double[] a : arrays) {
            for (double v : a) {
                m = Math.max(m, Math.abs(v));
            }
        }
        return m * m;
    }

    /** Mostly moderate values, some far out where tanh saturates. */
    private static double[] values(Random rnd, int n) {
        double[] v = uniform(rnd, n, -4, 4);
        for (int i = 0; i < n; i++) {
            if (rnd.nextInt(8) == 0) {
                v[i] *= 5;
            }
        }
        return v;
    }

    private static long[] shape(Random rnd) {
        return switch (rnd.nextInt(3)) {
            case 0 -> new long[]{size(rnd)};
            case 1 -> new long[]{size(rnd), size(rnd)};
            default -> new long[]{size(rnd), size(rnd), size(rnd)};
        };
    }

    private static int numel(long[] shape) {
        int n = 1;
        for (long d : shape) {
            n *= (int) d;
        }
        return n;
    }

    @Test
    void geluAndItsBackwardMatchTheDefinition() {
        Random rnd = Seeds.random(301);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            long[] shape = shape(rnd);
            int n = numel(shape);
            Tensor x = tensor(rnd, dtype, values(rnd, n), shape);
            Tensor gy = tensor(rnd, dtype, uniform(rnd, n, -2, 2), shape);
            double[] xs = x.toDoubleArray();
            double[] gys = gy.toDoubleArray();
            double[] y = new double[n];
            double[] gx = new double[n];
            for (int i = 0; i < n; i++) {
                y[i] = gelu(xs[i]);
                gx[i] = gys[i] * geluDerivative(xs[i]);
            }
            boolean inPlace = rnd.nextBoolean();
            Tensor gradX = inPlace ? gy : output(rnd, dtype, shape);
            cpu.kernels(ActivationKernel.OP).geluBackward(x, gy, gradX);
            assertClose("geluBackward " + dtype + " inPlace=" + inPlace, gx, gradX.toDoubleArray(), tol(dtype), terms(xs, gys));
            Tensor out = inPlace ? x : output(rnd, dtype, shape);
            cpu.kernels(ActivationKernel.OP).gelu(x, out);
            assertClose("gelu " + dtype + " inPlace=" + inPlace, y, out.toDoubleArray(), tol(dtype), terms(xs));
        }
    }

    @Test
    void gegluAndItsBackwardMatchTheDefinition() {
        Random rnd = Seeds.random(302);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            long[] shape = shape(rnd);
            int n = numel(shape);
            Tensor gate = tensor(rnd, dtype, values(rnd, n), shape);
            Tensor up = tensor(rnd, dtype, uniform(rnd, n, -3, 3), shape);
            Tensor gy = tensor(rnd, dtype, uniform(rnd, n, -2, 2), shape);
            double[] g = gate.toDoubleArray();
            double[] u = up.toDoubleArray();
            double[] dy = gy.toDoubleArray();
            double[] out = new double[n];
            double[] dGate = new double[n];
            double[] dUp = new double[n];
            for (int i = 0; i < n; i++) {
                out[i] = gelu(g[i]) * u[i];
                dGate[i] = dy[i] * u[i] * geluDerivative(g[i]);
                dUp[i] = dy[i] * gelu(g[i]);
            }
            Tensor o = output(rnd, dtype, shape);
            cpu.kernels(ActivationKernel.OP).geglu(gate, up, o);
            assertClose("geglu " + dtype, out, o.toDoubleArray(), tol(dtype), terms(g, u));
            Tensor gradGate = output(rnd, dtype, shape);
            Tensor gradUp = output(rnd, dtype, shape);
            cpu.kernels(ActivationKernel.OP).gegluBackward(gate, up, gy, gradGate, gradUp);
            assertClose("gegluBackward gate " + dtype, dGate, gradGate.toDoubleArray(), tol(dtype), terms(g, u, dy));
            assertClose("gegluBackward up " + dtype, dUp, gradUp.toDoubleArray(), tol(dtype), terms(g, dy));
        }
    }

    @Test
    void backwardsAreTheGradientsOfTheForwards() {
        Random rnd = Seeds.random(303);
        for (int trial = 0; trial < 6; trial++) {
            int n = size(rnd) + 3;
            double[] x = uniform(rnd, n, -4, 4);
            double[] up = uniform(rnd, n, -2, 2);
            double[] gy = uniform(rnd, n, -1, 1);
            double[] numericGelu = centralDifference(x, 1e-5, xv -> {
                Tensor out = output(rnd, DType.F64, n);
                cpu.kernels(ActivationKernel.OP).gelu(tensor(rnd, DType.F64, xv, n), out);
                return dot(gy, out.toDoubleArray());
            });
            Tensor gx = output(rnd, DType.F64, n);
            cpu.kernels(ActivationKernel.OP).geluBackward(tensor(rnd, DType.F64, x, n), tensor(rnd, DType.F64, gy, n), gx);
            assertGradient("gelu", numericGelu, gx.toDoubleArray(), 1e-8);

            double[] numericGate = centralDifference(x, 1e-5, gv -> geglu(rnd, gv, up, gy));
            double[] numericUp = centralDifference(up, 1e-5, uv -> geglu(rnd, x, uv, gy));
            Tensor gradGate = output(rnd, DType.F64, n);
            Tensor gradUp = output(rnd, DType.F64, n);
            cpu.kernels(ActivationKernel.OP).gegluBackward(tensor(rnd, DType.F64, x, n), tensor(rnd, DType.F64, up, n), tensor(rnd, DType.F64, gy, n), gradGate, gradUp);
            assertGradient("geglu gate", numericGate, gradGate.toDoubleArray(), 1e-8);
            assertGradient("geglu up", numericUp, gradUp.toDoubleArray(), 1e-8);
        }
    }

    private double geglu(Random rnd, double[] gate, double[] up, double[] gy) {
        int n = gate.length;
        Tensor out = output(rnd, DType.F64, n);
        cpu.kernels(ActivationKernel.OP).geglu(tensor(rnd, DType.F64, gate, n), tensor(rnd, DType.F64, up, n), out);
        return dot(gy, out.toDoubleArray());
    }
}

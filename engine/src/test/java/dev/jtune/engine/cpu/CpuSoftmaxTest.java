package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.SoftmaxKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuSoftmaxTest extends CpuKernelTest {

    /** {@code exp(x_j) / sum_k exp(x_k)} per row, unshifted (test values are moderate), or its log. */
    private static double[] reference(double[] x, int n, int c, boolean log) {
        double[] y = new double[n * c];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int k = 0; k < c; k++) {
                sum += Math.exp(x[i * c + k]);
            }
            for (int j = 0; j < c; j++) {
                y[i * c + j] = log ? x[i * c + j] - Math.log(sum) : Math.exp(x[i * c + j]) / sum;
            }
        }
        return y;
    }

    @Test
    void forwardMatchesTheDefinition() {
        Random rnd = Seeds.random(501);
        for (int trial = 0; trial < 48; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            boolean log = trial % 8 < 4;
            boolean inPlace = rnd.nextInt(3) == 0;
            int n = size(rnd);
            int c = size(rnd);
            Tensor x = tensor(rnd, dtype, uniform(rnd, n * c, -6, 6), n, c);
            double[] expected = reference(x.toDoubleArray(), n, c, log);
            Tensor out = inPlace ? x : output(rnd, dtype, n, c);
            cpu.kernels(SoftmaxKernel.OP).forward(x, log, out);
            // log-softmax x - lse cancels to exactly 0 when C = 1: terms of size |x| bound the error
            assertClose((log ? "logSoftmax " : "softmax ") + dtype + " [" + n + ", " + c + "] inPlace=" + inPlace,
                    expected, out.toDoubleArray(), tol(dtype), 6);
        }
    }

    @Test
    void largeLogitsDoNotOverflow() {
        Random rnd = Seeds.random(502);
        double[] x = uniform(rnd, 2 * 5, 990, 1000);
        double[] shifted = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            shifted[i] = x[i] - 1000;
        }
        for (boolean log : new boolean[]{false, true}) {
            Tensor out = output(rnd, DType.F64, 2, 5);
            cpu.kernels(SoftmaxKernel.OP).forward(tensor(rnd, DType.F64, x, 2, 5), log, out);
            double[] expected = reference(shifted, 2, 5, log); // both are invariant to shifting a row
            assertClose("softmax of logits near 1000, log=" + log, expected, out.toDoubleArray(), 1e-12, 1000);
        }
    }

    @Test
    void backwardMatchesTheJacobian() {
        Random rnd = Seeds.random(503);
        for (int trial = 0; trial < 48; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            boolean log = trial % 8 < 4;
            boolean inPlace = rnd.nextBoolean();
            int n = size(rnd);
            int c = size(rnd);
            Tensor y = output(rnd, dtype, n, c);
            cpu.kernels(SoftmaxKernel.OP).forward(tensor(rnd, dtype, uniform(rnd, n * c, -4, 4), n, c), log, y);
            Tensor gy = tensor(rnd, dtype, uniform(rnd, n * c, -1, 1), n, c);
            double[] ys = y.toDoubleArray();
            double[] g = gy.toDoubleArray();
            // gx_j = sum_k gy_k dy_k/dx_j with dy_k/dx_j = p_k (delta_kj - p_j) (softmax), delta_kj - p_j (log),
            // p recovered from the output the backward is given
            double[] expected = new double[n * c];
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < c; j++) {
                    double pj = log ? Math.exp(ys[i * c + j]) : ys[i * c + j];
                    double s = 0;
                    for (int k = 0; k < c; k++) {
                        double pk = log ? Math.exp(ys[i * c + k]) : ys[i * c + k];
                        double jac = log ? (k == j ? 1 : 0) - pj : pk * ((k == j ? 1 : 0) - pj);
                        s += g[i * c + k] * jac;
                    }
                    expected[i * c + j] = s;
                }
            }
            Tensor gx = inPlace ? gy : output(rnd, dtype, n, c);
            cpu.kernels(SoftmaxKernel.OP).backward(y, gy, log, gx);
            assertClose((log ? "logSoftmaxBackward " : "softmaxBackward ") + dtype + " [" + n + ", " + c + "] inPlace=" + inPlace,
                    expected, gx.toDoubleArray(), tol(dtype), 1);
        }
    }

    @Test
    void backwardIsTheGradientOfTheForward() {
        Random rnd = Seeds.random(504);
        for (int trial = 0; trial < 8; trial++) {
            boolean log = trial % 2 == 0;
            int n = size(rnd);
            int c = size(rnd) + 1;
            double[] x = uniform(rnd, n * c, -3, 3);
            double[] gy = uniform(rnd, n * c, -1, 1);
            double[] numeric = centralDifference(x, 1e-5, xv -> {
                Tensor out = output(rnd, DType.F64, n, c);
                cpu.kernels(SoftmaxKernel.OP).forward(tensor(rnd, DType.F64, xv, n, c), log, out);
                return dot(gy, out.toDoubleArray());
            });
            Tensor y = output(rnd, DType.F64, n, c);
            cpu.kernels(SoftmaxKernel.OP).forward(tensor(rnd, DType.F64, x, n, c), log, y);
            Tensor gx = output(rnd, DType.F64, n, c);
            cpu.kernels(SoftmaxKernel.OP).backward(y, tensor(rnd, DType.F64, gy, n, c), log, gx);
            assertGradient(log ? "logSoftmax" : "softmax", numeric, gx.toDoubleArray(), 1e-9);
        }
    }

    @Test
    void rowsSumToOne() {
        Random rnd = Seeds.random(505);
        Tensor out = output(rnd, DType.F32, 3, 1000);
        cpu.kernels(SoftmaxKernel.OP).forward(tensor(rnd, DType.F32, uniform(rnd, 3000, -20, 20), 3, 1000), false, out);
        double[] p = out.toDoubleArray();
        for (int i = 0; i < 3; i++) {
            double s = 0;
            for (int j = 0; j < 1000; j++) {
                s += p[i * 1000 + j];
            }
            assertTrue(Math.abs(s - 1) < 1e-5, "row " + i + " sums to " + s);
        }
    }
}

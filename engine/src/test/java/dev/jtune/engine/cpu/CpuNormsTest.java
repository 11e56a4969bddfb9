package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.RmsNormKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

class CpuNormsTest extends CpuKernelTest {
    private static final double EPS = 1e-6;

    /** Reference out and rstd: {@code rstd = 1/sqrt(mean x^2 + eps)}, {@code out = x rstd (offsetOne ? 1 + w : w)}. */
    private static double[][] reference(double[] x, double[] w, int n, int d, double eps, boolean offsetOne) {
        double[] out = new double[n * d];
        double[] rstd = new double[n];
        for (int i = 0; i < n; i++) {
            double meanSquare = 0;
            for (int j = 0; j < d; j++) {
                meanSquare += x[i * d + j] * x[i * d + j] / d;
            }
            rstd[i] = 1 / Math.sqrt(meanSquare + eps);
            for (int j = 0; j < d; j++) {
                out[i * d + j] = x[i * d + j] * rstd[i] * (offsetOne ? 1 + w[j] : w[j]);
            }
        }
        return new double[][]{out, rstd};
    }

    @Test
    void forwardMatchesTheDefinition() {
        Random rnd = Seeds.random(201);
        for (int trial = 0; trial < 48; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            DType wType = anyFloating(rnd);
            boolean offsetOne = trial % 8 < 4;
            boolean inPlace = rnd.nextInt(3) == 0;
            int n = size(rnd);
            int d = size(rnd);
            double eps = rnd.nextBoolean() ? EPS : 0.1;
            Tensor x = tensor(rnd, dtype, uniform(rnd, n * d, -3, 3), n, d);
            Tensor w = tensor(rnd, wType, uniform(rnd, d, -1, 1), d);
            double[][] ref = reference(x.toDoubleArray(), w.toDoubleArray(), n, d, eps, offsetOne);
            Tensor out = inPlace ? x : output(rnd, dtype, n, d);
            Tensor rstd = output(rnd, stat(dtype), n);
            cpu.kernels(RmsNormKernel.OP).forward(x, w, eps, offsetOne, out, rstd);
            String what = "rmsNorm " + dtype + " w " + wType + " [" + n + ", " + d + "] offsetOne=" + offsetOne + " inPlace=" + inPlace;
            assertClose(what + " out", ref[0], out.toDoubleArray(), tol(dtype));
            assertClose(what + " rstd", ref[1], rstd.toDoubleArray(), tol(stat(dtype)));
        }
    }

    @Test
    void backwardMatchesTheDerivedFormula() {
        Random rnd = Seeds.random(202);
        for (int trial = 0; trial < 48; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            DType wType = anyFloating(rnd);
            boolean offsetOne = trial % 8 < 4;
            boolean wantWeight = trial % 3 != 0;
            int n = size(rnd);
            int d = size(rnd);
            Tensor x = tensor(rnd, dtype, uniform(rnd, n * d, -3, 3), n, d);
            Tensor w = tensor(rnd, wType, uniform(rnd, d, -1, 1), d);
            Tensor gradOut = tensor(rnd, dtype, uniform(rnd, n * d, -1, 1), n, d);
            Tensor rstd = output(rnd, stat(dtype), n);
            cpu.kernels(RmsNormKernel.OP).forward(x, w, EPS, offsetOne, output(rnd, dtype, n, d), rstd);
            double[] xs = x.toDoubleArray();
            double[] ws = w.toDoubleArray();
            double[] gy = gradOut.toDoubleArray();
            double[] r = rstd.toDoubleArray(); // the saved rstd (fp32 unless x is F64) is what the backward is given
            // y_j = x_j r g_j with r = (mean x^2 + eps)^(-1/2), dr/dx_k = -r^3 x_k / D
            double[] gx = new double[n * d];
            double[] gw = new double[d];
            double terms = 0; // gradX cancels between terms as large as |gy g r|: D = 1 leaves r g gy eps / (x^2 + eps)
            for (int i = 0; i < n; i++) {
                for (int k = 0; k < d; k++) {
                    double s = 0;
                    for (int j = 0; j < d; j++) {
                        double gj = offsetOne ? 1 + ws[j] : ws[j];
                        double dyjdxk = gj * ((j == k ? r[i] : 0) - xs[i * d + j] * r[i] * r[i] * r[i] * xs[i * d + k] / d);
                        s += gy[i * d + j] * dyjdxk;
                    }
                    gx[i * d + k] = s;
                    terms = Math.max(terms, Math.abs(gy[i * d + k] * (offsetOne ? 1 + ws[k] : ws[k]) * r[i]));
                    gw[k] += gy[i * d + k] * xs[i * d + k] * r[i];
                }
            }
            Tensor gradX = output(rnd, dtype, n, d);
            Tensor gradW = wantWeight ? output(rnd, stat(dtype), d) : null;
            cpu.kernels(RmsNormKernel.OP).backward(x, w, rstd, offsetOne, gradOut, gradX, gradW);
            String what = "rmsNormBackward " + dtype + " [" + n + ", " + d + "] offsetOne=" + offsetOne;
            assertClose(what + " gradX", gx, gradX.toDoubleArray(), tol(dtype), terms);
            if (wantWeight) {
                assertClose(what + " gradWeight", gw, gradW.toDoubleArray(), tol(stat(dtype)), terms);
            }
        }
    }

    @Test
    void backwardIsTheGradientOfTheForward() {
        Random rnd = Seeds.random(203);
        for (int trial = 0; trial < 8; trial++) {
            boolean offsetOne = trial % 2 == 0;
            int n = size(rnd);
            int d = size(rnd) + 1;
            double[] x = uniform(rnd, n * d, -2, 2);
            double[] w = uniform(rnd, d, -1, 1);
            double[] gy = uniform(rnd, n * d, -1, 1);
            ForwardLoss loss = (xv, wv) -> {
                Tensor out = output(rnd, DType.F64, n, d);
                cpu.kernels(RmsNormKernel.OP).forward(tensor(rnd, DType.F64, xv, n, d), tensor(rnd, DType.F64, wv, d), EPS, offsetOne, out, output(rnd, DType.F64, n));
                return dot(gy, out.toDoubleArray());
            };
            double[] numericX = centralDifference(x, 1e-5, xv -> loss.of(xv, w));
            double[] numericW = centralDifference(w, 1e-5, wv -> loss.of(x, wv));
            Tensor xt = tensor(rnd, DType.F64, x, n, d);
            Tensor wt = tensor(rnd, DType.F64, w, d);
            Tensor rstd = output(rnd, DType.F64, n);
            cpu.kernels(RmsNormKernel.OP).forward(xt, wt, EPS, offsetOne, output(rnd, DType.F64, n, d), rstd);
            Tensor gradX = output(rnd, DType.F64, n, d);
            Tensor gradW = output(rnd, DType.F64, d);
            cpu.kernels(RmsNormKernel.OP).backward(xt, wt, rstd, offsetOne, tensor(rnd, DType.F64, gy, n, d), gradX, gradW);
            assertGradient("rmsNorm dx offsetOne=" + offsetOne, numericX, gradX.toDoubleArray(), 1e-8);
            assertGradient("rmsNorm dw offsetOne=" + offsetOne, numericW, gradW.toDoubleArray(), 1e-8);
        }
    }

    private interface ForwardLoss {
        double of(double[] x, double[] w);
    }
}

package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.fused.GradClipKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuOptimTest extends CpuKernelTest {

    /**
     * torch.optim.AdamW's single-tensor step, written from its source, on host state: p in param's dtype, m and v in
     * the state's dtype (as the tensors hold them, so each is rounded on store).
     */
    private static void torchAdamW(double[] p, double[] m, double[] v, double[] grad, double gradScale, DType paramType, DType stateType,
                                   double lr, double b1, double b2, double eps, double wd, int step) {
        double bc1 = 1 - Math.pow(b1, step);
        double bc2 = 1 - Math.pow(b2, step);
        for (int i = 0; i < p.length; i++) {
            double g = grad[i] * gradScale;
            double param = p[i] * (1 - lr * wd);                 // param.mul_(1 - lr * weight_decay)
            m[i] = roundTo(stateType, b1 * m[i] + (1 - b1) * g);     // exp_avg.lerp_(grad, 1 - beta1)
            v[i] = roundTo(stateType, b2 * v[i] + (1 - b2) * g * g); // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
            double denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + eps; // (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps)
            p[i] = roundTo(paramType, param - lr / bc1 * m[i] / denom); // param.addcdiv_(exp_avg, denom, -lr / bc1)
        }
    }

    @Test
    void threeStepsMatchTorch() {
        Random rnd = Seeds.random(801);
        DType[] paramTypes = {DType.F64, DType.F32, DType.BF16};
        for (int trial = 0; trial < 24; trial++) {
            DType paramType = paramTypes[trial % 3];
            DType gradType = trial % 2 == 0 ? paramType : DType.F32;
            DType stateType = paramType == DType.F64 && trial % 4 != 3 ? DType.F64 : DType.F32; // F64 state next to F64 params
            boolean withScale = trial % 4 < 2;
            double wd = trial % 8 < 4 ? 0.1 : 0.0;
            double lr = paramType == DType.BF16 ? 5e-2 : 1e-3;
            double b1 = 0.9;
            double b2 = 0.999;
            double eps = 1e-8;
            int n = size(rnd) * size(rnd);
            Tensor param = tensor(rnd, paramType, uniform(rnd, n, -1, 1), n);
            Tensor m = tensor(rnd, stateType, new double[n], n);
            Tensor v = tensor(rnd, stateType, new double[n], n);
            double[] p = param.toDoubleArray();
            double[] ms = new double[n];
            double[] vs = new double[n];
            String what = "adamw param " + paramType + " grad " + gradType + " state " + stateType + " scale=" + withScale + " wd=" + wd + " n=" + n;
            for (int step = 1; step <= 3; step++) {
                double scale = withScale ? (float) (0.5 + rnd.nextDouble()) : 1;
                Tensor grad = tensor(rnd, gradType, uniform(rnd, n, -2, 2), n);
                double[] g = grad.toDoubleArray();
                torchAdamW(p, ms, vs, g, scale, paramType, stateType, lr, b1, b2, eps, wd, step);
                cpu.kernels(AdamWKernel.OP).step(param, grad, m, v, new AdamWStep(lr, b1, b2, eps, wd, step), withScale ? scalar(rnd, scale) : null);
                assertClose(what + " step " + step + " m", ms, m.toDoubleArray(), tol(stateType));
                assertClose(what + " step " + step + " v", vs, v.toDoubleArray(), tol(stateType));
                assertClose(what + " step " + step + " param", p, param.toDoubleArray(), tol(paramType));
                assertArrayEquals(g, grad.toDoubleArray(), "the gradient is not modified");
            }
        }
    }

    @Test
    void weightDecayAloneShrinksTheParameter() {
        // zero gradient: m = v = 0, so the step is exactly p (1 - lr wd)
        Random rnd = Seeds.random(802);
        int n = 9;
        double[] p0 = uniform(rnd, n, -1, 1);
        Tensor param = tensor(rnd, DType.F64, p0, n);
        cpu.kernels(AdamWKernel.OP).step(param, tensor(rnd, DType.F64, new double[n], n), tensor(rnd, DType.F32, new double[n], n),
                tensor(rnd, DType.F32, new double[n], n), new AdamWStep(0.01, 0.9, 0.999, 1e-8, 0.5, 1), null);
        double[] got = param.toDoubleArray();
        for (int i = 0; i < n; i++) {
            assertEquals(p0[i] * (1 - 0.01 * 0.5), got[i], 1e-15);
        }
    }

    @Test
    void sumOfSquaresAccumulates() {
        Random rnd = Seeds.random(803);
        for (int trial = 0; trial < 16; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            DType outType = stat(dtype);
            Tensor out = tensor(rnd, outType, new double[]{trial % 2 == 0 ? 0 : 10 * rnd.nextDouble()}, 1);
            double expected = out.item();
            for (int k = 0; k < 3; k++) {
                // sizes past one parallel block of the kernel, too
                int n = trial < 4 ? 40_000 + rnd.nextInt(1000) : size(rnd) * size(rnd);
                Tensor x = tensor(rnd, dtype, uniform(rnd, n, -2, 2), n);
                for (double e : x.toDoubleArray()) {
                    expected += e * e;
                }
                cpu.kernels(GradClipKernel.OP).sumOfSquares(x, out);
                assertEquals(expected, out.item(), tol(outType) * expected, dtype + " after " + (k + 1) + " tensors");
                expected = out.item(); // continue from what out holds
            }
        }
    }

    @Test
    void sumOfSquaresDoesNotDependOnScheduling() {
        Random rnd = Seeds.random(804);
        Tensor x = tensor(rnd, DType.F32, uniform(rnd, 100_003, -3, 3), 100_003);
        Tensor first = scalar(rnd, 0);
        cpu.kernels(GradClipKernel.OP).sumOfSquares(x, first);
        for (int k = 0; k < 5; k++) {
            Tensor again = scalar(rnd, 0);
            cpu.kernels(GradClipKernel.OP).sumOfSquares(x, again);
            assertEquals(first.item(), again.item(), "same bits every run");
        }
    }

    @Test
    void clipCoefficientIsTorchsClampedFactor() {
        Random rnd = Seeds.random(805);
        double[][] cases = {{0, 1}, {0.25, 1}, {4, 1}, {100, 1}, {1e6, 2.5}, {1, 1}, {3.7, 0.3}};
        for (double[] c : cases) {
            double ss = (float) c[0];
            double maxNorm = c[1];
            Tensor coef = output(rnd, DType.F32, 1);
            cpu.kernels(GradClipKernel.OP).clipCoefficient(scalar(rnd, ss), maxNorm, coef);
            double expected = Math.min(1, maxNorm / (Math.sqrt(ss) + 1e-6));
            assertEquals((float) expected, coef.item(), 0, "ss " + ss + " maxNorm " + maxNorm);
        }
        Tensor coef = output(rnd, DType.F32, 1);
        cpu.kernels(GradClipKernel.OP).clipCoefficient(scalar(rnd, Double.NaN), 1, coef);
        assertTrue(Double.isNaN(coef.item()), "a NaN norm gives a NaN factor (torch's clamp keeps NaN)");
        Tensor inPlace = scalar(rnd, 16);
        cpu.kernels(GradClipKernel.OP).clipCoefficient(inPlace, 1, inPlace);
        assertEquals((float) (1 / (4 + 1e-6)), inPlace.item(), 0);
    }
}

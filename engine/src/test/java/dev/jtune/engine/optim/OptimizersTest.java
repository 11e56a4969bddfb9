package dev.jtune.engine.optim;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** AdamW, SGD and global-norm clipping against straight transcriptions of torch's algorithms, in double. */
class OptimizersTest {
    private final Random rnd = Seeds.random();

    private double[] random(int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = rnd.nextGaussian();
        }
        return v;
    }

    /** Sets p.grad = g by differentiating sum(p * g). */
    private static void setGrad(Tensor p, double[] g) {
        Tensor w = Tensor.fromArray(g, p.shape(), p.dtype(), p.device());
        p.mul(w).reshape(-1).sum(0).backward();
    }

    @Test
    void adamwFollowsTorchForSeveralSteps() {
        int n = 1 + rnd.nextInt(20);
        AdamW.Config cfg = new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0.01);
        double[] p = random(n);
        double[] m = new double[n];
        double[] v = new double[n];
        try (Scope s = Scope.open("adamw")) {
            Tensor param = Tensor.fromArray(p, Shape.of(n), DType.F64, Device.CPU).requiresGrad(true);
            AdamW opt = new AdamW(List.of(param), cfg);
            for (int step = 1; step <= 4; step++) {
                double[] g = random(n);
                setGrad(param, g);
                opt.step();
                opt.zeroGrad();
                assertArrayEquals(new double[n], param.grad().toDoubleArray(), 0.0, "zeroGrad zeroes the flat gradient buffer");
                for (int i = 0; i < n; i++) { // torch.optim.AdamW, single tensor, no amsgrad
                    p[i] -= cfg.lr() * cfg.weightDecay() * p[i];
                    m[i] = cfg.beta1() * m[i] + (1 - cfg.beta1()) * g[i];
                    v[i] = cfg.beta2() * v[i] + (1 - cfg.beta2()) * g[i] * g[i];
                    double mhat = m[i] / (1 - Math.pow(cfg.beta1(), step));
                    double vhat = v[i] / (1 - Math.pow(cfg.beta2(), step));
                    p[i] -= cfg.lr() * mhat / (Math.sqrt(vhat) + cfg.eps());
                }
                assertArrayEquals(p, param.toDoubleArray(), 1e-12, "after step " + step);
            }
            assertEquals(4, opt.steps());
        }
    }

    @Test
    void bf16ParametersUpdateThroughAnFp32MasterCopy() {
        try (Scope s = Scope.open("master")) {
            Tensor param = Tensor.full(Shape.of(4), 1.0, DType.BF16, Device.CPU).requiresGrad(true);
            AdamW opt = new AdamW(List.of(param), new AdamW.Config(1e-4, 0.9, 0.999, 1e-8, 0.0));
            for (int i = 0; i < 20; i++) {
                setGrad(param, new double[] {1, 1, 1, 1});
                opt.step();
                opt.zeroGrad();
            }
            // each step moves by ~1e-4, below bf16's resolution at 1.0 (2^-7): without a master copy nothing moves
            for (double x : param.toDoubleArray()) {
                assertEquals(1.0 - 20 * 1e-4, x, 4e-3);
                assertEquals(0.9961, x, 1e-3);
            }
        }
    }

    @Test
    void sgdSubtractsTheScaledGradient() {
        int n = 5;
        double[] p = random(n);
        double[] g = random(n);
        try (Scope s = Scope.open("sgd")) {
            Tensor param = Tensor.fromArray(p, Shape.of(n), DType.F64, Device.CPU).requiresGrad(true);
            Sgd opt = new Sgd(List.of(param), 0.1);
            setGrad(param, g);
            opt.step();
            for (int i = 0; i < n; i++) {
                p[i] -= 0.1 * g[i];
            }
            assertArrayEquals(p, param.toDoubleArray(), 1e-15);
        }
    }

    @Test
    void clippingScalesAllGradientsByTheGlobalNorm() {
        double[] g1 = random(7);
        double[] g2 = random(3);
        double norm = 0;
        for (double x : g1) {
            norm += x * x;
        }
        for (double x : g2) {
            norm += x * x;
        }
        norm = Math.sqrt(norm);
        double maxNorm = norm / 2;
        try (Scope s = Scope.open("clip")) {
            Tensor a = Tensor.zeros(Shape.of(7), DType.F64, Device.CPU).requiresGrad(true);
            Tensor b = Tensor.zeros(Shape.of(3), DType.F64, Device.CPU).requiresGrad(true);
            setGrad(a, g1);
            setGrad(b, g2);
            assertEquals(norm, GradClip.norm(List.of(a, b)).value(), 1e-5 * norm, "the norm alone");
            assertArrayEquals(g1, a.grad().toDoubleArray(), 0.0, "measuring the norm changes nothing");
            GradClip.GradNorm reported = GradClip.clipGradNorm(List.of(a, b), maxNorm);
            assertEquals(norm, reported.value(), 1e-5 * norm); // the sum of squares is kept in F32
            double coef = maxNorm / (norm + 1e-6);
            double[] got = a.grad().toDoubleArray();
            for (int i = 0; i < 7; i++) {
                assertEquals(g1[i] * coef, got[i], 1e-6 * Math.abs(g1[i]) + 1e-12);
            }
            // below the threshold nothing changes
            GradClip.clipGradNorm(List.of(a, b), norm * 10);
            assertArrayEquals(got, a.grad().toDoubleArray(), 1e-12);
            assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm(List.of(a), 0));
        }
    }
}

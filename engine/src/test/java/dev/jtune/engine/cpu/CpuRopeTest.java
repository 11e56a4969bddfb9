package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.RopeKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuRopeTest extends CpuKernelTest {

    /**
     * HF's rotate-half RoPE with fp32 frequencies and angles: pair (x[k], x[k + D/2]) as the complex number
     * {@code a + ib}, multiplied by {@code e^(i angle)} (by {@code e^(-i angle)} for the inverse).
     */
    private static double[] reference(double[] x, int[] pos, int b, int h, int t, int d, double base, boolean inverse) {
        int half = d / 2;
        double[] out = new double[x.length];
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                for (int ti = 0; ti < t; ti++) {
                    int row = ((bi * h + hi) * t + ti) * d;
                    float p = pos[bi * t + ti];
                    for (int k = 0; k < half; k++) {
                        float invFreq = (float) Math.pow(base, -2.0 * k / d);
                        float angle = (float) ((double) p * invFreq); // one fp32 rounding of the exact product
                        double re = Math.cos(angle);
                        double im = inverse ? -Math.sin(angle) : Math.sin(angle);
                        double a = x[row + k];
                        double bb = x[row + k + half];
                        out[row + k] = a * re - bb * im;
                        out[row + k + half] = a * im + bb * re;
                    }
                }
            }
        }
        return out;
    }

    private static int[] positions(Random rnd, int b, int t, int max) {
        int[] pos = new int[b * t];
        for (int bi = 0; bi < b; bi++) {
            int start = rnd.nextInt(max);
            for (int ti = 0; ti < t; ti++) {
                pos[bi * t + ti] = rnd.nextInt(4) == 0 ? rnd.nextInt(max) : start + ti; // mostly consecutive, some packed
            }
        }
        return pos;
    }

    @Test
    void rotatesLikeHf() {
        Random rnd = Seeds.random(401);
        for (int trial = 0; trial < 48; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            int b = 1 + rnd.nextInt(2);
            int h = size(rnd);
            int t = size(rnd);
            int d = 2 * size(rnd);
            double base = rnd.nextBoolean() ? 10_000 : 1_000_000;
            boolean inverse = trial % 8 >= 4;
            boolean inPlace = rnd.nextInt(3) == 0;
            int[] pos = positions(rnd, b, t, rnd.nextBoolean() ? 64 : 200_000);
            Tensor x = tensor(rnd, dtype, uniform(rnd, b * h * t * d, -2, 2), b, h, t, d);
            double[] expected = reference(x.toDoubleArray(), pos, b, h, t, d, base, inverse);
            Tensor out = inPlace ? x : output(rnd, dtype, b, h, t, d);
            cpu.kernels(RopeKernel.OP).rotate(x, ints(rnd, pos, b, t), base, 1.0, inverse, out);
            assertClose("rope " + dtype + " [" + b + ", " + h + ", " + t + ", " + d + "] base " + base + " inverse=" + inverse
                    + " inPlace=" + inPlace, expected, out.toDoubleArray(), tol(dtype), 2);
        }
    }

    @Test
    void anglesAreFp32() {
        // at large positions the fp32 angle is off the exact one by up to half an ulp of the angle (~1e-4 rad here)
        Random rnd = Seeds.random(402);
        int d = 8;
        int[] pos = {123_457, 98_765, 131_071};
        double[] x = uniform(rnd, 3 * d, -1, 1);
        Tensor out = output(rnd, DType.F64, 1, 1, 3, d);
        cpu.kernels(RopeKernel.OP).rotate(tensor(rnd, DType.F64, x, 1, 1, 3, d), ints(rnd, pos, 1, 3), 1_000_000, 1.0, false, out);
        double[] got = out.toDoubleArray();
        assertClose("rope at large positions", reference(x, pos, 1, 1, 3, d, 1_000_000, false), got, 1e-12, 1);
        double worst = 0;
        for (int ti = 0; ti < 3; ti++) {
            for (int k = 0; k < d / 2; k++) {
                double exactAngle = pos[ti] * Math.pow(1_000_000, -2.0 * k / d);
                double a = x[ti * d + k];
                double bb = x[ti * d + k + d / 2];
                worst = Math.max(worst, Math.abs(got[ti * d + k] - (a * Math.cos(exactAngle) - bb * Math.sin(exactAngle))));
            }
        }
        assertTrue(worst > 1e-6, "the fp32 angle differs visibly from the exact one, got at most " + worst);
    }

    @Test
    void inverseUndoesTheRotationAndIsTheGradient() {
        Random rnd = Seeds.random(403);
        for (int trial = 0; trial < 8; trial++) {
            int b = 1 + rnd.nextInt(2);
            int h = 1 + rnd.nextInt(2);
            int t = size(rnd);
            int d = 2 * (1 + rnd.nextInt(3));
            int n = b * h * t * d;
            int[] pos = positions(rnd, b, t, 5000);
            double[] x = uniform(rnd, n, -2, 2);
            Tensor xt = tensor(rnd, DType.F64, x, b, h, t, d);
            Tensor rotated = output(rnd, DType.F64, b, h, t, d);
            cpu.kernels(RopeKernel.OP).rotate(xt, ints(rnd, pos, b, t), 10_000, 1.0, false, rotated);
            cpu.kernels(RopeKernel.OP).rotate(rotated, ints(rnd, pos, b, t), 10_000, 1.0, true, rotated);
            assertClose("inverse(rope(x))", x, rotated.toDoubleArray(), 1e-14, 1);

            double[] gy = uniform(rnd, n, -1, 1);
            double[] numeric = centralDifference(x, 1e-5, xv -> {
                Tensor out = output(rnd, DType.F64, b, h, t, d);
                cpu.kernels(RopeKernel.OP).rotate(tensor(rnd, DType.F64, xv, b, h, t, d), ints(rnd, pos, b, t), 10_000, 1.0, false, out);
                return dot(gy, out.toDoubleArray());
            });
            Tensor gx = output(rnd, DType.F64, b, h, t, d);
            cpu.kernels(RopeKernel.OP).rotate(tensor(rnd, DType.F64, gy, b, h, t, d), ints(rnd, pos, b, t), 10_000, 1.0, true, gx);
            assertGradient("rope", numeric, gx.toDoubleArray(), 1e-9);
        }
    }

    /**
     * The attention path's layouts: x is the [B, H, T, D] view of a [B, T, H, D] tensor (the projection's), out either
     * contiguous (forward) or that same transposed layout (the gradient); each must equal the contiguous rotation.
     */
    @Test
    void rotatesStridedViewsLikeContiguousOnes() {
        Random rnd = Seeds.random(404);
        for (int trial = 0; trial < 12; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            int b = 1 + rnd.nextInt(2);
            int h = 1 + rnd.nextInt(4);
            int t = size(rnd);
            int d = 2 * size(rnd);
            boolean inverse = rnd.nextBoolean();
            int[] pos = positions(rnd, b, t, 20_000);
            Tensor bthd = tensor(rnd, dtype, uniform(rnd, b * h * t * d, -2, 2), b, t, h, d);
            Tensor view = bthd.transpose(1, 2);
            double[] expected = reference(view.contiguous().toDoubleArray(), pos, b, h, t, d, 10_000, inverse);
            String what = "rope " + dtype + " of a [B, T, H, D] view [" + b + ", " + h + ", " + t + ", " + d + "] inverse=" + inverse;
            Tensor contiguousOut = output(rnd, dtype, b, h, t, d);
            cpu.kernels(RopeKernel.OP).rotate(view, ints(rnd, pos, b, t), 10_000, 1.0, inverse, contiguousOut);
            assertClose(what + " into a contiguous out", expected, contiguousOut.toDoubleArray(), tol(dtype), 2);
            Tensor stridedOut = output(rnd, dtype, b, t, h, d).transpose(1, 2);
            cpu.kernels(RopeKernel.OP).rotate(view, ints(rnd, pos, b, t), 10_000, 1.0, inverse, stridedOut);
            assertClose(what + " into the same layout", expected, stridedOut.contiguous().toDoubleArray(), tol(dtype), 2);
        }
    }
}

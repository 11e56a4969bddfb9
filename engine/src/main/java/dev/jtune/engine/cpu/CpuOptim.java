package dev.jtune.engine.cpu;

import dev.jtune.engine.Numerics;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.cpu.CpuLoops.Flat;

/** The optimizer step and the global gradient-norm clipping factors. */
final class CpuOptim {
    private CpuOptim() {
    }

    /**
     * torch.optim.AdamW (single-tensor path, amsgrad off), element by element in double:
     * {@code p *= 1 - lr wd}; {@code m = b1 m + (1 - b1) g}; {@code v = b2 v + (1 - b2) g^2};
     * {@code p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)}, with {@code g = grad * gradScale[0]} when given.
     * The parameter update uses m and v as stored (rounded to their dtype), as torch and a GPU kernel do, so the
     * saved state fully determines the step.
     */
    static void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step, Tensor gradScale) {
        double factor = gradScale == null ? 1.0 : Flat.of(gradScale).get(0);
        boolean scaled = gradScale != null;
        double decay = 1 - step.lr() * step.weightDecay();
        double b1 = step.beta1();
        double b2 = step.beta2();
        double stepSize = step.lr() / step.biasCorrection1();
        double bc2Sqrt = Math.sqrt(step.biasCorrection2());
        double eps = step.eps();
        Flat ps = Flat.of(param);
        Flat gs = Flat.of(grad);
        Flat ms = Flat.of(m);
        Flat vs = Flat.of(v);
        CpuLoops.blocks(param.numel(), (start, end) -> {
            for (long i = start; i < end; i++) {
                double g = scaled ? gs.get(i) * factor : gs.get(i);
                double mi = Numerics.roundTo(ms.dtype(), b1 * ms.get(i) + (1 - b1) * g);
                double vi = Numerics.roundTo(vs.dtype(), b2 * vs.get(i) + (1 - b2) * g * g);
                double p = ps.get(i) * decay;
                p -= stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
                ms.set(i, mi);
                vs.set(i, vi);
                ps.set(i, p);
            }
        });
    }

    /**
     * {@code out[0] += sum x^2}: block sums in double (in parallel), added in block order, so the result does not
     * depend on thread scheduling; then one rounding when added to out.
     */
    static void sumOfSquares(Tensor x, Tensor out) {
        long n = x.numel();
        Flat xs = Flat.of(x);
        double[] partial = new double[Math.toIntExact(Math.ceilDiv(n, CpuLoops.BLOCK))];
        CpuLoops.blocks(n, (start, end) -> {
            double s = 0;
            for (long i = start; i < end; i++) {
                double e = xs.get(i);
                s += e * e;
            }
            partial[(int) (start / CpuLoops.BLOCK)] = s;
        });
        double total = 0;
        for (double s : partial) {
            total += s;
        }
        Flat o = Flat.of(out);
        o.set(0, o.get(0) + total);
    }

    /** {@code coef[0] = min(1, maxNorm / (sqrt(ss) + 1e-6))}; NaN stays NaN (torch's clamp propagates it). */
    static void clipCoefficient(Tensor sumOfSquares, double maxNorm, Tensor coef) {
        double ss = Flat.of(sumOfSquares).get(0);
        Flat.of(coef).set(0, Math.min(1.0, maxNorm / (Math.sqrt(ss) + 1e-6)));
    }
}

package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.engine.optim.FlatLayout;
import dev.jtune.engine.quant.BitsandbytesMaps;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Random;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The 8-bit AdamW kernel's cpu reference against the test's own re-statement of bitsandbytes' blockwise algorithm
 * (kOptimizerStatic8bit2StateBlockwise), written per tensor in double with its own dynamic maps and code rule.
 */
class CpuAdamW8bitTest {
    private static final int BLOCK = 256;
    private static final float[] SIGNED = BitsandbytesMaps.createDynamicMap(true, 7, 8);
    private static final float[] UNSIGNED = BitsandbytesMaps.createDynamicMap(false, 7, 8);
    private final Random rnd = Seeds.random();

    /** One tensor's 8-bit AdamW state and weights, stepped as bitsandbytes does, in double. */
    static final class Reference {
        final int n;
        final double[] p;
        final int[] qm;
        final int[] qv;
        final float[] am;
        final float[] av;
        final boolean fp32Storage;

        Reference(double[] p, int[] qm, int[] qv, float[] am, float[] av) {
            this.n = p.length;
            this.p = p.clone();
            this.qm = qm.clone();
            this.qv = qv.clone();
            this.am = am.clone();
            this.av = av.clone();
            this.fp32Storage = true;
        }

        void step(double[] grad, double lr, double beta1, double beta2, double eps, double wd, long t, double gradScale) {
            double c1 = 1 - Math.pow(beta1, t);
            double c2 = Math.sqrt(1 - Math.pow(beta2, t));
            for (int blk = 0; blk * BLOCK < n; blk++) {
                double[] m = new double[BLOCK];
                double[] v = new double[BLOCK];
                boolean[] apply = new boolean[BLOCK];
                double maxM = -Float.MAX_VALUE;
                double maxV = -Float.MAX_VALUE;
                for (int j = 0; j < BLOCK; j++) {
                    int k = blk * BLOCK + j;
                    boolean inside = k < n;
                    double g = inside ? grad[k] : 0; // bitsandbytes loads 0 past the end
                    if (Double.isNaN(g) || Double.isInfinite(g)) {
                        m[j] = 0;
                        v[j] = 0;
                    } else {
                        g = g * gradScale;
                        double mOld = (double) SIGNED[inside ? qm[k] : 128] * am[blk];
                        double vOld = (double) UNSIGNED[inside ? qv[k] : 0] * av[blk];
                        v[j] = vOld * beta2 + (1 - beta2) * g * g;
                        m[j] = mOld * beta1 + (1 - beta1) * g;
                        apply[j] = inside;
                    }
                    if (!Double.isNaN(m[j])) {
                        maxM = Math.max(maxM, Math.abs(m[j]));
                    }
                    if (!Double.isNaN(v[j])) {
                        maxV = Math.max(maxV, Math.abs(v[j]));
                    }
                }
                am[blk] = (float) maxM;
                av[blk] = (float) maxV;
                for (int j = 0; j < BLOCK && blk * BLOCK + j < n; j++) {
                    int k = blk * BLOCK + j;
                    if (apply[j]) {
                        double update = lr * c2 / c1 * (m[j] / (Math.sqrt(v[j]) + c2 * eps));
                        double np = p[k] - update;
                        if (wd > 0) {
                            np = np * (1 - lr * wd);
                        }
                        p[k] = (float) np; // the fp32 master (or fp32 weight) holds it
                    }
                    int c = BitsandbytesMaps.code(SIGNED, m[j] / am[blk]);
                    boolean codeSign = (Float.floatToRawIntBits(SIGNED[c]) >>> 31) == 1;
                    boolean mSign = (Double.doubleToRawLongBits(m[j]) >>> 63) == 1;
                    if (codeSign != mSign) {
                        c += m[j] > 0 ? 1 : -1;
                    }
                    qm[k] = c & 255;
                    qv[k] = BitsandbytesMaps.code(UNSIGNED, v[j] / av[blk]);
                }
            }
        }
    }

    /** A flat group on the cpu: the layout, its parameters and the flat buffers, gaps filled with garbage. */
    private record Group(FlatLayout layout, List<Tensor> params, Tensor master, Tensor grad, AdamW8bitKernel.State state,
                         List<Reference> refs) {
    }

    private static final int GAP_CODE = 77;
    private static final float GAP_GRAD = 1e30f;

    /** Parameters of {@code sizes} in {@code dtype}; random weights, and random codes and absmax when {@code warm}. */
    private Group group(int[] sizes, DType dtype, DType gradType, boolean warm) {
        SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
        for (int i = 0; i < sizes.length; i++) {
            shapes.put("w" + i, Shape.of(sizes[i]));
        }
        FlatLayout layout = FlatLayout.of(shapes);
        int total = (int) layout.numel();
        int blocks = total / BLOCK;
        byte[] qm = new byte[total];
        byte[] qv = new byte[total];
        java.util.Arrays.fill(qm, (byte) GAP_CODE);
        java.util.Arrays.fill(qv, (byte) GAP_CODE);
        float[] am = new float[blocks];
        float[] av = new float[blocks];
        float[] masterValues = new float[total];
        List<Tensor> params = new ArrayList<>();
        List<Reference> refs = new ArrayList<>();
        for (int e = 0; e < sizes.length; e++) {
            int n = sizes[e];
            int off = (int) layout.entries().get(e).offset();
            double[] w = new double[n];
            int[] cm = new int[n];
            int[] cv = new int[n];
            for (int k = 0; k < n; k++) {
                w[k] = rnd.nextGaussian();
                cm[k] = warm ? rnd.nextInt(256) : 0;
                cv[k] = warm ? rnd.nextInt(256) : 0;
                qm[off + k] = (byte) cm[k];
                qv[off + k] = (byte) cv[k];
            }
            Tensor p = Tensor.fromArray(w, Shape.of(n), dtype, Device.CPU);
            double[] stored = p.toDoubleArray(); // as the dtype holds them
            for (int k = 0; k < n; k++) {
                masterValues[off + k] = (float) stored[k];
            }
            int b0 = off / BLOCK;
            int nb = Math.ceilDiv(n, BLOCK);
            float[] ram = new float[nb];
            float[] rav = new float[nb];
            for (int b = 0; b < nb; b++) {
                ram[b] = warm ? (float) (0.01 + rnd.nextDouble()) : 0f;
                rav[b] = warm ? (float) (1e-4 + 1e-2 * rnd.nextDouble()) : 0f;
                am[b0 + b] = ram[b];
                av[b0 + b] = rav[b];
            }
            params.add(p);
            refs.add(new Reference(stored, cm, cv, ram, rav));
        }
        Tensor master = dtype == DType.F32 ? null : Tensor.fromArray(masterValues, Shape.of(total), DType.F32, Device.CPU);
        AdamW8bitKernel.State state = new AdamW8bitKernel.State(
                Tensor.fromBytes(qm, Shape.of(total), DType.U8, Device.CPU), Tensor.fromArray(am, Shape.of(blocks), DType.F32, Device.CPU),
                Tensor.fromBytes(qv, Shape.of(total), DType.U8, Device.CPU), Tensor.fromArray(av, Shape.of(blocks), DType.F32, Device.CPU));
        return new Group(layout, params, master, Tensor.zeros(Shape.of(total), gradType, Device.CPU), state, refs);
    }

    /** Random gradients into the group's flat buffer (gaps: garbage) and the per-tensor arrays they are. */
    private List<double[]> gradients(Group g, DType gradType, boolean nonFinite) {
        int total = (int) g.layout.numel();
        float[] flat = new float[total];
        java.util.Arrays.fill(flat, GAP_GRAD);
        List<double[]> out = new ArrayList<>();
        for (int e = 0; e < g.params.size(); e++) {
            FlatLayout.Entry entry = g.layout.entries().get(e);
            double[] gr = new double[(int) entry.numel()];
            for (int k = 0; k < gr.length; k++) {
                gr[k] = rnd.nextGaussian() * Math.pow(10, -3 * rnd.nextDouble());
                flat[(int) entry.offset() + k] = (float) gr[k];
            }
            if (nonFinite && gr.length > 3) {
                gr[1] = Double.NaN;
                gr[2] = Double.NEGATIVE_INFINITY;
                flat[(int) entry.offset() + 1] = Float.NaN;
                flat[(int) entry.offset() + 2] = Float.NEGATIVE_INFINITY;
            }
            out.add(gr);
        }
        Tensor grad = Tensor.fromArray(flat, Shape.of(total), gradType, Device.CPU);
        double[] stored = grad.toDoubleArray(); // the reference sees the gradient as its dtype holds it
        for (int e = 0; e < g.params.size(); e++) {
            int off = (int) g.layout.entries().get(e).offset();
            double[] gr = out.get(e);
            for (int k = 0; k < gr.length; k++) {
                gr[k] = stored[off + k];
            }
        }
        dev.jtune.engine.Ops.copyInto(grad, g.grad);
        return out;
    }

    private void compare(Group g, String what) {
        byte[] qm = g.state.m().toByteArray();
        byte[] qv = g.state.v().toByteArray();
        float[] am = g.state.absmaxM().toFloatArray();
        float[] av = g.state.absmaxV().toFloatArray();
        float[] master = g.master == null ? null : g.master.toFloatArray();
        for (int e = 0; e < g.params.size(); e++) {
            Reference r = g.refs.get(e);
            int off = (int) g.layout.entries().get(e).offset();
            String at = what + " w" + e + " (" + r.n + " elements)";
            for (int b = 0; b < r.am.length; b++) {
                assertEquals(Float.floatToIntBits(r.am[b]), Float.floatToIntBits(am[off / BLOCK + b]), at + " absmax m block " + b);
                assertEquals(Float.floatToIntBits(r.av[b]), Float.floatToIntBits(av[off / BLOCK + b]), at + " absmax v block " + b);
            }
            double[] p = g.params.get(e).toDoubleArray();
            for (int k = 0; k < r.n; k++) {
                assertEquals(r.qm[k], qm[off + k] & 0xFF, at + " m code " + k);
                assertEquals(r.qv[k], qv[off + k] & 0xFF, at + " v code " + k);
                double ulp = Math.ulp((float) r.p[k]);
                if (master != null) {
                    assertEquals(r.p[k], master[off + k], ulp, at + " master " + k);
                    assertEquals(p[k], g.params.get(e).dtype() == DType.BF16 ? roundBf16(master[off + k]) : roundF16(master[off + k]), 0.0,
                            at + " weight " + k + " is the master rounded once");
                } else {
                    assertEquals(r.p[k], p[k], ulp, at + " weight " + k);
                }
            }
            for (int k = off + r.n; k < Math.ceilDiv(off + r.n, BLOCK) * BLOCK; k++) {
                assertEquals(GAP_CODE, qm[k] & 0xFF, at + " the padding's codes are not written");
                assertEquals(GAP_CODE, qv[k] & 0xFF, at + " the padding's codes are not written");
            }
        }
    }

    private static double roundBf16(float x) {
        return Tensor.fromArray(new float[] {x}, Shape.of(1), DType.BF16, Device.CPU).toDoubleArray()[0];
    }

    private static double roundF16(float x) {
        return Tensor.fromArray(new float[] {x}, Shape.of(1), DType.F16, Device.CPU).toDoubleArray()[0];
    }

    private void run(int[] sizes, DType dtype, DType gradType, boolean warm, int steps, double gradScale, double wd, boolean nonFinite) {
        String what = dtype + " params, " + gradType + " grads, sizes " + java.util.Arrays.toString(sizes) + (warm ? ", warm state" : "")
                + ", scale " + gradScale + ", wd " + wd + (nonFinite ? ", non-finite gradients" : "");
        try (Scope s = Scope.open("adamw8bit")) {
            Group g = group(sizes, dtype, gradType, warm);
            ParameterTable targets = new ParameterTable(g.params, g.layout);
            Tensor scale = gradScale == 1.0 ? null : Tensor.fromArray(new double[] {gradScale}, Shape.of(1), DType.F32, Device.CPU);
            double lr = 1e-2;
            for (long t = 1; t <= steps; t++) {
                long step = warm ? t + 4 : t;
                List<double[]> grads = gradients(g, gradType, nonFinite && t == 1);
                AdamW8bitKernel.OP.cpu().step(targets, g.master, g.grad, g.state, new AdamWStep(lr, 0.9, 0.999, 1e-8, wd, step), scale);
                for (int e = 0; e < sizes.length; e++) {
                    g.refs.get(e).step(grads.get(e), lr, 0.9, 0.999, 1e-8, wd, step, scale == null ? 1.0 : (float) gradScale);
                }
                compare(g, what + ", step " + step);
            }
        }
    }

    @Test
    void oneStepFromAWarmStateMatchesTheRestatement() {
        run(new int[] {300, 256, 1000, 5, 513}, DType.F32, DType.F32, true, 1, 0.5, 0.1, true);
    }

    @Test
    void severalStepsFromZeroMatchTheRestatement() {
        run(new int[] {4096 + 17, 700}, DType.F32, DType.F32, false, 5, 1.0, 0.01, false);
        run(new int[] {1, 2, 255, 257}, DType.F32, DType.BF16, false, 3, 1.0, 0.0, false);
    }

    @Test
    void sixteenBitWeightsStepTheirMasterCopy() {
        run(new int[] {600, 4100}, DType.BF16, DType.BF16, true, 3, 1.0, 0.1, true);
        run(new int[] {333}, DType.F16, DType.F32, false, 2, 0.25, 0.1, false);
    }

    @Test
    void aBlockInAGapIsSkipped() {
        try (Scope s = Scope.open("gap")) {
            // entry b starts at 768, leaving block 1 and 2 (elements 256..767) to nobody
            FlatLayout layout = new FlatLayout(List.of(new FlatLayout.Entry("a", Shape.of(10), 0), new FlatLayout.Entry("b", Shape.of(20), 768)), 1024);
            Tensor a = Tensor.zeros(Shape.of(10), DType.F32, Device.CPU);
            Tensor b = Tensor.zeros(Shape.of(20), DType.F32, Device.CPU);
            ParameterTable targets = new ParameterTable(List.of(a, b), layout);
            Tensor grad = Tensor.full(Shape.of(1024), 1.0, DType.F32, Device.CPU);
            byte[] zeroM = new byte[1024];
            java.util.Arrays.fill(zeroM, (byte) 127); // the signed map's 0
            AdamW8bitKernel.State state = new AdamW8bitKernel.State(
                    Tensor.fromBytes(zeroM, Shape.of(1024), DType.U8, Device.CPU), Tensor.full(Shape.of(4), 5.0, DType.F32, Device.CPU),
                    Tensor.zeros(Shape.of(1024), DType.U8, Device.CPU), Tensor.full(Shape.of(4), 5.0, DType.F32, Device.CPU));
            AdamW8bitKernel.OP.cpu().step(targets, null, grad, state, new AdamWStep(1e-3, 0.9, 0.999, 1e-8, 0, 1), null);
            float[] am = state.absmaxM().toFloatArray();
            assertEquals(5f, am[1], "a block of nobody keeps its state");
            assertEquals(5f, am[2]);
            assertEquals(0.1f, am[0], 1e-7, "m of block 0: (1 - beta1) * g");
            assertEquals(0.1f, am[3], 1e-7);
            // the first step of Adam moves every element by lr against the gradient's sign
            for (float x : a.toFloatArray()) {
                assertEquals(-1e-3f, x, 1e-9f);
            }
            for (float x : b.toFloatArray()) {
                assertEquals(-1e-3f, x, 1e-9f);
            }
        }
    }
}

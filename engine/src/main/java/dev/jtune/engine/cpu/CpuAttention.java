package dev.jtune.engine.cpu;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuLoops.Flat;

/** The masked softmax of a block of attention scores, its backward, and the row dot product its delta needs. */
final class CpuAttention {
    private CpuAttention() {
    }

    /**
     * Row r is query {@code q = rowStart + r % rowsPerHead}, column c key {@code k = colStart + c}; the visible keys
     * of a row are the contiguous run {@code max(0, q - window + 1) <= k <= q} (no lower bound when window <= 0).
     * Without lseIn, {@code lse = m + log sum exp(scale s - m)} over the visible entries (m their max), -inf when
     * none is visible or all are -inf. probs = {@code exp(scale s - lse)} on visible entries and 0 elsewhere, and 0 on
     * the whole row when lse is -inf (also a read one). Rows run in parallel, each read whole before it is written.
     */
    static void softmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, double scale,
                        Tensor probs, Tensor lse, boolean lseIn) {
        int c = CpuLoops.lastDim("attentionSoftmax", scores);
        Flat ss = Flat.of(scores);
        Flat ps = Flat.of(probs);
        Flat ls = Flat.of(lse);
        CpuLoops.rows(scores.numel() / Math.max(c, 1), r -> {
            long q = rowStart + r % rowsPerHead;
            // visible columns [lo, hi)
            long hi = Math.clamp(q - colStart + 1, 0, c);
            long lo = window > 0 ? Math.clamp(q - window + 1 - colStart, 0, hi) : 0;
            double[] z = ss.read(r * c, new double[c]);
            double l;
            if (lseIn) {
                l = ls.get(r);
            } else {
                double max = Double.NEGATIVE_INFINITY;
                for (int j = (int) lo; j < hi; j++) {
                    max = Math.max(max, scale * z[j]);
                }
                if (max == Double.NEGATIVE_INFINITY || Double.isNaN(max)) {
                    l = max;
                } else {
                    double sum = 0;
                    for (int j = (int) lo; j < hi; j++) {
                        sum += Math.exp(scale * z[j] - max);
                    }
                    l = max + Math.log(sum);
                }
                ls.set(r, l);
            }
            double[] p = new double[c];
            if (l != Double.NEGATIVE_INFINITY) {
                for (int j = (int) lo; j < hi; j++) {
                    p[j] = Math.exp(scale * z[j] - l);
                }
            }
            ps.write(r * c, p);
        });
    }

    /** {@code gradScores[r, c] = scale * probs[r, c] * (gradProbs[r, c] - delta[r])}, element by element. */
    static void softmaxBackward(Tensor probs, Tensor gradProbs, Tensor delta, double scale, Tensor gradScores) {
        int c = CpuLoops.lastDim("attentionSoftmaxBackward", probs);
        Flat ps = Flat.of(probs);
        Flat gps = Flat.of(gradProbs);
        Flat ds = Flat.of(delta);
        Flat gs = Flat.of(gradScores);
        CpuLoops.rows(probs.numel() / Math.max(c, 1), r -> {
            double dr = ds.get(r);
            long first = r * c;
            for (int j = 0; j < c; j++) {
                gs.set(first + j, scale * ps.get(first + j) * (gps.get(first + j) - dr));
            }
        });
    }

    /** {@code out[r] = sum_c a[r, c] b[r, c]}, in double in ascending c, stored once. */
    static void rowDot(Tensor a, Tensor b, Tensor out) {
        int c = CpuLoops.lastDim("rowDot", a);
        Flat as = Flat.of(a);
        Flat bs = Flat.of(b);
        Flat os = Flat.of(out);
        CpuLoops.rows(a.numel() / Math.max(c, 1), r -> {
            long first = r * c;
            double s = 0;
            for (int j = 0; j < c; j++) {
                s += as.get(first + j) * bs.get(first + j);
            }
            os.set(r, s);
        });
    }
}

package dev.jtune.engine.cpu;

import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuLoops.Flat;

/**
 * The reference of the fused attention kernels (kernels/flash.cu): whole causal attention of one call in double
 * precision, written as plainly as the definition. q [B, Hq, T, D], k and v [B, Hkv, T, D]; key j is visible to
 * query i when {@code j <= i} and, with a window, {@code i - j < window}; query head h reads key/value head
 * {@code h / (Hq / Hkv)}. Every output is rounded once on store.
 */
final class CpuFusedAttention {
    private CpuFusedAttention() {
    }

    private record Heads(long batch, long hq, long hkv, int t, int d) {
        static Heads of(Tensor q, Tensor k) {
            return new Heads(q.dim(0), q.dim(1), k.dim(1), (int) q.dim(2), (int) q.dim(3));
        }

        long kvHead(long bh) {
            return (bh / hq) * hkv + (bh % hq) / (hq / hkv);
        }

        int first(int i, long window) {
            return window > 0 ? (int) Math.max(0, i - window + 1) : 0;
        }
    }

    /** out = softmax(scale q k^T, masked) v; lse = log sum exp over the visible keys (F32). */
    static void forward(Tensor q, Tensor k, Tensor v, long window, double scale, Tensor out, Tensor lse) {
        Heads h = Heads.of(q, k);
        Flat qs = Flat.of(q);
        Flat ks = Flat.of(k);
        Flat vs = Flat.of(v);
        Flat os = Flat.of(out);
        Flat ls = Flat.of(lse);
        int d = h.d();
        CpuLoops.rows(h.batch() * h.hq() * h.t(), row -> {
            long bh = row / h.t();
            int i = (int) (row % h.t());
            long kv = h.kvHead(bh) * h.t();
            double[] qi = qs.read(row * d, new double[d]);
            int lo = h.first(i, window);
            double[] s = new double[i - lo + 1];
            double max = Double.NEGATIVE_INFINITY;
            double[] kj = new double[d];
            for (int j = lo; j <= i; j++) {
                ks.read((kv + j) * d, kj);
                s[j - lo] = scale * dot(qi, kj);
                max = Math.max(max, s[j - lo]);
            }
            double sum = 0;
            for (int j = 0; j < s.length; j++) {
                s[j] = Math.exp(s[j] - max);
                sum += s[j];
            }
            double[] o = new double[d];
            double[] vj = new double[d];
            for (int j = lo; j <= i; j++) {
                vs.read((kv + j) * d, vj);
                double p = s[j - lo] / sum;
                for (int c = 0; c < d; c++) {
                    o[c] += p * vj[c];
                }
            }
            os.write(row * d, o);
            ls.set(row, max + Math.log(sum));
        });
    }

    /**
     * With {@code p = exp(scale q.k - lse)}: dV += p dO, dS = p (dO.v - delta) scale, dQ += dS k, dK += dS q;
     * delta F32 [B, Hq, T] is dO . out per row. Query rows run in parallel for dQ; key/value heads for dK, dV.
     */
    static void backward(Tensor q, Tensor k, Tensor v, Tensor gradOut, Tensor lse, Tensor delta, long window, double scale,
                         Tensor gradQ, Tensor gradK, Tensor gradV) {
        Heads h = Heads.of(q, k);
        Flat qs = Flat.of(q);
        Flat ks = Flat.of(k);
        Flat vs = Flat.of(v);
        Flat gs = Flat.of(gradOut);
        Flat ls = Flat.of(lse);
        Flat ds = Flat.of(delta);
        Flat gq = Flat.of(gradQ);
        Flat gk = Flat.of(gradK);
        Flat gv = Flat.of(gradV);
        int d = h.d();
        int t = h.t();
        CpuLoops.rows(h.batch() * h.hq() * t, row -> {
            long kv = h.kvHead(row / t) * t;
            int i = (int) (row % t);
            double[] qi = qs.read(row * d, new double[d]);
            double[] gi = gs.read(row * d, new double[d]);
            double[] dq = new double[d];
            double[] kj = new double[d];
            double[] vj = new double[d];
            for (int j = h.first(i, window); j <= i; j++) {
                ks.read((kv + j) * d, kj);
                vs.read((kv + j) * d, vj);
                double p = Math.exp(scale * dot(qi, kj) - ls.get(row));
                double dS = p * (dot(gi, vj) - ds.get(row)) * scale;
                for (int c = 0; c < d; c++) {
                    dq[c] += dS * kj[c];
                }
            }
            gq.write(row * d, dq);
        });
        long group = h.hq() / h.hkv();
        CpuLoops.rows(h.batch() * h.hkv(), kvHead -> {
            long b = kvHead / h.hkv();
            double[][] dk = new double[t][d];
            double[][] dv = new double[t][d];
            double[] qi = new double[d];
            double[] gi = new double[d];
            double[] kj = new double[d];
            double[] vj = new double[d];
            for (long g = 0; g < group; g++) {
                long bh = b * h.hq() + (kvHead % h.hkv()) * group + g;
                for (int i = 0; i < t; i++) {
                    long row = bh * t + i;
                    qs.read(row * d, qi);
                    gs.read(row * d, gi);
                    for (int j = h.first(i, window); j <= i; j++) {
                        ks.read((kvHead * t + j) * d, kj);
                        vs.read((kvHead * t + j) * d, vj);
                        double p = Math.exp(scale * dot(qi, kj) - ls.get(row));
                        double dS = p * (dot(gi, vj) - ds.get(row)) * scale;
                        for (int c = 0; c < d; c++) {
                            dv[j][c] += p * gi[c];
                            dk[j][c] += dS * qi[c];
                        }
                    }
                }
            }
            for (int j = 0; j < t; j++) {
                gk.write((kvHead * t + j) * d, dk[j]);
                gv.write((kvHead * t + j) * d, dv[j]);
            }
        });
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int c = 0; c < a.length; c++) {
            s += a[c] * b[c];
        }
        return s;
    }
}

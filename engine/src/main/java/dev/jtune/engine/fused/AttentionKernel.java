package dev.jtune.engine.fused;

import dev.jtune.engine.DType;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.FlashKernels;
import dev.jtune.engine.cuda.FlashWgmmaKernels;
import dev.jtune.engine.cuda.SoftmaxKernels;

/**
 * Causal attention's kernels ({@code ops.Attention} is the op): the fused path (one kernel forward, two backward, and
 * the rule for where it runs) and the blocked path's row kernels (the masked softmax of a block of scores, its
 * backward, and the row dot product both paths' backward needs). Cpu references, cuda launchers (kernels/flash.cu
 * through {@link FlashKernels}, kernels/softmax.cu through {@link SoftmaxKernels}) and the meta rule, registered once
 * as {@link #OP}.
 *
 * <p>Unless said otherwise tensors are contiguous and statistics (scores, lse, delta, gradient sums) F32, or F64 next
 * to F64 inputs; the fused path's q, k, v, output and their gradients may also be tokens-major
 * ({@link #takesTokensMajor}).
 */
public interface AttentionKernel {

    /**
     * Whether {@link #fusedForward} runs here in one kernel for q of {@code dtype} and head size {@code headDim}; when
     * not, the attention op runs its blocked path (products and {@link #maskedSoftmax} per query block). The meta
     * device answers as the cuda device does ({@link Cuda#fused}), so that it predicts the same allocations.
     */
    boolean hasFused(DType dtype, long headDim);

    /**
     * Whether {@link #fusedForward} and {@link #fusedBackward} also take operands tokens-major ([B, T, H, D] memory
     * viewed as [B, H, T, D], {@link FlashKernels#tokensMajor}: the projections' layout, read and written without a
     * transposing copy); else every operand is contiguous. The meta device answers as the cuda device does.
     */
    default boolean takesTokensMajor() {
        return false;
    }

    /** Whether t [B, H, T, D] is tokens-major ({@link FlashKernels#tokensMajor}). */
    static boolean tokensMajor(Tensor t) {
        return FlashKernels.tokensMajor(t);
    }

    /**
     * Whole causal attention in one call. q [B, Hq, T, D], k and v [B, Hkv, T, D] of one float dtype; query head h
     * reads key/value head {@code h / (Hq / Hkv)}; key j is visible to query i when {@code j <= i} and, when
     * {@code window > 0}, {@code i - j < window}. out [B, Hq, T, D] in q's dtype = softmax over the visible keys of
     * {@code scale q.k}, times v; lse [B, Hq, T] = log sum over visible keys of exp(scale q.k).
     */
    default void fusedForward(Tensor q, Tensor k, Tensor v, long window, double scale, Tensor out, Tensor lse) {
        fusedForward(q, k, v, null, null, window, scale, out, lse);
    }

    /**
     * {@link #fusedForward(Tensor, Tensor, Tensor, long, double, Tensor, Tensor)} over packed rows: segments (null:
     * none, the unmasked kernels) and groups (null: none) I32 [B, T] contiguous, with the visibility rule of
     * {@code ops.AttentionMask}. A query that sees no key gets out 0 and lse -inf.
     */
    void fusedForward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, long window, double scale, Tensor out,
                      Tensor lse);

    /**
     * Backward of {@link #fusedForward}: with {@code p = exp(scale q.k - lse)} on visible pairs,
     * {@code gradV = p^T gradOut}, {@code dS = p (gradOut.v - delta) scale}, {@code gradQ = dS k},
     * {@code gradK = dS^T q}; delta [B, Hq, T] is the row dot product of gradOut and out. gradQ, gradK, gradV in the
     * inputs' dtype, each fully written (gradK and gradV sum over a key/value head's query heads).
     */
    default void fusedBackward(Tensor q, Tensor k, Tensor v, Tensor gradOut, Tensor lse, Tensor delta, long window,
                               double scale, Tensor gradQ, Tensor gradK, Tensor gradV) {
        fusedBackward(q, k, v, null, null, gradOut, lse, delta, window, scale, gradQ, gradK, gradV);
    }

    /** The backward of the packed-row forward (segments, groups as there; null: none). */
    void fusedBackward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse, Tensor delta,
                       long window, double scale, Tensor gradQ, Tensor gradK, Tensor gradV);

    /**
     * The masked softmax of one block of attention scores. scores [R, C]: row r is query position
     * {@code rowStart + r % rowsPerHead} (rows of several heads may be stacked, {@code rowsPerHead} each), column c is
     * key position {@code colStart + c}. Key k is visible to query q when {@code k <= q} and, when {@code window > 0},
     * {@code q - k < window}. probs [R, C] (any float dtype) = exp(scale * s - lse) on visible entries, 0 elsewhere;
     * lse [R] = log sum over visible of exp(scale * s) (-inf when none is visible, and then the row of probs is 0).
     * When {@code lseIn}, lse is read (saved by the forward) instead of written.
     */
    default void maskedSoftmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, double scale,
                               Tensor probs, Tensor lse, boolean lseIn) {
        maskedSoftmax(scores, rowStart, rowsPerHead, colStart, window, null, null, scale, probs, lse, lseIn);
    }

    /**
     * The same over a packed row: segments and groups I32 [T] contiguous (the row's, indexed by position; null: none),
     * and key k is visible to query q by the rule of {@code ops.AttentionMask}.
     */
    void maskedSoftmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, Tensor segments,
                       Tensor groups, double scale, Tensor probs, Tensor lse, boolean lseIn);

    /**
     * {@code gradScores[r, c] = scale * probs[r, c] * (gradProbs[r, c] - delta[r])}; probs [R, C] (any float dtype),
     * gradProbs [R, C] and delta [R] statistics, gradScores [R, C] (any float dtype); gradScores may be probs (the
     * attention op overwrites the probabilities with their gradient to save memory).
     */
    void maskedSoftmaxBackward(Tensor probs, Tensor gradProbs, Tensor delta, double scale, Tensor gradScores);

    /** {@code out[r] = sum_c a[r, c] * b[r, c]} in fp32; a, b [R, C] of one float dtype; out [R] (attention's delta). */
    void rowDot(Tensor a, Tensor b, Tensor out);

    FusedOp<AttentionKernel> OP = FusedOp.of("attention", new Cpu(), Cuda::new, new Meta());

    static AttentionKernel on(Tensor t) {
        return OP.on(t);
    }

    /**
     * The references, in double: the fused path written as plainly as the definition (that of kernels/flash.cu), every
     * output rounded once on store. The cpu runs the blocked path unless {@code -Djtune.cpu.fusedAttention=true}
     * (read at each call), which routes the op through the fused path so that its code (delta, alignment, allocations)
     * runs without a GPU.
     */
    final class Cpu implements AttentionKernel {
        private Cpu() {
        }

        @Override
        public boolean hasFused(DType dtype, long headDim) {
            return Boolean.getBoolean("jtune.cpu.fusedAttention");
        }

        /** As the cuda kernels: so that the op's fused path runs here with the same layouts and allocations. */
        @Override
        public boolean takesTokensMajor() {
            return true;
        }

        /** The rows of a [B, H, T, D] operand, heads-major or tokens-major: row i of head bh read or written whole. */
        private record HeadRows(Flat flat, long heads, long t, int d, boolean tokens) {
            static HeadRows of(Tensor x) {
                return new HeadRows(Flat.of(x), x.dim(1), x.dim(2), (int) x.dim(3), AttentionKernel.tokensMajor(x));
            }

            long at(long bh, long i) {
                return tokens ? ((bh / heads) * t + i) * heads * d + (bh % heads) * d : (bh * t + i) * d;
            }

            double[] read(long bh, long i, double[] into) {
                return flat.read(at(bh, i), into);
            }

            void write(long bh, long i, double[] values) {
                flat.write(at(bh, i), values);
            }
        }

        private record Heads(long batch, long hq, long hkv, int t, int d) {
            static Heads of(Tensor q, Tensor k) {
                return new Heads(q.dim(0), q.dim(1), k.dim(1), (int) q.dim(2), (int) q.dim(3));
            }

            long kvHead(long bh) {
                return (bh / hq) * hkv + (bh % hq) / (hq / hkv);
            }
        }

        /**
         * Which keys a query sees: the causal rule with the window, and over packed rows the rule of
         * {@code ops.AttentionMask} (segments and groups [B, T], or null). {@link #first} and {@link #last} bound the keys
         * to scan (all of the row when there are groups: a group reaches past the query); within them {@link #visible}
         * decides, and is always true without segments, so the unmasked loops are the plain causal ones.
         */
        private record Visibility(long window, Flat segments, Flat groups, int t) {
            static Visibility of(long window, Tensor segments, Tensor groups, int t) {
                if (segments == null && groups != null) {
                    throw new IllegalArgumentException("attention: groups need segments");
                }
                return new Visibility(window, segments == null ? null : Flat.of(segments), groups == null ? null : Flat.of(groups), t);
            }

            int first(int i) {
                return groups == null && window > 0 ? (int) Math.max(0, i - window + 1) : 0;
            }

            int last(int i) {
                return groups == null ? i : t - 1;
            }

            /** Key j to query i of batch row b, for j in [first(i), last(i)]. */
            boolean visible(long b, int i, int j) {
                if (segments == null) {
                    return true;
                }
                long si = segments.getLong(b * t + i);
                if (si < 0 || segments.getLong(b * t + j) != si) {
                    return false;
                }
                if (j <= i && (window <= 0 || i - j < window)) {
                    return true;
                }
                if (groups == null) {
                    return false;
                }
                long gi = groups.getLong(b * t + i);
                return gi >= 0 && groups.getLong(b * t + j) == gi;
            }
        }

        /**
         * out = softmax(scale q k^T, masked) v; lse = log sum exp over the visible keys (a query that sees none: out 0,
         * lse -inf). Query rows in parallel.
         */
        @Override
        public void fusedForward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, long window, double scale,
                                 Tensor out, Tensor lse) {
            Heads h = Heads.of(q, k);
            Visibility vis = Visibility.of(window, segments, groups, h.t());
            HeadRows qs = HeadRows.of(q);
            HeadRows ks = HeadRows.of(k);
            HeadRows vs = HeadRows.of(v);
            HeadRows os = HeadRows.of(out);
            Flat ls = Flat.of(lse);
            int d = h.d();
            CpuLoops.rows(h.batch() * h.hq() * h.t(), row -> {
                long bh = row / h.t();
                long b = bh / h.hq();
                int i = (int) (row % h.t());
                long kv = h.kvHead(bh);
                double[] qi = qs.read(bh, i, new double[d]);
                int lo = vis.first(i);
                int hi = vis.last(i);
                double[] s = new double[hi - lo + 1];
                boolean[] seen = new boolean[s.length];
                double max = Double.NEGATIVE_INFINITY;
                double[] kj = new double[d];
                for (int j = lo; j <= hi; j++) {
                    if (vis.visible(b, i, j)) {
                        seen[j - lo] = true;
                        ks.read(kv, j, kj);
                        s[j - lo] = scale * dot(qi, kj);
                        max = Math.max(max, s[j - lo]);
                    }
                }
                double[] o = new double[d];
                if (max == Double.NEGATIVE_INFINITY) { // nothing visible (padding)
                    os.write(bh, i, o);
                    ls.set(row, Double.NEGATIVE_INFINITY);
                    return;
                }
                double sum = 0;
                for (int j = 0; j < s.length; j++) {
                    if (seen[j]) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                }
                double[] vj = new double[d];
                for (int j = lo; j <= hi; j++) {
                    if (!seen[j - lo]) {
                        continue;
                    }
                    vs.read(kv, j, vj);
                    double p = s[j - lo] / sum;
                    for (int c = 0; c < d; c++) {
                        o[c] += p * vj[c];
                    }
                }
                os.write(bh, i, o);
                ls.set(row, max + Math.log(sum));
            });
        }

        /**
         * With {@code p = exp(scale q.k - lse)} on visible pairs: dV += p dO, dS = p (dO.v - delta) scale, dQ += dS k,
         * dK += dS q. Query rows run in parallel for dQ; key/value heads for dK, dV.
         */
        @Override
        public void fusedBackward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse,
                                  Tensor delta, long window, double scale, Tensor gradQ, Tensor gradK, Tensor gradV) {
            Heads h = Heads.of(q, k);
            Visibility vis = Visibility.of(window, segments, groups, h.t());
            HeadRows qs = HeadRows.of(q);
            HeadRows ks = HeadRows.of(k);
            HeadRows vs = HeadRows.of(v);
            HeadRows gs = HeadRows.of(gradOut);
            Flat ls = Flat.of(lse);
            Flat ds = Flat.of(delta);
            HeadRows gq = HeadRows.of(gradQ);
            HeadRows gk = HeadRows.of(gradK);
            HeadRows gv = HeadRows.of(gradV);
            int d = h.d();
            int t = h.t();
            CpuLoops.rows(h.batch() * h.hq() * t, row -> {
                long b = row / t / h.hq();
                long bh = row / t;
                long kv = h.kvHead(bh);
                int i = (int) (row % t);
                double[] qi = qs.read(bh, i, new double[d]);
                double[] gi = gs.read(bh, i, new double[d]);
                double[] dq = new double[d];
                double[] kj = new double[d];
                double[] vj = new double[d];
                for (int j = vis.first(i); j <= vis.last(i); j++) {
                    if (!vis.visible(b, i, j)) {
                        continue;
                    }
                    ks.read(kv, j, kj);
                    vs.read(kv, j, vj);
                    double p = Math.exp(scale * dot(qi, kj) - ls.get(row));
                    double dS = p * (dot(gi, vj) - ds.get(row)) * scale;
                    for (int c = 0; c < d; c++) {
                        dq[c] += dS * kj[c];
                    }
                }
                gq.write(bh, i, dq);
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
                        qs.read(bh, i, qi);
                        gs.read(bh, i, gi);
                        for (int j = vis.first(i); j <= vis.last(i); j++) {
                            if (!vis.visible(b, i, j)) {
                                continue;
                            }
                            ks.read(kvHead, j, kj);
                            vs.read(kvHead, j, vj);
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
                    gk.write(kvHead, j, dk[j]);
                    gv.write(kvHead, j, dv[j]);
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

        /**
         * The visible keys of a row are the contiguous run {@code max(0, q - window + 1) <= k <= q} (no lower bound when
         * window <= 0); over a packed row, those of them (or with groups, of all columns) that the segments and groups
         * let it see. Without lseIn, {@code lse = m + log sum exp(scale s - m)} over the visible entries (m their max),
         * -inf when none is visible or all are -inf. probs = {@code exp(scale s - lse)} on visible entries and 0
         * elsewhere, and 0 on the whole row when lse is -inf (also a read one). Rows run in parallel, each read whole
         * before it is written.
         */
        @Override
        public void maskedSoftmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, Tensor segments,
                                  Tensor groups, double scale, Tensor probs, Tensor lse, boolean lseIn) {
            int c = CpuLoops.lastDim("attentionSoftmax", scores);
            Flat ss = Flat.of(scores);
            Flat ps = Flat.of(probs);
            Flat ls = Flat.of(lse);
            // the row's ids: batch row 0 of a [1, T] visibility
            Visibility vis = Visibility.of(window, segments, groups, segments == null ? 0 : (int) segments.numel());
            CpuLoops.rows(scores.numel() / Math.max(c, 1), r -> {
                long q = rowStart + r % rowsPerHead;
                // columns to scan [lo, hi)
                long hi = groups != null ? c : Math.clamp(q - colStart + 1, 0, c);
                long lo = groups == null && window > 0 ? Math.clamp(q - window + 1 - colStart, 0, hi) : 0;
                boolean[] seen = new boolean[c];
                for (int j = (int) lo; j < hi; j++) {
                    seen[j] = vis.visible(0, (int) q, (int) (colStart + j));
                }
                double[] z = ss.read(r * c, new double[c]);
                double l;
                if (lseIn) {
                    l = ls.get(r);
                } else {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = (int) lo; j < hi; j++) {
                        if (seen[j]) {
                            max = Math.max(max, scale * z[j]);
                        }
                    }
                    if (max == Double.NEGATIVE_INFINITY || Double.isNaN(max)) {
                        l = max;
                    } else {
                        double sum = 0;
                        for (int j = (int) lo; j < hi; j++) {
                            if (seen[j]) {
                                sum += Math.exp(scale * z[j] - max);
                            }
                        }
                        l = max + Math.log(sum);
                    }
                    ls.set(r, l);
                }
                double[] p = new double[c];
                if (l != Double.NEGATIVE_INFINITY) {
                    for (int j = (int) lo; j < hi; j++) {
                        if (seen[j]) {
                            p[j] = Math.exp(scale * z[j] - l);
                        }
                    }
                }
                ps.write(r * c, p);
            });
        }

        /** Element by element. */
        @Override
        public void maskedSoftmaxBackward(Tensor probs, Tensor gradProbs, Tensor delta, double scale, Tensor gradScores) {
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

        /** In double in ascending c, stored once. */
        @Override
        public void rowDot(Tensor a, Tensor b, Tensor out) {
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

    /**
     * kernels/flash.cu (FlashAttention-2 on mma.sync, through {@link FlashKernels}) for the fused path,
     * kernels/softmax.cu's row kernels (through {@link SoftmaxKernels}, shared with the softmax op) for the blocked one.
     */
    final class Cuda implements AttentionKernel {
        /** The fused kernels can be switched off (to compare with the blocked path, or to rule them out). */
        private static final boolean FUSED = Boolean.parseBoolean(System.getProperty("jtune.cuda.fusedAttention", "true"));
        /**
         * Forward and backward on Hopper's wgmma (kernels/flash_wgmma.cu) where they apply (bf16 heads of 256, sm_90),
         * by default since the seventeenth session (the GPU suite green on them; the 270M QLoRA 8K step +12.5%, 32K
         * +29% on an H100); {@code -Djtune.cuda.wgmmaAttention=false} goes back to the mma.sync kernels.
         */
        private static final boolean WGMMA = Boolean.parseBoolean(System.getProperty("jtune.cuda.wgmmaAttention", "true"));

        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        /**
         * Where the fused kernels run on cuda: bf16/f16 heads of size 32, 64, 128 or 256, unless
         * {@code -Djtune.cuda.fusedAttention=false}. The one rule of the cuda device and of the meta device's prediction.
         */
        public static boolean fused(DType dtype, long headDim) {
            return FUSED && FlashKernels.supports(dtype, headDim);
        }

        private FlashKernels flash() {
            return gpu.family(FlashKernels.class, b -> new FlashKernels(b.compiler(), b.stream()));
        }

        private boolean wgmmaApplies(Tensor q) {
            return WGMMA && FlashWgmmaKernels.supports(gpu.compiler().arch(), q.dtype(), q.dim(3));
        }

        private FlashWgmmaKernels wgmma() {
            return gpu.family(FlashWgmmaKernels.class, b -> new FlashWgmmaKernels(b.compiler(), b.stream()));
        }

        private SoftmaxKernels rows() {
            return gpu.family(SoftmaxKernels.class, b -> new SoftmaxKernels(b.compiler(), b.stream(), b.context()));
        }

        @Override
        public boolean hasFused(DType dtype, long headDim) {
            return fused(dtype, headDim);
        }

        /** Both kernel families (flash.cu, flash_wgmma.cu) take the layout argument. */
        @Override
        public boolean takesTokensMajor() {
            return true;
        }

        @Override
        public void fusedForward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, long window, double scale,
                                 Tensor out, Tensor lse) {
            if (wgmmaApplies(q)) {
                wgmma().forward(q, k, v, segments, groups, window, scale, out, lse);
                return;
            }
            flash().forward(q, k, v, segments, groups, window, scale, out, lse);
        }

        @Override
        public void fusedBackward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse,
                                  Tensor delta, long window, double scale, Tensor gradQ, Tensor gradK, Tensor gradV) {
            if (wgmmaApplies(q)) {
                wgmma().backward(q, k, v, segments, groups, gradOut, lse, delta, window, scale, gradQ, gradK, gradV, flash());
                return;
            }
            flash().backward(q, k, v, segments, groups, gradOut, lse, delta, window, scale, gradQ, gradK, gradV);
        }

        @Override
        public void maskedSoftmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, Tensor segments,
                                  Tensor groups, double scale, Tensor probs, Tensor lse, boolean lseIn) {
            rows().attentionSoftmax(scores, rowStart, rowsPerHead, colStart, window, segments, groups, scale, probs, lse, lseIn);
        }

        @Override
        public void maskedSoftmaxBackward(Tensor probs, Tensor gradProbs, Tensor delta, double scale, Tensor gradScores) {
            rows().attentionSoftmaxBackward(probs, gradProbs, delta, scale, gradScores);
        }

        @Override
        public void rowDot(Tensor a, Tensor b, Tensor out) {
            rows().rowDot(a, b, out);
        }
    }

    /**
     * The cuda device's rule for where the fused path runs, and the fused backward's workspace (the dK/dV shares of
     * long spans of grouped heads; with {@link FlashWgmmaKernels#dqInDkv} the fp32 dQ, as on Hopper), allocated by the
     * launchers' own functions {@link FlashKernels#backwardWorkspace} and {@link FlashWgmmaKernels#dqWorkspace}.
     */
    final class Meta implements AttentionKernel {
        private Meta() {
        }

        @Override
        public boolean hasFused(DType dtype, long headDim) {
            return Cuda.fused(dtype, headDim);
        }

        @Override
        public boolean takesTokensMajor() {
            return true;
        }

        @Override
        public void fusedForward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, long window, double scale,
                                 Tensor out, Tensor lse) {
            // no workspace
        }

        /** The same workspace with or without a mask: the split depends on shapes and window only. */
        @Override
        public void fusedBackward(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor groups, Tensor gradOut, Tensor lse,
                                  Tensor delta, long window, double scale, Tensor gradQ, Tensor gradK, Tensor gradV) {
            try (Scope shares = FlashKernels.openWorkspace()) {
                FlashKernels.backwardWorkspace(q, k, window);
                FlashWgmmaKernels.dqWorkspace(q);
            }
        }

        @Override
        public void maskedSoftmax(Tensor scores, long rowStart, long rowsPerHead, long colStart, long window, Tensor segments,
                                  Tensor groups, double scale, Tensor probs, Tensor lse, boolean lseIn) {
        }

        @Override
        public void maskedSoftmaxBackward(Tensor probs, Tensor gradProbs, Tensor delta, double scale, Tensor gradScores) {
        }

        @Override
        public void rowDot(Tensor a, Tensor b, Tensor out) {
        }
    }
}

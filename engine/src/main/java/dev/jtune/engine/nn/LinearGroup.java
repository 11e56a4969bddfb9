package dev.jtune.engine.nn;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Tensor;

import java.util.List;

/**
 * {@link Linear}s that read one input, computed as one product: {@code y = x [W_1; ...; W_n]^T}, [rows, out_1 + ... +
 * out_n], each part's adapter adding its update into the part's columns (Gemma's gate/up, and q/k/v, whose heads are
 * then split off the output as views by {@code Ops.split}). One GEMM instead of n in
 * forward and one in backward ({@code dX = dY [W_1; ...; W_n]}, summed in fp32 once instead of rounded between the
 * parts), at shapes where a GEMM's efficiency grows with its width.
 *
 * <p>It fuses QLoRA's frozen base: every weight NF4 in one workspace, no bias, every adapter adding into columns
 * ({@link Adapter#addsIntoColumns}), a 2-D input. The weights then dequantize into consecutive rows of the workspace
 * (reserved for the whole group when they are quantized), before the forward product and again before the backward
 * one. Otherwise {@link #fused} is false and callers run the parts apart, as they would without the group. Off unless
 * {@code -Djtune.fusedProjections=true} (until measured on a GPU).
 *
 * <p>Not a module: the parts stay the named modules they are (HF's names, loading, adapters, export); the group only
 * composes their forward.
 */
public final class LinearGroup {
    /** The switch, read at each use so a test can compare both ways in one process. */
    static final String PROPERTY = "jtune.fusedProjections";

    private final List<Linear> parts;
    private final long inFeatures;
    private final long outFeatures;
    private final DequantWorkspace workspace;

    /** Parts of one input size dequantizing into one workspace, in column order. */
    public LinearGroup(Linear... parts) {
        if (parts.length == 0) {
            throw new IllegalArgumentException("LinearGroup: no parts");
        }
        this.parts = List.of(parts);
        this.inFeatures = parts[0].inFeatures();
        this.workspace = parts[0].workspace();
        long out = 0;
        for (Linear l : parts) {
            if (l.inFeatures() != inFeatures || l.workspace() != workspace) {
                throw new ShapeException("LinearGroup: parts must read one input through one dequantization workspace, got " + this.parts);
            }
            out += l.outFeatures();
        }
        this.outFeatures = out;
        if (enabled()) {
            workspace.plan(out * inFeatures);
        }
    }

    /** Whether fused products are switched on ({@code -Djtune.fusedProjections=true}). */
    public static boolean enabled() {
        return Boolean.getBoolean(PROPERTY);
    }

    public List<Linear> parts() {
        return parts;
    }

    /** out_1 + ... + out_n: the fused output's width. */
    public long outFeatures() {
        return outFeatures;
    }

    /** Whether {@link #forward} runs as one product for {@code x} now (see the class comment). */
    public boolean fused(Tensor x) {
        if (!enabled() || x.rank() != 2 || x.dtype() != workspace.dtype() || workspace.capacity() < outFeatures * inFeatures) {
            return false;
        }
        for (Linear l : parts) {
            if (!l.isQuantized() || l.biasParameter() != null || l.adapter() != null && !l.adapter().addsIntoColumns(x.dtype())) {
                return false;
            }
        }
        return true;
    }

    /**
     * The parts' outputs side by side, [rows, outFeatures]: one product when {@link #fused}, else each part's own
     * forward, concatenated.
     */
    public Tensor forward(Tensor x) {
        if (!fused(x)) {
            return Ops.concat(-1, parts.stream().map(l -> l.forward(x)).toArray(Tensor[]::new));
        }
        List<Nf4Tensor> weights = parts.stream().map(l -> l.weightParameter().quantizedValue()).toList();
        // dX = g [W_1; ...; W_n], added into x's gradient so far when another product already gave one
        Tensor y = Autograd.op("nf4 linear group", () -> x.matmul(dequantized(weights).transpose(0, 1)),
                g -> new Tensor[] {Ops.inputGradient(x, g, dequantized(weights), Transpose.B, 1.0)}, x);
        long column = 0;
        for (Linear l : parts) {
            if (l.adapter() != null) {
                y = l.adapter().addTo(y, column, x);
            }
            column += l.outFeatures();
        }
        return y;
    }

    /**
     * Each part's output for x, apart (as each part's own forward gives it), except that where every part has a
     * low-rank adapter that can share x ({@link Adapter#lowRank}, {@link LowRankGroup}: {@code -Djtune.sharedLoraDown=true})
     * their down products are one.
     */
    public Tensor[] forwardEach(Tensor x) {
        java.util.List<Adapter.LowRank> updates = LowRankGroup.enabled() ? lowRanks(x) : null;
        if (updates == null) {
            return parts.stream().map(l -> l.forward(x)).toArray(Tensor[]::new);
        }
        Tensor[] ys = parts.stream().map(l -> l.baseForward(x)).toArray(Tensor[]::new);
        for (Tensor y : ys) {
            if (y.dtype() != updates.getFirst().a().dtype() || !y.isContiguous()) { // the updates could not go into it
                Tensor[] out = new Tensor[ys.length];
                for (int i = 0; i < ys.length; i++) {
                    out[i] = parts.get(i).withUpdate(ys[i], x);
                }
                return out;
            }
        }
        return LowRankGroup.addTo(ys, x, updates);
    }

    /** Every part's low-rank update for x, when they all have one and can share x's down product; else null. */
    private java.util.List<Adapter.LowRank> lowRanks(Tensor x) {
        if (parts.stream().anyMatch(l -> l.adapter() == null)) { // before any adapter casts its weights for nothing
            return null;
        }
        java.util.List<Adapter.LowRank> updates = new java.util.ArrayList<>();
        for (Linear l : parts) {
            java.util.Optional<Adapter.LowRank> u = l.adapter().lowRank(x);
            if (u.isEmpty()) {
                return null;
            }
            updates.add(u.get());
        }
        return LowRankGroup.applies(x, updates) ? updates : null;
    }

    /** The weights dequantized one under the other into the workspace: [outFeatures, inFeatures]. */
    private Tensor dequantized(List<Nf4Tensor> weights) {
        Tensor w = workspace.view(Shape.of(outFeatures, inFeatures));
        long row = 0;
        for (Nf4Tensor q : weights) {
            long rows = q.shape().dim(0);
            Nf4.dequantizeInto(q, w.slice(0, row, row + rows));
            row += rows;
        }
        return w;
    }

    @Override
    public String toString() {
        return "LinearGroup" + parts;
    }
}

package dev.jtune.engine.nn;

import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.engine.quant.Nf4Tensor;

import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code y = x W^T (+ b) (+ adapter(x))} with W [out, in] as HF stores it, dense or NF4. The one place where a weight's
 * dequantization, the base product and an adapter's update are composed: an NF4 weight is dequantized into the
 * shared {@link DequantWorkspace} right before the forward product and again before the backward one, and the
 * adapter (LoRA) adds its update to the fresh product.
 *
 * <p>Parameters: {@code weight} [out, in] and, with {@link Bias#WITH}, {@code bias} [out].
 */
public final class Linear extends Module {
    /** Whether the projection adds a bias. */
    public enum Bias { NONE, WITH }

    private final Parameter weight;
    private final Parameter bias;
    private final DequantWorkspace workspace;
    private Adapter adapter;

    /** A projection from {@code in} to {@code out} features; its NF4 weight (once quantized) dequantizes into {@code workspace}. */
    public Linear(long in, long out, Bias bias, DequantWorkspace workspace) {
        this.weight = parameter("weight", Shape.of(out, in));
        this.bias = bias == Bias.WITH ? parameter("bias", Shape.of(out)) : null;
        this.workspace = java.util.Objects.requireNonNull(workspace, "workspace");
    }

    /** The weight's shape [out, in] (no dequantization). */
    public Shape shape() {
        return weight.shape();
    }

    public long inFeatures() {
        return weight.shape().dim(1);
    }

    public long outFeatures() {
        return weight.shape().dim(0);
    }

    public Parameter weightParameter() {
        return weight;
    }

    /** The bias parameter, or null without one. */
    public Parameter biasParameter() {
        return bias;
    }

    /** The workspace its NF4 weight dequantizes into. */
    DequantWorkspace workspace() {
        return workspace;
    }

    public boolean isQuantized() {
        return weight.isQuantized();
    }

    /** The NF4 weight (only when {@link #isQuantized()}). */
    public Nf4Tensor quantizedWeight() {
        return weight.quantized();
    }

    /** The weight [out, in]: the dense tensor itself, or an NF4 weight dequantized into a new tensor of the current scope. */
    public Tensor weight() {
        return weight.isQuantized() ? Nf4.dequantize(weight.quantized(), workspace.dtype()) : weight.tensor();
    }

    @Override
    protected Tensor denseValue(Parameter p) {
        return p == weight ? weight() : p.tensor();
    }

    /** The attached adapter, or null. */
    public Adapter adapter() {
        return adapter;
    }

    /** Attaches {@code adapter}, replacing any attached one; returns this. */
    public Linear attach(Adapter adapter) {
        this.adapter = java.util.Objects.requireNonNull(adapter, "adapter");
        return this;
    }

    /** Removes the adapter; returns the one that was attached (or null). */
    public Adapter detach() {
        Adapter a = adapter;
        adapter = null;
        return a;
    }

    /** y = x W^T (+ b), then the adapter's update. */
    public Tensor forward(Tensor x) {
        return withUpdate(baseForward(x), x);
    }

    /** y (the base output for x, consumed) with the adapter's update for x, if there is an adapter. */
    Tensor withUpdate(Tensor y, Tensor x) {
        return adapter == null ? y : adapter.addTo(y, x);
    }

    /** x W^T (+ bias), without the adapter's update: a fresh product ({@link LinearGroup} adds the updates itself). */
    Tensor baseForward(Tensor x) {
        Tensor y = weight.isQuantized() ? nf4Product(weight.quantizedValue(), x) : x.matmul(weight.value().transpose(0, 1));
        return bias == null ? y : y.add(bias.value());
    }

    /**
     * x W^T for a frozen NF4 weight: the weight is dequantized into the workspace before the forward product and again
     * before the backward one (dX = dY W); nothing of it is saved between them.
     */
    private Tensor nf4Product(Nf4Tensor q, Tensor x) {
        Shape shape = q.shape();
        // dX = g W, added into x's gradient so far when another product already gave one (Ops.inputGradient)
        return Autograd.op("nf4 linear", () -> x.matmul(dequantized(q, shape).transpose(0, 1)),
                g -> new Tensor[] {Ops.inputGradient(x, g, dequantized(q, shape), Transpose.B, 1.0)}, x);
    }

    private Tensor dequantized(Nf4Tensor q, Shape shape) {
        Tensor w = workspace.view(shape);
        Nf4.dequantizeInto(q, w);
        return w;
    }

    // ------------------------------------------------------------------ changing the weight

    /** Quantizes this weight to NF4 (see {@link #quantize(List, Nf4Scales)}). */
    public void quantize(Nf4Scales scales) {
        quantize(List.of(this), scales);
    }

    /**
     * QLoRA's frozen base: each dense weight is quantized to NF4 (bitsandbytes' semantics, absmax per 64) in the
     * current scope, counted as QUANTIZED_WEIGHTS, and its dense tensor freed; already quantized ones are left as they are.
     * Then each workspace involved is reserved once for its largest weight (one allocation, after the weights).
     */
    public static void quantize(List<Linear> linears, Nf4Scales scales) {
        for (Linear l : linears) { // refused before any weight changes, so a refusal leaves no half-quantized model
            if (l.weight.isTrained()) {
                throw new UnsupportedOpException("quantize: the weight " + l.shape() + " requires grad; NF4 weights are frozen");
            }
        }
        Map<DequantWorkspace, Long> largest = new IdentityHashMap<>();
        try (Scope.Entered c = Scope.countAs(MemoryCategory.QUANTIZED_WEIGHTS)) {
            for (Linear l : linears) {
                if (l.weight.isQuantized()) {
                    continue;
                }
                Tensor w = l.weight.tensor();
                l.weight.set(Nf4.quantize(w, scales));
                largest.merge(l.workspace, w.numel(), Math::max);
                w.close();
            }
        }
        largest.forEach(DequantWorkspace::reserve);
    }

    /**
     * Replaces the weight by a dense one of the same shape (merging LoRA into a 4-bit base gives 16-bit weights, as
     * peft's merge_and_unload does). An NF4 weight is freed; a dense one is left to its scope.
     */
    public void replaceWeight(Tensor dense) {
        Nf4Tensor old = weight.isQuantized() ? weight.quantized() : null;
        weight.set(dense);
        if (old != null) {
            old.close();
        }
    }

    /**
     * {@code W += delta}, summed in fp32 and rounded once to the weight's dtype. A dense weight changes in place; an
     * NF4 weight becomes a dense one of the workspace's dtype, owned by the scope that owned the NF4 weight (the
     * model's), so it lives as long as the weights it replaces whatever scope the caller computes in.
     */
    public void addToWeight(Tensor delta) {
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("linear merge")) {
            Tensor w = weight(); // a dequantized copy, in tmp, for an NF4 weight
            Tensor merged = Ops.add(w.cast(DType.F32), delta.cast(DType.F32)).cast(w.dtype());
            if (weight.isQuantized()) {
                TensorInternals.storage(weight.quantized().codes()).owner().adopt(TensorInternals.storage(merged));
                replaceWeight(merged);
            } else {
                Ops.copyInto(merged, w);
            }
        }
    }

    @Override
    public String toString() {
        return "Linear(" + inFeatures() + " -> " + outFeatures() + (bias != null ? ", bias" : "") + (isQuantized() ? ", NF4" : "")
                + (adapter != null ? ", adapter" : "") + ")";
    }
}

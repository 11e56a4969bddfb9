package dev.jtune.gemma.lora;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import dev.jtune.engine.ops.Dropout;
import dev.jtune.engine.nn.Adapter;

import java.util.function.UnaryOperator;

/**
 * One LoRA pair on a frozen linear module: A [r, in] and B [out, r], trainable (fp32 by default), adding
 * {@code scale * dropout(x) A^T B^T} to the module's output (dropout only while {@code dropout} is active). The two
 * low-rank products run in {@code compute}: the adapter's own dtype is peft's semantics (the input is cast to fp32,
 * the products are fp32); the base's bf16 is what HF's Trainer does under {@code --bf16} (autocast casts the fp32
 * weights to bf16 for the products), and it keeps every [tokens x features] tensor of the adapter in 16 bits.
 */
public record LoraAdapter(String module, Tensor a, Tensor b, double scale, DropoutState dropout, int index, DType compute)
        implements Adapter {

    /** The two low-rank matrices: A [r, in] (down) and B [out, r] (up). */
    public enum Matrix { A, B }

    /** An adapter without dropout, computing in its own dtype. */
    public LoraAdapter(String module, Tensor a, Tensor b, double scale) {
        this(module, a, b, scale, null, 0, a.dtype());
    }

    /** Computing in its own dtype (peft's semantics). */
    public LoraAdapter(String module, Tensor a, Tensor b, double scale, DropoutState dropout, int index) {
        this(module, a, b, scale, dropout, index, a.dtype());
    }

    /** The same adapter (same tensors) computing its products in {@code dtype}. */
    public LoraAdapter computingIn(DType dtype) {
        return new LoraAdapter(module, a, b, scale, dropout, index, dtype);
    }

    /**
     * The input is cast to the compute dtype and so are the weights (no copy when they already have it; inside a
     * checkpoint the weights' casts are kept for the recomputation, {@link Autograd#castKept}); the scale
     * applies to the rank-r intermediate, the smallest tensor; the result is cast back to x's dtype.
     */
    @Override
    public Tensor apply(Tensor x) {
        return Ops.matmul(down(x), Autograd.castKept(b, compute), Transpose.B).cast(x.dtype());
    }

    /**
     * With the products in y's dtype the second one accumulates into y (the base output) instead of being added
     * afterwards: one pass over the [tokens x out] output fewer, and no tensor of that size for the update
     * (H100, Gemma 3 270M QLoRA at 8,192 tokens: 89.9-91.9 ms a step against 92.5-95.3 ms).
     */
    @Override
    public Tensor addTo(Tensor y, Tensor x) {
        if (compute != y.dtype() || y.rank() != 2 || !y.isContiguous()) {
            return Adapter.super.addTo(y, x);
        }
        return Ops.addMatmulInto(y, down(x), Autograd.castKept(b, compute), Transpose.B);
    }

    /** Products in the fused output's dtype: the update accumulates into its columns as {@link #addTo(Tensor, Tensor)} does. */
    @Override
    public boolean addsIntoColumns(DType outputType) {
        return compute == outputType;
    }

    @Override
    public Tensor addTo(Tensor y, long column, Tensor x) {
        if (!addsIntoColumns(y.dtype()) || y.rank() != 2 || !y.isContiguous()) {
            return Adapter.super.addTo(y, column, x);
        }
        return Ops.addMatmulInto(y, column, down(x), Autograd.castKept(b, compute), Transpose.B);
    }

    /** Without dropout drawn now: A's and B's casts and the scale, for a group sharing x's down product. */
    @Override
    public java.util.Optional<LowRank> lowRank(Tensor x) {
        if (dropout != null && dropout.active()) {
            return java.util.Optional.empty();
        }
        return java.util.Optional.of(new LowRank(Autograd.castKept(a, compute), Autograd.castKept(b, compute), scale));
    }

    /**
     * The scaled rank-r intermediate. With dropout, the dropped-out input [tokens, in] is not kept for A's gradient but
     * drawn again in backward (the mask is a function of the seed): at 32K tokens of Gemma 3 4B the seven adapters'
     * copies are 1.5 GiB a layer. Only the dropout is redone, not the product (as a checkpoint of both would).
     */
    private Tensor down(Tensor x) {
        if (dropout != null && dropout.active()) {
            return droppedProduct(x, Dropout.mask(x, dropout.p(), dropout.seedFor(index)));
        }
        return product(x);
    }

    /** The scale rides on the product (the GEMM's alpha, forward and backward): no pass of its own over [tokens, r]. */
    private Tensor product(Tensor in) {
        return Ops.matmul(in.cast(compute), Autograd.castKept(a, compute), Transpose.B, scale);
    }

    /**
     * {@code scale * drop(x) A^T} keeping x (the layer has it anyway) instead of drop(x): backward draws drop(x) again
     * for A's gradient and applies the same mask to x's. The same ops as dropout, then the cast to the compute dtype,
     * then {@link #product}, so the same values bit for bit.
     */
    private Tensor droppedProduct(Tensor x, UnaryOperator<Tensor> drop) {
        Tensor w = Autograd.castKept(a, compute);
        return Autograd.op("lora down (dropout)", () -> {
            Tensor dropped = cast(drop.apply(x), compute);
            try {
                return Ops.matmul(dropped, w, Transpose.B, scale);
            } finally {
                dropped.close();
            }
        }, g -> {
            Tensor gx = null;
            Tensor gw = null;
            if (w.requiresGrad()) {
                // [r, in] = scale g^T drop(x), summed over every row of a batched x (the vision tower's [images, patches, in])
                Tensor dropped = cast(drop.apply(x), compute);
                gw = Ops.weightGradient(rows(g), rows(dropped), w, scale); // null when added into A's own buffer
                dropped.close();
            }
            if (x.requiresGrad()) {
                // dropout's backward is the same mask and 1 / (1 - p), applied in x's dtype after the cast's backward
                Tensor gDropped = cast(Ops.matmul(g, w, Transpose.NONE, scale), x.dtype());
                gx = drop.apply(gDropped);
                gDropped.close();
            }
            return new Tensor[] {gx, gw};
        }, x, w);
    }

    /** t as rows [..., d] -> [n, d] (a view when it can be). */
    private static Tensor rows(Tensor t) {
        return t.rank() == 2 ? t : t.contiguous().reshape(-1, t.dim(-1));
    }

    /**
     * t (a temporary of the op) in {@code dtype}, t freed when converted: each [tokens, in] temporary is closed as soon
     * as it is used, not when backward's scope closes (GiBs a layer at 32K tokens).
     */
    private static Tensor cast(Tensor t, DType dtype) {
        if (t.dtype() == dtype) {
            return t;
        }
        Tensor c = t.cast(dtype);
        t.close();
        return c;
    }

    /** A or B. */
    public Tensor matrix(Matrix m) {
        return m == Matrix.A ? a : b;
    }

    public int rank() {
        return (int) a.dim(0);
    }
}

package dev.jtune.gemma.lora;

import dev.jtune.engine.Ops;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.Dropout;
import dev.jtune.gemma.model.Gemma3Model;

/**
 * One LoRA pair on a frozen linear module: A [r, in] and B [out, r], trainable (fp32 by default), adding
 * {@code scale * dropout(x) A^T B^T} to the module's output (dropout only while {@code dropout} is active).
 */
public record LoraAdapter(String module, Tensor a, Tensor b, double scale, DropoutState dropout, int index)
        implements Gemma3Model.Adapter {

    /** An adapter without dropout. */
    public LoraAdapter(String module, Tensor a, Tensor b, double scale) {
        this(module, a, b, scale, null, 0);
    }

    /**
     * As peft does, the input is cast to the adapter's dtype (fp32 for fp32 adapters on a bf16 base), so the low-rank
     * products and the adapter's gradients are computed in that precision; the result is cast back to x's dtype.
     */
    @Override
    public Tensor apply(Tensor x) {
        Tensor in = dropout != null && dropout.active() ? Dropout.apply(x, dropout.p(), dropout.seedFor(index)) : x;
        Tensor xa = in.cast(a.dtype());
        Tensor down = xa.matmul(a.transpose(0, 1));
        return Ops.matmul(down, b.cast(a.dtype()), false, true).scale(scale).cast(x.dtype());
    }

    public int rank() {
        return (int) a.dim(0);
    }
}

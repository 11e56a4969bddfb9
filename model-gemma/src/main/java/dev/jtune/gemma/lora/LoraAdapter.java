package dev.jtune.gemma.lora;

import dev.jtune.engine.Ops;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.Dropout;
import dev.jtune.gemma.model.Gemma3Model;

/**
 * One LoRA pair on a frozen linear module: A [r, in] and B [out, r], trainable (fp32 by default), adding
 * {@code scale * dropout(x) A^T B^T} to the module's output (dropout only while {@code dropout} is active). The product runs in the activations' dtype; casting the fp32
 * weights is differentiable, so their gradients come back in fp32.
 */
public record LoraAdapter(String module, Tensor a, Tensor b, double scale, DropoutState dropout, int index)
        implements Gemma3Model.Adapter {

    /** An adapter without dropout. */
    public LoraAdapter(String module, Tensor a, Tensor b, double scale) {
        this(module, a, b, scale, null, 0);
    }

    @Override
    public Tensor apply(Tensor x) {
        Tensor in = dropout != null && dropout.active() ? Dropout.apply(x, dropout.p(), dropout.seedFor(index)) : x;
        Tensor down = in.matmul(a.cast(x.dtype()).transpose(0, 1));
        return Ops.matmul(down, b.cast(x.dtype()), false, true).scale(scale);
    }

    public int rank() {
        return (int) a.dim(0);
    }
}

package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.SoftcapKernel;

/** Logit soft-capping, {@code cap * tanh(x / cap)} (Gemma's final and attention logit caps). */
public final class Softcap {
    private Softcap() {
    }

    public static Tensor apply(Tensor x, double cap) {
        Checks.floating("softcap", x, "x");
        if (!(cap > 0)) {
            throw new IllegalArgumentException("softcap: the cap must be positive, got " + cap);
        }
        Tensor xc = x.contiguous();
        Tensor[] out = new Tensor[1];
        return Autograd.op("softcap", () -> {
            out[0] = Tensor.empty(x.shape(), x.dtype(), x.device());
            if (out[0].numel() > 0) {
                SoftcapKernel.on(x).forward(xc, cap, out[0]);
            }
            return out[0];
        }, g -> {
            Tensor gx = Tensor.empty(x.shape(), x.dtype(), x.device());
            if (gx.numel() > 0) {
                SoftcapKernel.on(x).backward(out[0], g.contiguous(), cap, gx);
            }
            return new Tensor[] {gx};
        }, x);
    }
}

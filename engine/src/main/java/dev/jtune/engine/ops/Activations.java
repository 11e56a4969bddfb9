package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.ActivationKernel;

/** GELU (tanh approximation, as Gemma's gelu_pytorch_tanh) and the GeGLU product of Gemma's MLP. */
public final class Activations {
    private Activations() {
    }

    public static Tensor gelu(Tensor x) {
        Checks.floating("gelu", x, "x");
        Tensor xc = x.contiguous();
        return Autograd.op("gelu", () -> {
            Tensor out = Tensor.empty(x.shape(), x.dtype(), x.device());
            if (out.numel() > 0) {
                ActivationKernel.on(x).gelu(xc, out);
            }
            return out;
        }, g -> {
            Tensor gx = Tensor.empty(x.shape(), x.dtype(), x.device());
            if (gx.numel() > 0) {
                ActivationKernel.on(x).geluBackward(xc, g.contiguous(), gx);
            }
            return new Tensor[] {gx};
        }, x);
    }

    /** {@code gelu(gate) * up}, one kernel instead of three. */
    public static Tensor geglu(Tensor gate, Tensor up) {
        String op = "geglu";
        Checks.floating(op, gate, "gate");
        Checks.sameDType(op, gate, up);
        Checks.sameShape(op, gate, up);
        Checks.sameDevice(op, gate, up);
        Tensor gc = gate.contiguous();
        Tensor uc = up.contiguous();
        return Autograd.op(op, () -> {
            Tensor out = Tensor.empty(gate.shape(), gate.dtype(), gate.device());
            if (out.numel() > 0) {
                ActivationKernel.on(gate).geglu(gc, uc, out);
            }
            return out;
        }, g -> {
            Tensor gg = Tensor.empty(gate.shape(), gate.dtype(), gate.device());
            Tensor gu = Tensor.empty(up.shape(), up.dtype(), up.device());
            if (gg.numel() > 0) {
                ActivationKernel.on(gate).gegluBackward(gc, uc, g.contiguous(), gg, gu);
            }
            return new Tensor[] {gg, gu};
        }, gate, up);
    }
}

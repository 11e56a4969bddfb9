package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
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

    /**
     * {@code gelu(gate) * up}, one kernel instead of three. gate and up are read where they lie when both are
     * contiguous or the same row-strided 2-D views (column slices), else copied.
     */
    public static Tensor geglu(Tensor gate, Tensor up) {
        String op = "geglu";
        Checks.floating(op, gate, "gate");
        Checks.sameDType(op, gate, up);
        Checks.sameShape(op, gate, up);
        Checks.sameDevice(op, gate, up);
        boolean asStored = Checks.rowsAsStored(gate) && Checks.rowsAsStored(up)
                && ActivationKernel.rowStride(gate) == ActivationKernel.rowStride(up);
        Tensor gc = asStored ? gate : gate.contiguous();
        Tensor uc = asStored ? up : up.contiguous();
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

    /**
     * GeGLU over a fused gate/up product [rows, 2n]: {@code gelu(gateUp[:, :n]) * gateUp[:, n:]} -> [rows, n], read
     * in place; the gradient is one [rows, 2n] tensor whose halves the kernel writes, so the fused product's backward
     * takes it whole.
     */
    public static Tensor geglu(Tensor gateUp) {
        String op = "geglu (fused gate/up)";
        Checks.floating(op, gateUp, "gateUp");
        Checks.rank(op, gateUp, 2, "gateUp");
        if (gateUp.dim(1) % 2 != 0) {
            throw new ShapeException(op + ": the last axis holds gate and up, so it must be even, got " + gateUp.shape());
        }
        long n = gateUp.dim(1) / 2;
        Tensor x = gateUp.contiguous();
        return Autograd.op(op, () -> {
            Tensor out = Tensor.empty(Shape.of(x.dim(0), n), x.dtype(), x.device());
            if (out.numel() > 0) {
                ActivationKernel.on(x).geglu(half(x, 0), half(x, 1), out);
            }
            return out;
        }, g -> {
            Tensor gx = Tensor.empty(x.shape(), x.dtype(), x.device());
            if (gx.numel() > 0) {
                ActivationKernel.on(x).gegluBackward(half(x, 0), half(x, 1), g.contiguous(), half(gx, 0), half(gx, 1));
            }
            return new Tensor[] {gx};
        }, gateUp);
    }

    /** Columns [i n, (i + 1) n) of a contiguous [rows, 2n] tensor: a row-strided view, outside autograd. */
    private static Tensor half(Tensor t, int i) {
        long n = t.dim(1) / 2;
        return t.detach().slice(1, i * n, (i + 1) * n);
    }
}

package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.SoftmaxKernel;

/** Softmax and log-softmax along one axis, in fp32; the backward uses the saved output. */
public final class Softmax {
    private Softmax() {
    }

    public static Tensor softmax(Tensor x, int axis) {
        return apply(x, axis, false);
    }

    public static Tensor logSoftmax(Tensor x, int axis) {
        return apply(x, axis, true);
    }

    private static Tensor apply(Tensor x, int axis, boolean log) {
        String op = log ? "logSoftmax" : "softmax";
        Checks.floating(op, x, "x");
        int ax = x.shape().axis(axis);
        int last = x.rank() - 1;
        // the kernels work on the last axis: move the softmax axis there (a copy only when it is not last already)
        Tensor moved = ax == last ? x.contiguous() : x.transpose(ax, last).contiguous();
        long[] movedShape = moved.shape().toArray();
        Tensor rows = moved.reshape(-1, moved.dim(-1));
        Tensor[] saved = new Tensor[1];
        return Autograd.op(op, () -> {
            Tensor out = Tensor.empty(rows.shape(), x.dtype(), x.device());
            if (out.numel() > 0) {
                SoftmaxKernel.on(x).forward(rows, log, out);
            }
            saved[0] = out;
            Tensor shaped = out.reshape(movedShape);
            return ax == last ? shaped : shaped.transpose(ax, last);
        }, g -> {
            Tensor gm = (ax == last ? g : g.transpose(ax, last)).contiguous().reshape(-1, rows.dim(1));
            Tensor gx = Tensor.empty(rows.shape(), x.dtype(), x.device());
            if (gx.numel() > 0) {
                SoftmaxKernel.on(x).backward(saved[0], gm, log, gx);
            }
            Tensor shaped = gx.reshape(movedShape);
            return new Tensor[] {ax == last ? shaped : shaped.transpose(ax, last)};
        }, x);
    }
}

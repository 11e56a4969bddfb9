package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.TiledCheckpoint;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.fused.DropoutKernel;

import java.util.function.UnaryOperator;

/**
 * Inverted dropout with a counter-based mask: element i is kept when uniform(seed, i) >= p. The mask is a
 * function of the seed, so nothing is saved for backward and a recomputation (checkpointing) drops the same
 * elements; give every call its own seed (e.g. from the step, the layer and the module). Inside a
 * {@link TiledCheckpoint} tile, element i of the tile's tensor is the untiled tensor's element
 * {@code elementOffset + i}, and draws that counter, so tiling drops what the untiled forward drops.
 */
public final class Dropout {
    private Dropout() {
    }

    public static Tensor apply(Tensor x, double p, long seed) {
        Checks.floating("dropout", x, "x");
        if (!(p >= 0 && p < 1)) {
            throw new IllegalArgumentException("dropout: p must be in [0, 1), got " + p);
        }
        if (p == 0) {
            return x;
        }
        Tensor xc = x.contiguous();
        long s = CounterRng.skip(seed, TiledCheckpoint.elementOffset(x));
        return Autograd.op("dropout", () -> run(xc, p, s), g -> new Tensor[] {run(g.contiguous(), p, s)}, x);
    }

    /**
     * The mask {@code apply(x, p, seed)} draws, as a function of a tensor of x's shape (x itself, or a gradient flowing
     * back through it), not recorded: for ops that recompute their dropped input in backward instead of keeping it.
     */
    public static UnaryOperator<Tensor> mask(Tensor x, double p, long seed) {
        Checks.floating("dropout", x, "x");
        if (!(p > 0 && p < 1)) {
            throw new IllegalArgumentException("dropout mask: p must be in (0, 1), got " + p);
        }
        long s = CounterRng.skip(seed, TiledCheckpoint.elementOffset(x));
        return t -> {
            if (!t.shape().equals(x.shape())) {
                throw new ShapeException("dropout mask of " + x.shape() + " applied to " + t.describe());
            }
            return run(t.contiguous(), p, s);
        };
    }

    private static Tensor run(Tensor x, double p, long seed) {
        Tensor out = Tensor.empty(x.shape(), x.dtype(), x.device());
        if (out.numel() > 0) {
            DropoutKernel.on(x).apply(x, p, seed, out);
        }
        return out;
    }
}

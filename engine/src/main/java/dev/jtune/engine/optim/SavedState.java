package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

import java.util.Collection;
import java.util.HashSet;
import java.util.Map;
import java.util.TreeSet;

/**
 * The checks every optimizer's {@code restore} makes on a checkpoint's per-parameter state, in one place: the same
 * names, then per entry the same shape and kind of dtype (8-bit codes only into 8-bit state), each refusal naming the
 * optimizer, the entry and what differs.
 */
final class SavedState {
    private SavedState() {
    }

    /** Refuses a state whose names are not exactly {@code expected}, naming what is missing and what is extra. */
    static void checkNames(String who, Collection<String> expected, Map<String, Tensor> saved) {
        if (saved.keySet().equals(new HashSet<>(expected))) {
            return;
        }
        TreeSet<String> missing = new TreeSet<>(expected);
        missing.removeAll(saved.keySet());
        TreeSet<String> extra = new TreeSet<>(saved.keySet());
        extra.removeAll(expected);
        throw new ShapeException(who + ": the checkpoint's state (" + saved.size() + " tensors) does not match this optimizer's ("
                + expected.size() + "): " + (missing.isEmpty() ? "" : missing.size() + " missing (" + some(missing) + ")")
                + (missing.isEmpty() || extra.isEmpty() ? "" : ", ")
                + (extra.isEmpty() ? "" : extra.size() + " not of this optimizer (" + some(extra) + ")")
                + " (a different optimizer or set of trainable parameters?)");
    }

    /** The first three names, and how many more. */
    private static String some(TreeSet<String> names) {
        return String.join(", ", names.stream().limit(3).toList()) + (names.size() > 3 ? " and " + (names.size() - 3) + " more" : "");
    }

    /** Refuses an entry of another shape than {@code shape}. */
    static void checkShape(String who, String name, Tensor saved, Shape shape) {
        if (!saved.shape().equals(shape)) {
            throw new ShapeException(who + ": checkpoint state " + name + " has shape " + saved.shape() + ", this optimizer's is " + shape);
        }
    }

    /** {@link #checkShape}, then copies the entry into {@code dst} (any device; floats converted; 8-bit codes only into codes). */
    static void copy(String who, String name, Tensor saved, Tensor dst) {
        checkShape(who, name, saved, dst.shape());
        if ((dst.dtype() == DType.U8) != (saved.dtype() == DType.U8)) {
            throw new DTypeException(who + ": checkpoint state " + name + " is " + saved.dtype() + ", this optimizer keeps " + dst.dtype()
                    + " (8-bit codes restore only into 8-bit state)");
        }
        Ops.copyInto(saved.to(dst.device()).cast(dst.dtype()), dst);
    }
}

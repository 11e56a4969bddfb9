package dev.jtune.engine.ops;

import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.DeviceMismatchException;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

/** Argument checks shared by the fused ops; every message names the op and the offending tensors. */
final class Checks {
    private Checks() {
    }

    static void floating(String op, Tensor t, String role) {
        t.checkOpen(op);
        if (!t.dtype().isFloating()) {
            throw new DTypeException(op + ": " + role + " must be floating, got " + t.describe());
        }
    }

    static void dtype(String op, Tensor t, DType expected, String role) {
        t.checkOpen(op);
        if (t.dtype() != expected) {
            throw new DTypeException(op + ": " + role + " must be " + expected + ", got " + t.describe());
        }
    }

    static void sameDevice(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t != null && !t.device().equals(ts[0].device())) {
                throw new DeviceMismatchException(op + ": " + ts[0].describe() + " and " + t.describe() + " are on different devices");
            }
        }
    }

    static void sameDType(String op, Tensor a, Tensor b) {
        if (a.dtype() != b.dtype()) {
            throw new DTypeException(op + ": dtypes differ, " + a.describe() + " and " + b.describe());
        }
    }

    static void rank(String op, Tensor t, int rank, String role) {
        if (t.rank() != rank) {
            throw new ShapeException(op + ": " + role + " must have rank " + rank + ", got " + t.describe());
        }
    }

    static void sameShape(String op, Tensor a, Tensor b) {
        if (!a.shape().equals(b.shape())) {
            throw new ShapeException(op + ": shapes " + a.shape() + " and " + b.shape() + " must be equal");
        }
    }

    /**
     * The dtype of statistics and accumulators (rstd, log-sum-exp, scores, fp32 gradient sums): F32, or F64 for
     * F64 inputs so that float64 gradient checks see no fp32 rounding.
     */
    static DType statType(Tensor t) {
        return t.dtype() == DType.F64 ? DType.F64 : DType.F32;
    }

    /** Rows of the last axis: [..., D] as a contiguous [N, D] (a view when already contiguous). */
    static Tensor rows(Tensor t) {
        long d = t.dim(-1);
        return t.contiguous().reshape(-1, d);
    }
}

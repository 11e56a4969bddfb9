package dev.jtune.engine.ops;

import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.DeviceMismatchException;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

/**
 * The one set of operand checks, shared by {@link dev.jtune.engine.Ops} and every fused op (and usable by ops written
 * outside the engine): each throws the engine's exception for the misuse, with a message that names the op and the
 * offending tensors (shape, dtype, device) and, where there is one, the fix.
 */
public final class Checks {
    private Checks() {
    }

    /**
     * Whether a kernel that takes a row stride reads {@code t} where it lies: contiguous, or 2-D rows of contiguous
     * elements at a stride (a column slice, such as one part of a fused projection's output). The matmul's operands
     * and GeGLU's gate and up.
     */
    public static boolean rowsAsStored(Tensor t) {
        return t.isContiguous() || t.rank() == 2 && t.stride(1) == 1 && t.stride(0) >= t.dim(1);
    }

    /** {@code t} is open and has a floating dtype (F64, F32, BF16, F16). */
    public static void floating(String op, Tensor t, String role) {
        t.checkOpen(op);
        if (!t.dtype().isFloating()) {
            throw new DTypeException(op + ": " + role + " must be floating (F64, F32, BF16, F16), got " + t.describe());
        }
    }

    /** {@code t} is open and of dtype {@code expected}. */
    public static void dtype(String op, Tensor t, DType expected, String role) {
        t.checkOpen(op);
        if (t.dtype() != expected) {
            throw new DTypeException(op + ": " + role + " must be " + expected + ", got " + t.describe());
        }
    }

    /** Every non-null tensor is on the first one's device. */
    public static void sameDevice(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t != null && !t.device().equals(ts[0].device())) {
                throw new DeviceMismatchException(op + ": " + ts[0].describe() + " and " + t.describe()
                        + " are on different devices; move one with to(device)");
            }
        }
    }

    public static void sameDType(String op, Tensor a, Tensor b) {
        if (a.dtype() != b.dtype()) {
            throw new DTypeException(op + ": dtypes differ, " + a.describe() + " and " + b.describe()
                    + "; cast one with cast(dtype)");
        }
    }

    public static void rank(String op, Tensor t, int rank, String role) {
        if (t.rank() != rank) {
            throw new ShapeException(op + ": " + role + " must have rank " + rank + ", got " + t.describe());
        }
    }

    public static void sameShape(String op, Tensor a, Tensor b) {
        if (!a.shape().equals(b.shape())) {
            throw new ShapeException(op + ": shapes " + a.shape() + " and " + b.shape() + " must be equal");
        }
    }

    /** The two operands of a binary op or product: both open, on one device, of one floating dtype. */
    public static void pair(String op, Tensor a, Tensor b) {
        a.checkOpen(op);
        b.checkOpen(op);
        sameDevice(op, a, b);
        sameDType(op, a, b);
        floating(op, a, "operands");
    }

    /**
     * The dtype of statistics and accumulators (rstd, log-sum-exp, scores, fp32 gradient sums): F32, or F64 for
     * F64 inputs so that float64 gradient checks see no fp32 rounding.
     */
    public static DType statType(Tensor t) {
        return statType(t.dtype());
    }

    /** {@link #statType(Tensor)} of a tensor of {@code dtype}. */
    static DType statType(DType dtype) {
        return dtype == DType.F64 ? DType.F64 : DType.F32;
    }

    /** Rows of the last axis: [..., D] as a contiguous [N, D] (a view when already contiguous). */
    static Tensor rows(Tensor t) {
        long d = t.dim(-1);
        return t.contiguous().reshape(-1, d);
    }
}

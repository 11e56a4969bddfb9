package dev.jtune.engine;

import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.backend.BinaryOp;
import dev.jtune.engine.backend.ReduceOp;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Every op, written once: checks operands (open, same device, dtypes, shapes), allocates the output in the
 * current scope, brings operands into the layout {@link Backend} documents, and dispatches. Errors name the op
 * and every shape and dtype involved.
 */
public final class Ops {
    private Ops() {
    }

    // ---------------------------------------------------------------- element-wise

    public static Tensor add(Tensor a, Tensor b) {
        return binary(BinaryOp.ADD, a, b);
    }

    public static Tensor sub(Tensor a, Tensor b) {
        return binary(BinaryOp.SUB, a, b);
    }

    public static Tensor mul(Tensor a, Tensor b) {
        return binary(BinaryOp.MUL, a, b);
    }

    public static Tensor div(Tensor a, Tensor b) {
        return binary(BinaryOp.DIV, a, b);
    }

    public static Tensor binary(BinaryOp op, Tensor a, Tensor b) {
        String name = op.name().toLowerCase(java.util.Locale.ROOT);
        checkPair(name, a, b);
        Shape shape = Shape.broadcast(name, a.shape(), b.shape());
        Tensor out = Tensor.empty(shape, a.dtype(), a.device());
        if (out.numel() > 0) {
            backend(a).binary(op, a.expand(shape), b.expand(shape), out);
        }
        return out;
    }

    public static Tensor scale(Tensor a, double factor) {
        checkFloating("scale", a);
        Tensor out = Tensor.empty(a.shape(), a.dtype(), a.device());
        if (out.numel() > 0) {
            backend(a).scale(a, factor, out);
        }
        return out;
    }

    // ---------------------------------------------------------------- reductions

    public static Tensor sum(Tensor a, int axis, boolean keepDim) {
        return reduce(ReduceOp.SUM, a, axis, keepDim);
    }

    public static Tensor mean(Tensor a, int axis, boolean keepDim) {
        return reduce(ReduceOp.MEAN, a, axis, keepDim);
    }

    public static Tensor max(Tensor a, int axis, boolean keepDim) {
        return reduce(ReduceOp.MAX, a, axis, keepDim);
    }

    public static Tensor reduce(ReduceOp op, Tensor a, int axis, boolean keepDim) {
        String name = op.name().toLowerCase(java.util.Locale.ROOT);
        checkFloating(name, a);
        int ax = a.shape().axis(axis);
        Shape outShape = a.shape().reduce(ax, keepDim);
        if (a.shape().dim(ax) == 0) {
            if (op == ReduceOp.MAX) {
                throw new ShapeException("max: axis " + axis + " of shape " + a.shape() + " is empty");
            }
            return Tensor.full(outShape, op == ReduceOp.SUM ? 0.0 : Double.NaN, a.dtype(), a.device());
        }
        Tensor src = a.contiguous();
        Tensor out = Tensor.empty(outShape, a.dtype(), a.device());
        if (out.numel() > 0) {
            backend(a).reduce(op, src, ax, out);
        }
        if (src != a) {
            src.close();
        }
        return out;
    }

    // ---------------------------------------------------------------- matmul

    /** {@code a @ b} with a [..., M, K] and b [K, N] or [..., K, N]; output in a's dtype. */
    public static Tensor matmul(Tensor a, Tensor b) {
        return matmul(a, b, false, false, a.dtype());
    }

    public static Tensor matmul(Tensor a, Tensor b, boolean transA, boolean transB) {
        return matmul(a, b, transA, transB, a.dtype());
    }

    /**
     * {@code op(a) @ op(b)} where op transposes the last two axes when asked; fp32 accumulation; output in
     * {@code outType} (a's dtype or F32). Transposed views are recognised and cost no copy.
     */
    public static Tensor matmul(Tensor a, Tensor b, boolean transA, boolean transB, DType outType) {
        checkPair("matmul", a, b);
        if (a.rank() < 2 || b.rank() < 2) {
            throw new ShapeException("matmul: operands need rank >= 2, got " + a.shape() + " and " + b.shape());
        }
        if (outType != a.dtype() && outType != DType.F32) {
            throw new DTypeException("matmul: output dtype " + outType + " must be the inputs' " + a.dtype() + " or F32");
        }
        long m = transA ? a.dim(-1) : a.dim(-2);
        long ka = transA ? a.dim(-2) : a.dim(-1);
        long kb = transB ? b.dim(-1) : b.dim(-2);
        long n = transB ? b.dim(-2) : b.dim(-1);
        String desc = a.shape() + (transA ? "^T" : "") + " @ " + b.shape() + (transB ? "^T" : "");
        if (ka != kb) {
            throw new ShapeException("matmul: inner dimensions differ in " + desc + " (" + ka + " vs " + kb + ")");
        }
        if (b.rank() > 2) {
            if (b.rank() != a.rank()) {
                throw new ShapeException("matmul: batched b must have a's rank in " + desc);
            }
            for (int i = 0; i < a.rank() - 2; i++) {
                if (a.dim(i) != b.dim(i)) {
                    throw new ShapeException("matmul: batch dimensions differ in " + desc);
                }
            }
        }
        long[] od = a.shape().toArray();
        od[od.length - 2] = m;
        od[od.length - 1] = n;
        Tensor out = Tensor.empty(Shape.of(od), outType, a.device());
        if (out.numel() == 0) {
            return out;
        }
        if (ka == 0) {
            backend(a).fill(out, 0.0);
            return out;
        }
        Operand pa = operand(a, transA);
        Operand pb = operand(b, transB);
        backend(a).matmul(pa.tensor, pa.trans, pb.tensor, pb.trans, out, false);
        pa.release(a);
        pb.release(b);
        return out;
    }

    private record Operand(Tensor tensor, boolean trans) {
        void release(Tensor original) {
            if (tensor.storage() != original.storage()) {
                tensor.close();
            }
        }
    }

    /** A contiguous operand: the tensor itself, its last-two-axes transpose with the flag flipped, or a copy. */
    private static Operand operand(Tensor t, boolean trans) {
        if (t.isContiguous()) {
            return new Operand(t, trans);
        }
        Tensor tt = t.transpose(-1, -2);
        if (tt.isContiguous()) {
            return new Operand(tt, !trans);
        }
        return new Operand(copy(t, t.dtype()), trans);
    }

    // ---------------------------------------------------------------- copies

    /** A contiguous copy of {@code a} converted to {@code dtype}, on a's device. */
    public static Tensor copy(Tensor a, DType dtype) {
        a.checkOpen("copy");
        if ((a.dtype() == DType.NF4) != (dtype == DType.NF4)) {
            throw new DTypeException("copy: cannot convert " + a.dtype() + " to " + dtype + " (NF4 needs quantize/dequantize)");
        }
        Tensor out = Tensor.empty(a.shape(), dtype, a.device());
        if (out.numel() > 0) {
            if (dtype == DType.NF4 && !a.isContiguous()) {
                throw new UnsupportedOpException("copy: a strided view of NF4 codes cannot be copied");
            }
            backend(a).copy(a, out);
        }
        return out;
    }

    /** Copies {@code a} to another device through host memory. */
    public static Tensor toDevice(Tensor a, Device device) {
        a.checkOpen("to(" + device + ")");
        Tensor out = Tensor.empty(a.shape(), a.dtype(), device);
        long bytes = a.dtype().bytesFor(a.numel());
        if (bytes == 0) {
            return out;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(bytes, 8);
            a.copyToHost(host);
            out.backend().copyFromHost(host, out);
        }
        return out;
    }

    // ---------------------------------------------------------------- checks

    private static Backend backend(Tensor t) {
        return t.backend();
    }

    static void checkFloating(String op, Tensor a) {
        a.checkOpen(op);
        if (!a.dtype().isFloating()) {
            throw new DTypeException(op + ": needs a floating dtype (F64, F32, BF16, F16), got " + a.dtype() + " for " + a.shape());
        }
    }

    static void checkPair(String op, Tensor a, Tensor b) {
        a.checkOpen(op);
        b.checkOpen(op);
        if (!a.device().equals(b.device())) {
            throw new DeviceMismatchException(op + ": operands on " + a.device() + " " + a.shape() + " and "
                    + b.device() + " " + b.shape() + "; move one with to(device)");
        }
        if (a.dtype() != b.dtype()) {
            throw new DTypeException(op + ": dtypes differ, " + a.dtype() + " " + a.shape() + " and " + b.dtype()
                    + " " + b.shape() + "; cast one with cast(dtype)");
        }
        checkFloating(op, a);
    }
}

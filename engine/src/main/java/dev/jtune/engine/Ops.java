package dev.jtune.engine;

import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.ops.Checks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Every op, written once: checks operands (open, same device, dtypes, shapes; through {@link Checks}, the checks
 * the fused ops use too), allocates the output in the current scope, brings operands into the layout
 * {@link Backend} documents, and dispatches. Errors name the op and every shape and dtype involved.
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

    /** {@code a op b} with numpy broadcasting; differentiable in both operands. */
    public static Tensor binary(BinaryOp op, Tensor a, Tensor b) {
        String name = op.name().toLowerCase(java.util.Locale.ROOT);
        Checks.pair(name, a, b);
        Shape shape = Shape.broadcast(name, a.shape(), b.shape());
        return Autograd.op(name, () -> {
            Tensor out = Tensor.empty(shape, a.dtype(), a.device());
            if (out.numel() > 0) {
                backend(a).binary(op, a.expand(shape), b.expand(shape), out);
            }
            return out;
        }, g -> binaryBackward(op, g, a, b), a, b);
    }

    private static Tensor[] binaryBackward(BinaryOp op, Tensor g, Tensor a, Tensor b) {
        boolean da = a.requiresGrad();
        boolean db = b.requiresGrad();
        return switch (op) {
            case ADD -> new Tensor[] {da ? sumTo(g, a.shape()) : null, db ? sumTo(g, b.shape()) : null};
            case SUB -> new Tensor[] {da ? sumTo(g, a.shape()) : null, db ? sumTo(scale(g, -1), b.shape()) : null};
            case MUL -> new Tensor[] {da ? sumTo(mul(g, b), a.shape()) : null, db ? sumTo(mul(g, a), b.shape()) : null};
            case DIV -> new Tensor[] {da ? sumTo(div(g, b), a.shape()) : null,
                    db ? sumTo(scale(div(mul(g, a), mul(b, b)), -1), b.shape()) : null};
        };
    }

    public static Tensor scale(Tensor a, double factor) {
        Checks.floating("scale", a, "operand");
        return Autograd.op("scale", () -> {
            Tensor out = Tensor.empty(a.shape(), a.dtype(), a.device());
            if (out.numel() > 0) {
                backend(a).scale(a, factor, out);
            }
            return out;
        }, g -> new Tensor[] {scale(g, factor)}, a);
    }

    /** {@code target += value} in place (value broadcast to target); not recorded: for gradients and optimizers. */
    public static void addInPlace(Tensor target, Tensor value) {
        Checks.pair("addInPlace", target, value);
        if (!target.isContiguous()) {
            throw new UnsupportedOpException("addInPlace: the target " + target.describe() + " must be contiguous");
        }
        if (target.numel() > 0) {
            backend(target).binary(BinaryOp.ADD, target, value.expand(target.shape()), target);
        }
    }

    /**
     * {@code target += value} in place, value (of target's shape, any floating dtype and strides) converted to target's
     * dtype in the same pass: the sum that casting value and {@link #addInPlace} would give, without the converted
     * copy. Not recorded: for gradients (a 16-bit contribution into an fp32 leaf's gradient).
     */
    public static void accumulateInto(Tensor target, Tensor value) {
        if (value.dtype() == target.dtype()) {
            addInPlace(target, value);
            return;
        }
        target.checkOpen("accumulateInto");
        value.checkOpen("accumulateInto");
        Checks.sameDevice("accumulateInto", target, value);
        Checks.floating("accumulateInto", target, "target");
        Checks.floating("accumulateInto", value, "value");
        if (!target.shape().equals(value.shape()) || !target.isContiguous()) {
            throw new ShapeException("accumulateInto: " + value.describe() + " into " + target.describe()
                    + " (equal shapes, a contiguous target)");
        }
        if (target.numel() > 0) {
            backend(target).accumulate(value, target);
        }
    }

    /** Copies {@code src} into the existing (possibly strided) {@code dst} of the same shape; not recorded. */
    public static void copyInto(Tensor src, Tensor dst) {
        src.checkOpen("copyInto");
        dst.checkOpen("copyInto");
        if (!src.shape().equals(dst.shape()) || !src.device().equals(dst.device())) {
            throw new ShapeException("copyInto: " + src.describe() + " into " + dst.describe());
        }
        if (src.numel() > 0) {
            backend(src).copy(src, dst);
        }
    }

    /**
     * Sums {@code g} down to {@code shape} over the axes broadcasting added or stretched: the gradient of a
     * broadcast. Returns g itself when the shapes already match.
     */
    public static Tensor sumTo(Tensor g, Shape shape) {
        if (g.shape().equals(shape)) {
            return g;
        }
        Tensor t = g;
        while (t.rank() > shape.rank()) {
            t = sum(t, 0, ReducedAxis.DROP);
        }
        for (int i = 0; i < shape.rank(); i++) {
            if (shape.dim(i) == 1 && t.dim(i) != 1) {
                t = sum(t, i, ReducedAxis.KEEP);
            }
        }
        if (!t.shape().equals(shape)) {
            throw new ShapeException("sumTo: " + g.shape() + " does not reduce to " + shape);
        }
        return t;
    }

    /** Joins tensors of one dtype and device along {@code axis}; other axes must agree. Differentiable. */
    public static Tensor concat(int axis, Tensor... parts) {
        if (parts.length == 0) {
            throw new ShapeException("concat: no tensors");
        }
        Tensor first = parts[0];
        int ax = first.shape().axis(axis);
        long total = 0;
        for (Tensor p : parts) {
            p.checkOpen("concat");
            if (p.rank() != first.rank() || p.dtype() != first.dtype() || !p.device().equals(first.device())) {
                throw new ShapeException("concat: " + p.describe() + " does not match " + first.describe());
            }
            for (int i = 0; i < p.rank(); i++) {
                if (i != ax && p.dim(i) != first.dim(i)) {
                    throw new ShapeException("concat along " + axis + ": shapes " + first.shape() + " and " + p.shape() + " differ on axis " + i);
                }
            }
            total += p.dim(ax);
        }
        long[] d = first.shape().toArray();
        d[ax] = total;
        Shape outShape = Shape.of(d);
        return Autograd.op("concat", () -> {
            Tensor out = Tensor.empty(outShape, first.dtype(), first.device());
            long at = 0;
            for (Tensor p : parts) {
                copyInto(p, out.slice(ax, at, at + p.dim(ax)));
                at += p.dim(ax);
            }
            return out;
        }, g -> {
            Tensor[] grads = new Tensor[parts.length];
            long at = 0;
            for (int i = 0; i < parts.length; i++) {
                grads[i] = g.slice(ax, at, at + parts[i].dim(ax));
                at += parts[i].dim(ax);
            }
            return grads;
        }, parts);
    }

    /**
     * Views of x's consecutive pieces along {@code axis}, {@code sizes[i]} wide each (they add up to x's size there): the
     * inverse of {@link #concat}, without a copy. One op for autograd: its backward writes every piece's gradient into
     * one tensor of x's shape (zeros where a piece got none), where pieces sliced apart would each grow theirs into a
     * zeroed tensor of x's shape, summed after.
     */
    public static Tensor[] split(Tensor x, int axis, long... sizes) {
        x.checkOpen("split");
        int ax = x.shape().axis(axis);
        long total = 0;
        for (long n : sizes) {
            if (n < 0) {
                throw new ShapeException("split: negative size in " + java.util.Arrays.toString(sizes));
            }
            total += n;
        }
        if (sizes.length == 0 || total != x.dim(ax)) {
            throw new ShapeException("split of " + x.describe() + " along " + axis + ": sizes " + java.util.Arrays.toString(sizes)
                    + " must add up to " + x.dim(ax));
        }
        long[] starts = new long[sizes.length];
        for (int i = 1; i < sizes.length; i++) {
            starts[i] = starts[i - 1] + sizes[i - 1];
        }
        return Autograd.opMulti("split", () -> {
            Tensor[] pieces = new Tensor[sizes.length];
            for (int i = 0; i < sizes.length; i++) {
                pieces[i] = x.slice(ax, starts[i], starts[i] + sizes[i]);
            }
            return pieces;
        }, grads -> {
            boolean whole = java.util.Arrays.stream(grads).allMatch(java.util.Objects::nonNull);
            Tensor g = whole ? Tensor.empty(x.shape(), x.dtype(), x.device()) : Tensor.zeros(x.shape(), x.dtype(), x.device());
            for (int i = 0; i < sizes.length; i++) {
                if (grads[i] != null) {
                    copyInto(grads[i], g.slice(ax, starts[i], starts[i] + sizes[i]));
                }
            }
            return new Tensor[] {g};
        }, x);
    }

    // ---------------------------------------------------------------- reductions

    public static Tensor sum(Tensor a, int axis, ReducedAxis reduced) {
        return reduce(ReduceOp.SUM, a, axis, reduced);
    }

    public static Tensor mean(Tensor a, int axis, ReducedAxis reduced) {
        return reduce(ReduceOp.MEAN, a, axis, reduced);
    }

    public static Tensor max(Tensor a, int axis, ReducedAxis reduced) {
        return reduce(ReduceOp.MAX, a, axis, reduced);
    }

    public static Tensor reduce(ReduceOp op, Tensor a, int axis, ReducedAxis reduced) {
        String name = op.name().toLowerCase(java.util.Locale.ROOT);
        boolean keepDim = reduced == ReducedAxis.KEEP;
        Checks.floating(name, a, "operand");
        int ax = a.shape().axis(axis);
        Shape outShape = a.shape().reduce(ax, reduced);
        if (a.shape().dim(ax) == 0) {
            if (op == ReduceOp.MAX) {
                throw new ShapeException("max: axis " + axis + " of shape " + a.shape() + " is empty");
            }
            return Tensor.full(outShape, op == ReduceOp.SUM ? 0.0 : Double.NaN, a.dtype(), a.device());
        }
        if (op == ReduceOp.MAX && Autograd.needsGrad(a)) {
            throw new AutogradException("max: not differentiable in jtune (" + a.describe() + " requires grad); use it under Autograd.noGrad()");
        }
        long n = a.shape().dim(ax);
        return Autograd.op(name, () -> {
            Tensor src = a.contiguous();
            Tensor out = Tensor.empty(outShape, a.dtype(), a.device());
            if (out.numel() > 0) {
                backend(a).reduce(op, src, ax, out);
            }
            if (src != a) {
                src.close();
            }
            return out;
        }, g -> {
            Tensor kept = keepDim ? g : g.unsqueeze(ax);
            Tensor spread = kept.expand(a.shape());
            return new Tensor[] {op == ReduceOp.MEAN ? scale(spread, 1.0 / n) : spread};
        }, a);
    }

    // ---------------------------------------------------------------- matmul

    /** {@code a @ b} with a [..., M, K] and b [K, N] or [..., K, N]; output in a's dtype. */
    public static Tensor matmul(Tensor a, Tensor b) {
        return matmul(a, b, Transpose.NONE, a.dtype());
    }

    /** {@code op(a) @ op(b)} in a's dtype (see {@link #matmul(Tensor, Tensor, Transpose, DType)}). */
    public static Tensor matmul(Tensor a, Tensor b, Transpose transpose) {
        return matmul(a, b, transpose, a.dtype());
    }

    /**
     * {@code op(a) @ op(b)} where op transposes the last two axes of the operands {@code transpose} names; fp32
     * accumulation; output in {@code outType} (a's dtype or F32). Transposed views are recognised and cost no copy.
     */
    public static Tensor matmul(Tensor a, Tensor b, Transpose transpose, DType outType) {
        return product(a, transpose.a(), b, transpose.b(), outType, 1.0);
    }

    /**
     * {@code scale * op(a) @ op(b)} in a's dtype: the scale rides on the product (cuBLAS's alpha, applied in the fp32
     * accumulator before the one rounding) instead of a pass of its own, and on both gradients' products the same way.
     */
    public static Tensor matmul(Tensor a, Tensor b, Transpose transpose, double scale) {
        if (!Double.isFinite(scale)) {
            throw new IllegalArgumentException("matmul: scale must be finite, got " + scale);
        }
        return product(a, transpose.a(), b, transpose.b(), a.dtype(), scale);
    }

    /** {@code alpha * op(a) @ op(b)} in a's dtype: the gradients' products, flags computed. */
    private static Tensor product(Tensor a, boolean transA, Tensor b, boolean transB, double alpha) {
        return product(a, transA, b, transB, a.dtype(), alpha);
    }

    private static Tensor product(Tensor a, boolean transA, Tensor b, boolean transB, DType outType, double alpha) {
        Checks.pair("matmul", a, b);
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
        Shape outShape = Shape.of(od);
        return Autograd.op("matmul", () -> {
            Tensor out = Tensor.empty(outShape, outType, a.device());
            if (out.numel() == 0) {
                return out;
            }
            if (ka == 0) {
                backend(a).fill(out, 0.0);
                return out;
            }
            productInto(a, transA, b, transB, out, alpha, false);
            return out;
        }, g -> matmulBackward(g.dtype() == a.dtype() ? g : g.cast(a.dtype()), a, transA, b, transB, alpha), a, b);
    }

    /**
     * {@code c + a @ op(b)}, accumulated into c's own storage by the product (one pass over c instead of a product,
     * then an addition). {@code transpose} is {@link Transpose#NONE} or {@link Transpose#B}. c [m, n] contiguous or
     * row-strided (a column slice of a fused projection's output),
     * a [m, k], b [n, k] when b is transposed else [k, n], all of one dtype. c is
     * consumed: the result shares its storage, so c must be a fresh product that nothing else reads or saved
     * (a linear layer's output getting its LoRA update, say). Gradients: dc = g, and the product's.
     */
    public static Tensor addMatmulInto(Tensor c, Tensor a, Tensor b, Transpose transpose) {
        return addMatmulInto(c, 0, a, b, transpose, true);
    }

    /**
     * {@link #addMatmulInto(Tensor, Tensor, Tensor, Transpose)} into the columns [column, column + n) of c [m, N]: one
     * part's update added into a fused product's output (a LoRA update into gate's or up's columns of one gate/up
     * product). c is consumed whole; its gradient passes through whole and the product's gradients read the window's
     * columns of it.
     */
    public static Tensor addMatmulInto(Tensor c, long column, Tensor a, Tensor b, Transpose transpose) {
        return addMatmulInto(c, column, a, b, transpose, false);
    }

    private static Tensor addMatmulInto(Tensor c, long column, Tensor a, Tensor b, Transpose transpose, boolean whole) {
        Checks.pair("addMatmulInto", c, a);
        long n = checkWindowProduct("addMatmulInto", c, column, whole, a, b, transpose);
        boolean transB = transpose.b();
        return Autograd.op("addMatmulInto", () -> {
            Tensor out = c.detach();
            productIntoWindow(out, column, n, a, b, transB, 1.0, Into.ADD);
            return out;
        }, g -> {
            Tensor gw = window(g, column, n);
            Tensor[] ab = matmulBackward(gw.dtype() == a.dtype() ? gw : gw.cast(a.dtype()), a, false, b, transB, 1.0);
            return new Tensor[] {g, ab[0], ab[1]};
        }, c, a, b);
    }

    /** How {@link #matmulInto} puts its product into the window: written over it, or added into it. */
    public enum Into { WRITE, ADD }

    /**
     * For a backward function or an op's forward (nothing is recorded): {@code alpha * a @ op(b)} written over, or added
     * into, columns [column, column + n) of {@code out} [m, N] (contiguous or row-strided) by the product itself. a [m, k]
     * (contiguous or row-strided: a column window of a wider tensor), b [n, k] when transposed else [k, n]; a and b of
     * one dtype. One product for a window of a buffer that several parts fill (a group's low-rank gradients).
     */
    public static void matmulInto(Tensor out, long column, Tensor a, Tensor b, Transpose transpose, double alpha, Into into) {
        long n = checkWindowProduct("matmulInto", out, column, false, a, b, transpose);
        productIntoWindow(out, column, n, a, b, transpose.b(), alpha, into);
    }

    /**
     * The checks of a product {@code a @ op(b)} into columns [column, column + n) of out (all of out's columns when
     * {@code whole}): b alone may be transposed, a and b of one dtype and device, every operand 2-D, out contiguous or
     * row-strided, the shapes fitting. Returns n.
     */
    private static long checkWindowProduct(String op, Tensor out, long column, boolean whole, Tensor a, Tensor b, Transpose transpose) {
        if (transpose.a()) {
            throw new UnsupportedOpException(op + ": only b may be transposed, got " + transpose);
        }
        boolean transB = transpose.b();
        Checks.pair(op, a, b);
        if (a.rank() != 2 || b.rank() != 2 || out.rank() != 2 || !asStored(out)) {
            throw new ShapeException(op + ": needs 2-D operands and a contiguous or row-strided output, got " + out.describe() + ", "
                    + a.shape() + ", " + b.shape());
        }
        long k = transB ? b.dim(1) : b.dim(0);
        long n = transB ? b.dim(0) : b.dim(1);
        if (a.dim(1) != k || out.dim(0) != a.dim(0) || (whole ? out.dim(1) != n : column < 0 || column + n > out.dim(1))) {
            throw new ShapeException(op + ": " + out.shape() + (whole ? "" : " at column " + column) + " + " + a.shape() + " @ " + b.shape()
                    + (transB ? "^T" : "") + " do not fit");
        }
        return n;
    }

    /** {@code alpha * a @ op(b)} put into the checked window (written or added); over no k, a written window gets zeros. */
    private static void productIntoWindow(Tensor out, long column, long n, Tensor a, Tensor b, boolean transB, double alpha, Into into) {
        if (out.numel() == 0 || n == 0) {
            return;
        }
        if (a.dim(1) == 0) {
            if (into == Into.WRITE) {
                backend(out).fill(window(out, column, n), 0.0);
            }
            return;
        }
        productInto(a, false, b, transB, window(out, column, n), alpha, into == Into.ADD);
    }

    /** Columns [column, column + n) of a 2-D t: t itself when they are all of it, else a row-strided view. */
    private static Tensor window(Tensor t, long column, long n) {
        return column == 0 && n == t.dim(1) ? t : t.detach().slice(1, column, column + n);
    }

    /** {@code out (+)= alpha * op(a) @ op(b)} by the backend, with the operands laid out as it takes them. */
    private static void productInto(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, double alpha, boolean accumulate) {
        Operand pa = operand(a, transA);
        Operand pb = operand(b, transB);
        backend(a).matmul(pa.tensor, pa.trans, pb.tensor, pb.trans, out, alpha, accumulate);
        pa.release(a);
        pb.release(b);
    }

    /**
     * Gradients of {@code alpha * op(a) @ op(b)}: dA = alpha g @ op(b)^T (as stored: transposed back when transA),
     * dB = alpha op(a)^T @ g; a 2-D b shared by a batch gets the sum over the batch, computed as one product over the
     * flattened rows.
     */
    private static Tensor[] matmulBackward(Tensor g, Tensor a, boolean transA, Tensor b, boolean transB, double alpha) {
        Tensor ga = null;
        Tensor gb = null;
        if (a.requiresGrad()) {
            ga = transA ? product(g, false, b, !transB, alpha).transpose(-1, -2) : inputGradient(a, g, b, transB, alpha);
        }
        if (b.requiresGrad()) {
            if (b.rank() == 2 && (a.rank() == 2 || !transA)) { // one product over the (flattened) rows of a shared b
                Tensor a2 = a.rank() == 2 ? a : a.reshape(-1, a.dim(-1));
                Tensor g2 = g.rank() == 2 ? g : g.reshape(-1, g.dim(-1));
                Autograd.LeafGradient leafGrad = Autograd.leafGradientTarget(b);
                gb = transB ? productOrInto(g2, true, a2, transA, leafGrad, alpha) : productOrInto(a2, !transA, g2, false, leafGrad, alpha);
            } else {
                Tensor batched = transB ? product(g, true, a, transA, alpha) : product(a, !transA, g, false, alpha);
                gb = b.rank() == 2 ? sumTo(batched, b.shape()) : batched;
            }
        }
        return new Tensor[] {ga, gb};
    }

    private record Operand(Tensor tensor, boolean trans) {
        void release(Tensor original) {
            if (tensor.storage() != original.storage()) {
                tensor.close();
            }
        }
    }

    /**
     * For a backward function: the gradient of {@code a} in {@code alpha * a @ op(b)} from the output's gradient g,
     * {@code alpha g @ op(b)^T}; when backward offers a's pending gradient ({@link Autograd#gradientTarget}, another
     * consumer's contribution) it is added into that, by the product itself, and the sum is returned.
     */
    public static Tensor inputGradient(Tensor a, Tensor g, Tensor b, Transpose forward, double alpha) {
        if (forward.a()) {
            throw new UnsupportedOpException("inputGradient: a is not transposed in the forward product, got " + forward);
        }
        return inputGradient(a, g, b, forward.b(), alpha);
    }

    private static Tensor inputGradient(Tensor a, Tensor g, Tensor b, boolean transB, double alpha) {
        Tensor target = Autograd.gradientTarget(a);
        if (target != null && target.numel() > 0 && g.dim(-1) > 0) {
            productInto(g, false, b, !transB, target, alpha, true); // a's gradient so far += alpha g @ op(b)^T
            return target;
        }
        return product(g, false, b, !transB, alpha);
    }

    /**
     * For a backward function: the gradient {@code alpha * g^T x} of a weight w [out, in] in {@code x @ w^T} (g [n, out],
     * x [n, in]). When w is a cast of a leaf whose gradient has a place, put there by the product itself (added into
     * its buffer, or written into a fresh one its sink takes: {@link Autograd#leafGradientTarget}): then null, nothing
     * left to return for w.
     */
    public static Tensor weightGradient(Tensor g, Tensor x, Tensor w, double alpha) {
        return productOrInto(g, true, x, false, g.rank() == 2 && x.rank() == 2 ? Autograd.leafGradientTarget(w) : null, alpha);
    }

    /**
     * {@code alpha * op(a) @ op(b)}, or, with a place for a leaf's gradient ({@link Autograd#leafGradientTarget}), put
     * there by the product itself (added, or written) and null returned (nothing left to hand back).
     */
    private static Tensor productOrInto(Tensor a, boolean transA, Tensor b, boolean transB, Autograd.LeafGradient leafGrad, double alpha) {
        if (leafGrad == null) {
            return product(a, transA, b, transB, alpha);
        }
        long k = transA ? a.dim(-2) : a.dim(-1);
        if (k == 0 || leafGrad.buffer().numel() == 0) { // no rows (an empty micro-batch): nothing to add; a fresh buffer gets zeros
            if (!leafGrad.accumulate()) {
                backend(leafGrad.buffer()).fill(leafGrad.buffer(), 0.0);
            }
            return null;
        }
        productInto(a, transA, b, transB, leafGrad.buffer(), alpha, leafGrad.accumulate());
        return null;
    }

    /** A contiguous operand: the tensor itself, its last-two-axes transpose with the flag flipped, or a copy. */
    private static Operand operand(Tensor t, boolean trans) {
        if (asStored(t)) {
            return new Operand(t, trans);
        }
        Tensor tt = t.transpose(-1, -2);
        if (asStored(tt)) {
            return new Operand(tt, !trans);
        }
        return new Operand(copy(t, t.dtype()), trans);
    }

    /** Whether the backend's matmul takes t as it is: contiguous, or 2-D row-strided (a column slice). */
    static boolean asStored(Tensor t) {
        return Checks.rowsAsStored(t);
    }

    // ---------------------------------------------------------------- copies

    /** A contiguous copy of {@code a} converted to {@code dtype}, on a's device. */
    public static Tensor copy(Tensor a, DType dtype) {
        a.checkOpen("copy");
        if (Autograd.needsGrad(a) && dtype.isFloating()) {
            DType original = a.dtype();
            if (a.gradFn() == null) { // a leaf's gradient takes g in its own dtype: it is converted as it accumulates
                return Autograd.castOfLeaf("copy", () -> copy(a, dtype), a);
            }
            return Autograd.op("copy", () -> copy(a, dtype), g -> new Tensor[] {g.dtype() == original ? g : copy(g, original)}, a);
        }
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
        if (Autograd.needsGrad(a)) {
            Device original = a.device();
            return Autograd.op("to(" + device + ")", () -> toDevice(a, device), g -> new Tensor[] {toDevice(g, original)}, a);
        }
        Tensor out = Tensor.empty(a.shape(), a.dtype(), device);
        long bytes = a.dtype().bytesFor(a.numel());
        if (bytes == 0) {
            return out;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(bytes, 8);
            a.copyToHost(host);
            Backends.of(out).copyFromHost(host, out);
        }
        return out;
    }

    // ---------------------------------------------------------------- checks

    private static Backend backend(Tensor t) {
        return Backends.of(t);
    }
}

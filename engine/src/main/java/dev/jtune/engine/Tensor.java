package dev.jtune.engine;

import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.backend.Distribution;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * An n-dimensional view of a {@link Storage}: shape, strides and offset in elements, and a dtype. Views
 * (reshape, transpose, slice, expand, detach) share storage; everything that computes goes through {@link Ops} and
 * the device's {@link Backend}. New tensors belong to the current {@link Scope}.
 * <p>
 * Lifetime: the tensor that allocated a storage owns it, and its {@link #close()} frees it (its views close with
 * it); so does the scope that owns the storage. Closing a view closes only that view: the storage stays for the
 * owner and the other views.
 */
public final class Tensor {
    static {
        TensorInternals.install(Tensor::storage);
    }

    private final Storage storage;
    private final Shape shape;
    private final long[] strides;
    private final long offset;
    private final DType dtype;
    /** Whether this tensor allocated its storage (and so frees it on close) rather than viewing another's. */
    private final boolean ownsStorage;
    /** Set when this view was closed on its own (its storage may still be open). */
    private boolean viewClosed;
    private boolean requiresGrad;
    private Tensor grad;
    /** Whether {@link #grad} is a view of a persistent buffer ({@link Autograd#attachGradient}): zeroed, never freed. */
    private boolean gradAttached;
    /** Where backward sends this leaf's gradient contributions instead of {@link #grad} ({@link Autograd#streamGradient}). */
    private Autograd.GradientSink gradSink;
    /** Told after each contribution backward adds into {@link #grad} ({@link Autograd#listenGradient}). */
    private Autograd.GradientListener gradListener;
    private Node gradFn;
    private int gradOutput;

    private Tensor(Storage storage, Shape shape, long[] strides, long offset, DType dtype) {
        this(storage, shape, strides, offset, dtype, false);
    }

    private Tensor(Storage storage, Shape shape, long[] strides, long offset, DType dtype, boolean ownsStorage) {
        this.storage = storage;
        this.shape = shape;
        this.strides = strides;
        this.offset = offset;
        this.dtype = dtype;
        this.ownsStorage = ownsStorage;
    }

    /**
     * A view of existing storage (for code that manages its own workspaces): closing it leaves the storage to its
     * owner. Checks that every element the view can reach lies inside the storage.
     */
    public static Tensor view(Storage storage, Shape shape, long[] strides, long offset, DType dtype) {
        if (strides.length != shape.rank()) {
            throw new ShapeException("view: " + strides.length + " strides for shape " + shape);
        }
        long lo = offset;
        long hi = offset;
        for (int i = 0; i < strides.length; i++) {
            if (shape.dim(i) == 0) {
                lo = hi = offset;
                break;
            }
            long span = (shape.dim(i) - 1) * strides[i];
            if (span < 0) {
                lo += span;
            } else {
                hi += span;
            }
        }
        if (lo < 0 || (shape.numel() > 0 && dtype.bytesFor(hi + 1) > storage.bytes())) {
            throw new ShapeException("view: shape " + shape + " strides " + Arrays.toString(strides) + " offset " + offset
                    + " of " + dtype + " reaches outside a storage of " + storage.bytes() + " bytes");
        }
        return new Tensor(storage, shape, strides.clone(), offset, dtype);
    }

    /** A contiguous view over a whole storage. */
    public static Tensor view(Storage storage, Shape shape, DType dtype) {
        return view(storage, shape, shape.contiguousStrides(), 0, dtype);
    }

    // ---------------------------------------------------------------- creation

    /** Uninitialized memory, in the current scope. */
    public static Tensor empty(Shape shape, DType dtype, Device device) {
        return empty(shape, dtype, device, Placement.DEVICE);
    }

    /**
     * Uninitialized memory of {@code device} placed as asked (host-mapped: pinned host memory the device's kernels
     * reach over PCIe, counted as host memory), in the current scope.
     */
    public static Tensor empty(Shape shape, DType dtype, Device device, Placement placement) {
        Scope scope = Scope.current();
        scope.checkOpen("empty");
        Backend backend = Backends.get(device);
        long bytes = Math.max(dtype.bytesFor(shape.numel()), 1);
        MemoryCategory category = Scope.allocationCategory(scope);
        Storage s = scope.adopt(switch (placement) {
            case DEVICE -> backend.allocate(bytes, category);
            case HOST_MAPPED -> backend.allocateHostMapped(bytes, category);
        });
        return new Tensor(s, shape, shape.contiguousStrides(), 0, dtype, true);
    }

    /**
     * Uninitialized memory laid out as {@code shape} with axes {@code a} and {@code b} swapped and seen as {@code shape},
     * in the current scope: a transposed tensor that owns its storage (closing it frees it, as closing a view of a
     * contiguous allocation would not). For an op's output in its input's layout, as attention's tokens-major [B, H, T,
     * D] (a [B, T, H, D] allocation transposed).
     */
    public static Tensor emptyTransposed(Shape shape, int a, int b, DType dtype, Device device) {
        int x = shape.axis(a);
        int y = shape.axis(b);
        long[] dims = shape.toArray();
        dims[x] = shape.dim(y);
        dims[y] = shape.dim(x);
        Tensor laid = empty(Shape.of(dims), dtype, device);
        long[] strides = laid.strides.clone();
        strides[x] = laid.strides[y];
        strides[y] = laid.strides[x];
        return new Tensor(laid.storage, shape, strides, 0, dtype, true);
    }

    public static Tensor zeros(Shape shape, DType dtype, Device device) {
        return full(shape, 0.0, dtype, device);
    }

    /** Zeros placed as asked ({@link #empty(Shape, DType, Device, Placement)}). */
    public static Tensor zeros(Shape shape, DType dtype, Device device, Placement placement) {
        Tensor t = empty(shape, dtype, device, placement);
        if (t.numel() > 0) {
            Backends.of(t).fill(t, 0.0);
        }
        return t;
    }

    public static Tensor full(Shape shape, double value, DType dtype, Device device) {
        Tensor t = empty(shape, dtype, device);
        if (t.numel() > 0) {
            Backends.of(t).fill(t, value);
        }
        return t;
    }

    /** Normal(mean, std) from the counter-based generator: the same seed gives the same values on every device. */
    public static Tensor normal(Shape shape, DType dtype, Device device, long seed, double mean, double std) {
        return random(shape, dtype, device, Distribution.NORMAL, seed, mean, std);
    }

    /** Standard normal. */
    public static Tensor randn(Shape shape, DType dtype, Device device, long seed) {
        return normal(shape, dtype, device, seed, 0.0, 1.0);
    }

    /** Uniform in [low, high). */
    public static Tensor uniform(Shape shape, DType dtype, Device device, long seed, double low, double high) {
        return random(shape, dtype, device, Distribution.UNIFORM, seed, low, high);
    }

    private static Tensor random(Shape shape, DType dtype, Device device, Distribution d, long seed, double p0, double p1) {
        if (!dtype.isFloating()) {
            throw new DTypeException(d.name().toLowerCase(java.util.Locale.ROOT) + ": random values need a floating dtype, got " + dtype);
        }
        Tensor t = empty(shape, dtype, device);
        if (t.numel() > 0) {
            Backends.of(t).fillRandom(t, d, seed, p0, p1);
        }
        return t;
    }

    public static Tensor fromArray(float[] values, Shape shape, DType dtype, Device device) {
        checkCount("fromArray", values.length, shape);
        return fromHost(shape, dtype, device, (seg, i) -> HostElements.set(seg, dtype, i, values[(int) i]));
    }

    public static Tensor fromArray(double[] values, Shape shape, DType dtype, Device device) {
        checkCount("fromArray", values.length, shape);
        return fromHost(shape, dtype, device, (seg, i) -> HostElements.set(seg, dtype, i, values[(int) i]));
    }

    public static Tensor fromArray(int[] values, Shape shape, DType dtype, Device device) {
        checkCount("fromArray", values.length, shape);
        return fromHost(shape, dtype, device, (seg, i) -> HostElements.setLong(seg, dtype, i, values[(int) i]));
    }

    public static Tensor fromArray(long[] values, Shape shape, DType dtype, Device device) {
        checkCount("fromArray", values.length, shape);
        return fromHost(shape, dtype, device, (seg, i) -> HostElements.setLong(seg, dtype, i, values[(int) i]));
    }

    /** Raw bytes, already in {@code dtype}'s packed little-endian layout (also NF4 codes). */
    public static Tensor fromBytes(byte[] bytes, Shape shape, DType dtype, Device device) {
        if (bytes.length != dtype.bytesFor(shape.numel())) {
            throw new ShapeException("fromBytes: " + bytes.length + " bytes for shape " + shape + " of " + dtype
                    + " (needs " + dtype.bytesFor(shape.numel()) + ")");
        }
        Tensor t = empty(shape, dtype, device);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(Math.max(bytes.length, 1));
            MemorySegment.copy(bytes, 0, seg, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, bytes.length);
            if (bytes.length > 0) {
                Backends.of(t).copyFromHost(seg, t);
            }
        }
        return t;
    }

    /** Copies packed host memory (in {@code dtype}'s layout) into a new tensor. */
    public static Tensor fromSegment(MemorySegment src, Shape shape, DType dtype, Device device) {
        long bytes = dtype.bytesFor(shape.numel());
        if (src.byteSize() < bytes) {
            throw new ShapeException("fromSegment: " + src.byteSize() + " bytes for shape " + shape + " of " + dtype + " (needs " + bytes + ")");
        }
        Tensor t = empty(shape, dtype, device);
        if (bytes > 0) {
            Backends.of(t).copyFromHost(src, t);
        }
        return t;
    }

    private interface ElementWriter {
        void write(MemorySegment seg, long index);
    }

    private static Tensor fromHost(Shape shape, DType dtype, Device device, ElementWriter writer) {
        Tensor t = empty(shape, dtype, device);
        long n = shape.numel();
        if (n == 0) {
            return t;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(dtype.bytesFor(n), 8);
            for (long i = 0; i < n; i++) {
                writer.write(seg, i);
            }
            Backends.of(t).copyFromHost(seg, t);
        }
        return t;
    }

    private static void checkCount(String op, int length, Shape shape) {
        if (length != shape.numel()) {
            throw new ShapeException(op + ": " + length + " values for shape " + shape + " (" + shape.numel() + " elements)");
        }
    }

    // ---------------------------------------------------------------- properties

    public Shape shape() {
        return shape;
    }

    public int rank() {
        return shape.rank();
    }

    public long dim(int axis) {
        return shape.dim(axis);
    }

    public long numel() {
        return shape.numel();
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return storage.device();
    }

    /** Where the bytes live: the device's memory, or host memory the device maps. */
    public Placement placement() {
        return storage.placement();
    }

    /** The storage this views; engine packages reach it through {@code backend.TensorInternals}. */
    Storage storage() {
        return storage;
    }

    /** Strides in elements. */
    public long[] strides() {
        return strides.clone();
    }

    public long stride(int axis) {
        return strides[shape.axis(axis)];
    }

    /** Offset of the first element into the storage, in elements. */
    public long offset() {
        return offset;
    }

    /** Address of the first element: a device pointer on cuda, a native address on cpu. */
    public long address() {
        checkOpen("address");
        return storage.address() + dtype.bytesFor(offset);
    }

    public boolean isContiguous() {
        long expected = 1;
        for (int i = shape.rank() - 1; i >= 0; i--) {
            long d = shape.dim(i);
            if (d != 1 && strides[i] != expected) {
                return false;
            }
            expected *= d;
        }
        return true;
    }

    /** Whether this tensor can no longer be used: its storage was freed, or this view was closed. */
    public boolean isClosed() {
        return viewClosed || storage.isClosed();
    }

    /** Throws {@link ClosedException} naming {@code op} when this tensor's storage was freed or this view closed. */
    public Tensor checkOpen(String op) {
        storage.checkOpen(op + " on " + describe());
        if (viewClosed) {
            throw new ClosedException(op + " on " + describe() + ": this view was closed (its storage stays with the "
                    + "tensor that allocated it)");
        }
        return this;
    }

    /**
     * On the tensor that allocated its storage: frees the storage now, and every view of it is closed too. On a
     * view (reshape, transpose, slice, expand, detach, {@link #view(Storage, Shape, DType)}): closes this view only;
     * the storage, which the owner and other views may still use, is freed when the owner closes or its scope does.
     */
    public void close() {
        if (ownsStorage) {
            storage.close();
        } else {
            viewClosed = true;
        }
    }

    public String describe() {
        return "tensor" + shape + " " + dtype + " on " + device() + (placement() == Placement.HOST_MAPPED ? " (host-mapped)" : "");
    }

    @Override
    public String toString() {
        return "Tensor" + shape + " " + dtype + " " + device() + (isClosed() ? " (closed)" : "");
    }

    // ---------------------------------------------------------------- autograd

    /** Whether gradients flow to or through this tensor. */
    public boolean requiresGrad() {
        return requiresGrad;
    }

    /**
     * Marks a leaf (a tensor no recorded op produced: a parameter or an input) as requiring grad; returns it.
     * {@link #backward()} then accumulates into {@link #grad()}.
     */
    public Tensor requiresGrad(boolean on) {
        if (gradFn != null) {
            throw new AutogradException("requiresGrad: " + describe() + " was computed by '" + gradFn.name()
                    + "'; only leaves can be marked (use detach() for a new leaf)");
        }
        if (on && !dtype.isFloating()) {
            throw new DTypeException("requiresGrad: " + describe() + " is not floating; only F64, F32, BF16, F16 tensors have gradients");
        }
        requiresGrad = on;
        return this;
    }

    /** The accumulated gradient of a leaf, or null before any backward reached it. */
    public Tensor grad() {
        return grad;
    }

    void setGrad(Tensor g) {
        this.grad = g;
    }

    void attachGrad(Tensor g) {
        this.grad = g;
        this.gradAttached = true;
        this.gradSink = null;
    }

    void streamGrad(Autograd.GradientSink sink) {
        this.grad = null;
        this.gradAttached = false;
        this.gradSink = sink;
    }

    Autograd.GradientSink gradSink() {
        return gradSink;
    }

    void listenGrad(Autograd.GradientListener listener) {
        this.gradListener = listener;
    }

    Autograd.GradientListener gradListener() {
        return gradListener;
    }

    /** Whether the gradient is a view of a persistent buffer that backward accumulates into. */
    public boolean hasAttachedGrad() {
        return gradAttached;
    }

    /**
     * Frees the accumulated gradient (the next backward starts it afresh); an attached gradient
     * ({@link Autograd#attachGradient}) is zeroed instead, and stays attached.
     */
    public void zeroGrad() {
        if (grad == null) {
            return;
        }
        if (gradAttached) {
            Backends.of(grad).fill(grad, 0);
        } else {
            grad.close();
            grad = null;
        }
    }

    /** The recorded op that produced this tensor, or null for a leaf. */
    public Node gradFn() {
        return gradFn;
    }

    void setGradFn(Node node) {
        setGradFn(node, 0);
    }

    /** This tensor is output {@code output} of {@code node} (0 for an op with one output). */
    void setGradFn(Node node, int output) {
        this.gradFn = node;
        this.gradOutput = output;
        this.requiresGrad = true;
    }

    /** Which of its node's outputs this tensor is (0 for a leaf or an op with one output). */
    int gradOutput() {
        return gradOutput;
    }

    public boolean isLeaf() {
        return gradFn == null;
    }

    /** The same data as a new leaf that does not require grad (shares storage). */
    public Tensor detach() {
        checkOpen("detach");
        return new Tensor(storage, shape, strides, offset, dtype);
    }

    /** Backward from this scalar: accumulates d(this)/d(leaf) into every leaf's grad, then frees the graph. */
    public void backward() {
        Autograd.backward(this, null, Autograd.Graph.FREE);
    }

    /** Backward with {@code seed} = d(loss)/d(this), for a non-scalar tensor. */
    public void backward(Tensor seed) {
        Autograd.backward(this, seed, Autograd.Graph.FREE);
    }

    /** Backward with {@code seed} (null for a scalar), keeping the graph for another backward when {@code graph} says so. */
    public void backward(Tensor seed, Autograd.Graph graph) {
        Autograd.backward(this, seed, graph);
    }

    // ---------------------------------------------------------------- views

    /** Same data, new shape; one dimension may be -1. A view when the layout allows, else a contiguous copy. */
    public Tensor reshape(long... dims) {
        Shape target = inferShape("reshape", dims);
        if (isContiguous()) {
            return reshaped("reshape", target);
        }
        return contiguous().reshape(dims);
    }

    /** Like reshape but never copies; throws when the layout does not allow a view. */
    public Tensor view(long... dims) {
        Shape target = inferShape("view", dims);
        if (!isContiguous()) {
            throw new ShapeException("view: " + describe() + " with strides " + Arrays.toString(strides)
                    + " is not contiguous; use reshape() or contiguous()");
        }
        return reshaped("view", target);
    }

    private Tensor reshaped(String op, Shape target) {
        long[] original = shape.toArray();
        return Autograd.op(op, () -> new Tensor(storage, target, target.contiguousStrides(), offset, dtype),
                g -> new Tensor[] {g.reshape(original)}, this);
    }

    private Shape inferShape(String op, long[] dims) {
        checkOpen(op);
        long known = 1;
        int free = -1;
        long[] d = dims.clone();
        for (int i = 0; i < d.length; i++) {
            if (d[i] == -1) {
                if (free >= 0) {
                    throw new ShapeException(op + ": more than one -1 in " + Arrays.toString(dims));
                }
                free = i;
            } else {
                known *= d[i];
            }
        }
        if (free >= 0) {
            if (known == 0 || numel() % known != 0) {
                throw new ShapeException(op + ": cannot infer -1 in " + Arrays.toString(dims) + " for " + shape);
            }
            d[free] = numel() / known;
        }
        Shape target = Shape.of(d);
        if (target.numel() != numel()) {
            throw new ShapeException(op + ": shape " + shape + " (" + numel() + " elements) cannot become " + target);
        }
        return target;
    }

    /** Swaps two axes (a view). */
    public Tensor transpose(int a, int b) {
        checkOpen("transpose");
        int[] perm = new int[rank()];
        for (int i = 0; i < perm.length; i++) {
            perm[i] = i;
        }
        int x = shape.axis(a);
        int y = shape.axis(b);
        perm[x] = y;
        perm[y] = x;
        return permute(perm);
    }

    /** Reorders axes (a view): result axis i is this tensor's axis {@code order[i]}. */
    public Tensor permute(int... order) {
        checkOpen("permute");
        if (order.length != rank()) {
            throw new ShapeException("permute: " + Arrays.toString(order) + " for shape " + shape);
        }
        long[] d = new long[order.length];
        long[] s = new long[order.length];
        boolean[] seen = new boolean[order.length];
        for (int i = 0; i < order.length; i++) {
            int ax = shape.axis(order[i]);
            if (seen[ax]) {
                throw new ShapeException("permute: axis " + ax + " repeated in " + Arrays.toString(order));
            }
            seen[ax] = true;
            d[i] = shape.dim(ax);
            s[i] = strides[ax];
        }
        int[] inverse = new int[order.length];
        for (int i = 0; i < order.length; i++) {
            inverse[shape.axis(order[i])] = i;
        }
        return Autograd.op("permute", () -> new Tensor(storage, Shape.of(d), s, offset, dtype),
                g -> new Tensor[] {g.permute(inverse)}, this);
    }

    /** Elements [start, end) along {@code axis} (a view); negative bounds count from the end. */
    public Tensor slice(int axis, long start, long end) {
        checkOpen("slice");
        int a = shape.axis(axis);
        long n = shape.dim(a);
        long s = start < 0 ? start + n : start;
        long e = end < 0 ? end + n : end;
        if (s < 0 || e > n || s > e) {
            throw new ShapeException("slice: [" + start + ", " + end + ") out of range for axis " + axis + " of shape " + shape);
        }
        long[] d = shape.toArray();
        d[a] = e - s;
        return Autograd.op("slice", () -> new Tensor(storage, Shape.of(d), strides.clone(), offset + s * strides[a], dtype), g -> {
            Tensor full = Tensor.zeros(shape, g.dtype(), g.device());
            Ops.copyInto(g, full.slice(a, s, e));
            return new Tensor[] {full};
        }, this);
    }

    /** Inserts an axis of size 1 (a view). */
    public Tensor unsqueeze(int axis) {
        checkOpen("unsqueeze");
        int a = axis < 0 ? axis + rank() + 1 : axis;
        if (a < 0 || a > rank()) {
            throw new ShapeException("unsqueeze: axis " + axis + " out of range for shape " + shape);
        }
        long[] d = new long[rank() + 1];
        long[] s = new long[rank() + 1];
        for (int i = 0, j = 0; i < d.length; i++) {
            if (i == a) {
                d[i] = 1;
                s[i] = j < rank() ? strides[j] * shape.dim(j) : 1;
            } else {
                d[i] = shape.dim(j);
                s[i] = strides[j];
                j++;
            }
        }
        return Autograd.op("unsqueeze", () -> new Tensor(storage, Shape.of(d), s, offset, dtype),
                g -> new Tensor[] {g.squeeze(a)}, this);
    }

    /** Removes an axis of size 1 (a view). */
    public Tensor squeeze(int axis) {
        checkOpen("squeeze");
        int a = shape.axis(axis);
        if (shape.dim(a) != 1) {
            throw new ShapeException("squeeze: axis " + axis + " of shape " + shape + " has size " + shape.dim(a) + ", not 1");
        }
        long[] d = new long[rank() - 1];
        long[] s = new long[rank() - 1];
        for (int i = 0, j = 0; i < rank(); i++) {
            if (i != a) {
                d[j] = shape.dim(i);
                s[j++] = strides[i];
            }
        }
        return Autograd.op("squeeze", () -> new Tensor(storage, Shape.of(d), s, offset, dtype),
                g -> new Tensor[] {g.unsqueeze(a)}, this);
    }

    /** Broadcasts to {@code target} (a view with stride 0 on repeated axes), numpy rules. */
    public Tensor expand(Shape target) {
        checkOpen("expand");
        if (target.rank() < rank()) {
            throw new ShapeException("expand: shape " + shape + " cannot expand to lower rank " + target);
        }
        int lead = target.rank() - rank();
        long[] s = new long[target.rank()];
        for (int i = 0; i < target.rank(); i++) {
            if (i < lead) {
                s[i] = 0;
                continue;
            }
            long d = shape.dim(i - lead);
            if (d == target.dim(i)) {
                s[i] = strides[i - lead];
            } else if (d == 1) {
                s[i] = 0;
            } else {
                throw new ShapeException("expand: shape " + shape + " cannot expand to " + target);
            }
        }
        return Autograd.op("expand", () -> new Tensor(storage, target, s, offset, dtype),
                g -> new Tensor[] {Ops.sumTo(g, shape)}, this);
    }

    // ---------------------------------------------------------------- copies and conversion

    /** This tensor if already contiguous, else a contiguous copy. */
    public Tensor contiguous() {
        checkOpen("contiguous");
        return isContiguous() ? this : Ops.copy(this, dtype);
    }

    /** A copy converted to {@code target} (this tensor when it already has that dtype). */
    public Tensor cast(DType target) {
        return target == dtype ? this : Ops.copy(this, target);
    }

    /** A copy on {@code target} (this tensor when already there). */
    public Tensor to(Device target) {
        return target.equals(device()) ? this : Ops.toDevice(this, target);
    }

    /** A contiguous copy with this tensor's dtype and device. */
    public Tensor copy() {
        return Ops.copy(this, dtype);
    }

    public double[] toDoubleArray() {
        double[] out = new double[Math.toIntExact(numel())];
        readHost((seg, i) -> out[(int) i] = HostElements.get(seg, dtype, i));
        return out;
    }

    public float[] toFloatArray() {
        float[] out = new float[Math.toIntExact(numel())];
        readHost((seg, i) -> out[(int) i] = (float) HostElements.get(seg, dtype, i));
        return out;
    }

    public int[] toIntArray() {
        int[] out = new int[Math.toIntExact(numel())];
        readHost((seg, i) -> out[(int) i] = (int) HostElements.getLong(seg, dtype, i));
        return out;
    }

    public long[] toLongArray() {
        long[] out = new long[Math.toIntExact(numel())];
        readHost((seg, i) -> out[(int) i] = HostElements.getLong(seg, dtype, i));
        return out;
    }

    /** The packed bytes of this tensor (contiguous order). */
    public byte[] toByteArray() {
        byte[] out = new byte[Math.toIntExact(dtype.bytesFor(numel()))];
        if (out.length == 0) {
            return out;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(out.length, 8);
            copyToHost(seg);
            MemorySegment.copy(seg, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, out, 0, out.length);
        }
        return out;
    }

    /** The single element of a one-element tensor. */
    public double item() {
        if (numel() != 1) {
            throw new ShapeException("item: " + describe() + " has " + numel() + " elements, not 1");
        }
        return toDoubleArray()[0];
    }

    /** Copies this tensor's elements (contiguous order) into packed host memory. */
    public void copyToHost(MemorySegment dst) {
        checkOpen("copyToHost");
        long bytes = dtype.bytesFor(numel());
        if (dst.byteSize() < bytes) {
            throw new ShapeException("copyToHost: " + describe() + " needs " + bytes + " bytes, the destination has " + dst.byteSize());
        }
        if (bytes == 0) {
            return;
        }
        Tensor src = contiguous();
        Backends.of(src).copyToHost(src, dst);
        if (src != this) {
            src.close();
        }
    }

    private interface ElementReader {
        void read(MemorySegment seg, long index);
    }

    private void readHost(ElementReader reader) {
        long n = numel();
        if (n == 0) {
            checkOpen("read");
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(dtype.bytesFor(n), 8);
            copyToHost(seg);
            for (long i = 0; i < n; i++) {
                reader.read(seg, i);
            }
        }
    }

    // ---------------------------------------------------------------- arithmetic (see Ops)

    public Tensor add(Tensor other) {
        return Ops.add(this, other);
    }

    public Tensor sub(Tensor other) {
        return Ops.sub(this, other);
    }

    public Tensor mul(Tensor other) {
        return Ops.mul(this, other);
    }

    public Tensor div(Tensor other) {
        return Ops.div(this, other);
    }

    public Tensor scale(double factor) {
        return Ops.scale(this, factor);
    }

    public Tensor sum(int axis) {
        return Ops.sum(this, axis, ReducedAxis.DROP);
    }

    public Tensor mean(int axis) {
        return Ops.mean(this, axis, ReducedAxis.DROP);
    }

    public Tensor max(int axis) {
        return Ops.max(this, axis, ReducedAxis.DROP);
    }

    public Tensor matmul(Tensor other) {
        return Ops.matmul(this, other);
    }
}

package dev.jtune.engine.nn;

import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.quant.Nf4Tensor;

/**
 * One named parameter slot of a {@link Module}: its shape (fixed when the module is built) and its current value,
 * a dense tensor or an NF4-quantized one. The slot holds the value, the scope that made the value owns its memory;
 * so a value may later be a view into storage owned elsewhere (a flat buffer) without the modules changing.
 */
public final class Parameter {
    private final String name;
    private final Shape shape;
    private Tensor tensor;
    private Nf4Tensor quantized;
    /** While the value lives in host memory (weight offload): the device copy computation reads, or null. */
    private Tensor staged;
    private Nf4Tensor stagedQuantized;

    Parameter(String name, Shape shape) {
        this.name = name;
        this.shape = java.util.Objects.requireNonNull(shape, "shape");
    }

    /** The local name (the last component of the full name). */
    public String name() {
        return name;
    }

    public Shape shape() {
        return shape;
    }

    public boolean isSet() {
        return tensor != null || quantized != null;
    }

    public boolean isQuantized() {
        return quantized != null;
    }

    /** Whether the value is trained: a dense tensor that requires grad (NF4 values are frozen). Needs a value. */
    public boolean isTrained() {
        return !isQuantized() && tensor().requiresGrad();
    }

    /** The dense value. */
    public Tensor tensor() {
        if (tensor == null) {
            throw new IllegalStateException("parameter '" + name + "' " + shape + (quantized != null ? " is held in NF4: dequantize it" : " has no value"));
        }
        return tensor;
    }

    /** The NF4 value. */
    public Nf4Tensor quantized() {
        if (quantized == null) {
            throw new IllegalStateException("parameter '" + name + "' " + shape + " is not quantized");
        }
        return quantized;
    }

    /** Sets a dense value of this parameter's shape; the previous value is dropped, not closed (its scope owns it). */
    public Parameter set(Tensor value) {
        checkShape(value.shape(), value.describe());
        this.tensor = value;
        this.quantized = null;
        unstage();
        return this;
    }

    /** Sets an NF4 value of this parameter's shape; the previous value is dropped, not closed. */
    public Parameter set(Nf4Tensor value) {
        checkShape(value.shape(), value.toString());
        this.quantized = value;
        this.tensor = null;
        unstage();
        return this;
    }

    // ------------------------------------------------------------------ what computation reads

    /**
     * The dense tensor a forward computes with: the staged device copy while one is set (the value itself lives in
     * host memory, {@link dev.jtune.engine.offload.HostWeights}), else {@link #tensor()}. Saving, exporting and the
     * optimizer use {@link #tensor()}, the value.
     */
    public Tensor value() {
        if (staged == null) {
            return tensor();
        }
        Tensor home = tensor();
        if (!dev.jtune.engine.Autograd.needsGrad(home)) {
            return staged;
        }
        // a trained value: each read is a fresh view of the copy with its own identity node to the value, so every
        // use (a tile's recomputation too) has a graph of its own and its gradient reaches the value's sink
        Tensor copy = staged;
        return dev.jtune.engine.Autograd.op("offloaded " + name, () -> Tensor.view(dev.jtune.engine.backend.TensorInternals.storage(copy),
                copy.shape(), copy.strides(), copy.offset(), copy.dtype()), g -> new Tensor[] {g}, home);
    }

    /** The NF4 weight a forward dequantizes: the staged device copy while one is set, else {@link #quantized()}. */
    public Nf4Tensor quantizedValue() {
        return stagedQuantized != null ? stagedQuantized : quantized();
    }

    /**
     * Sets the device copy computation reads until {@link #unstage()} (for weight-offload stores): of the value's
     * shape and dtype; when the value requires grad, {@link #value()} connects each read to it by autograd.
     */
    public void stage(Tensor copy) {
        Tensor v = tensor();
        if (!copy.shape().equals(shape) || copy.dtype() != v.dtype()) {
            throw new ShapeException("parameter '" + name + "': a staged copy must be " + v.describe() + ", got " + copy.describe());
        }
        this.staged = copy;
    }

    /** Sets the device copy of an NF4 value computation reads until {@link #unstage()}. */
    public void stage(Nf4Tensor copy) {
        Nf4Tensor v = quantized();
        if (!copy.shape().equals(shape) || copy.doubleQuant() != v.doubleQuant()) {
            throw new ShapeException("parameter '" + name + "': a staged copy must be like " + v + ", got " + copy);
        }
        this.stagedQuantized = copy;
    }

    /** Drops the staged copy: computation reads the value again. */
    public void unstage() {
        this.staged = null;
        this.stagedQuantized = null;
    }

    public boolean isStaged() {
        return staged != null || stagedQuantized != null;
    }

    private void checkShape(Shape got, String what) {
        if (!got.equals(shape)) {
            throw new ShapeException("parameter '" + name + "' has shape " + shape + ", got " + what);
        }
    }

    /** Bytes of the value (dense: elements times the dtype's size; NF4: codes and scales; none: 0). */
    public long bytes() {
        if (quantized != null) {
            return quantized.storageBytes();
        }
        return tensor == null ? 0 : tensor.dtype().bytesFor(tensor.numel());
    }

    @Override
    public String toString() {
        return "Parameter " + name + " " + shape + (quantized != null ? " NF4" : tensor != null ? " " + tensor.dtype() : " unset");
    }
}

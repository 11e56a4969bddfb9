package dev.jtune.engine.nn;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;

/**
 * The one buffer a model's NF4 {@link Linear}s dequantize their weights into right before each product, in forward
 * and again in backward. One serves every layer because all work runs in stream order and nothing of a dequantized
 * weight is kept between products. It is allocated (counted as WORKSPACE) when quantization asks for it, in the
 * scope current then, and grows only when a larger weight is quantized.
 */
public final class DequantWorkspace {
    private final DType dtype;
    private final Device device;
    private Tensor buffer;
    /** The largest group of weights dequantized together ({@link LinearGroup}): reservations cover it. */
    private long planned;

    public DequantWorkspace(DType dtype, Device device) {
        this.dtype = java.util.Objects.requireNonNull(dtype, "dtype");
        this.device = java.util.Objects.requireNonNull(device, "device");
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return device;
    }

    /** Elements the buffer holds now (0 before any quantization). */
    public long capacity() {
        return buffer == null ? 0 : buffer.numel();
    }

    /** Makes room for a weight of {@code numel} elements (and any planned group): a larger buffer replaces (and frees) a smaller one. */
    public void reserve(long numel) {
        numel = Math.max(numel, planned);
        if (numel <= capacity()) {
            return;
        }
        try (Scope.Entered c = Scope.countAs(MemoryCategory.WORKSPACE)) {
            Tensor larger = Tensor.empty(Shape.of(numel), dtype, device);
            if (buffer != null) {
                buffer.close();
            }
            buffer = larger;
        }
    }

    /**
     * A group of weights of {@code numel} elements together dequantizes into this buffer ({@link LinearGroup}): the
     * next reservation (quantization's) covers it.
     */
    void plan(long numel) {
        planned = Math.max(planned, numel);
    }

    /** The start of the buffer viewed as {@code shape} (contiguous). */
    Tensor view(Shape shape) {
        if (shape.numel() > capacity()) {
            throw new IllegalStateException("dequantization workspace holds " + capacity() + " elements, a weight " + shape
                    + " needs " + shape.numel() + ": quantize through Linear.quantize, which reserves it");
        }
        return buffer.slice(0, 0, shape.numel()).view(shape.toArray());
    }
}

package dev.jtune.gemma.safetensors;

import dev.jtune.engine.DType;
import dev.jtune.engine.Shape;

/**
 * One tensor's header entry.
 *
 * @param name      the tensor's key
 * @param dtype     the engine dtype it loads as, or null when the engine has none (see {@link #fileDType()})
 * @param shape     its shape
 * @param offset    absolute position of its first byte in the file (8 + header length + data_offsets[0])
 * @param bytes     its size in bytes (data_offsets[1] - data_offsets[0])
 * @param fileDType the dtype named in the header (BOOL stays BOOL here, while {@link #dtype()} is U8)
 */
public record TensorInfo(String name, DType dtype, Shape shape, long offset, long bytes, SafeTensorsDType fileDType) {

    /** Whether {@code load} can turn this entry into an engine tensor. */
    public boolean isLoadable() {
        return dtype != null;
    }

    public long numel() {
        return shape.numel();
    }

    @Override
    public String toString() {
        return name + " " + fileDType + shape + " @" + offset + "+" + bytes;
    }
}

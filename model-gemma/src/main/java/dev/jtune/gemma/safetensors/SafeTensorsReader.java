package dev.jtune.gemma.safetensors;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What {@link SafeTensorsFile} (one file) and {@link SafeTensorsModel} (a checkpoint, possibly sharded) have in
 * common: list tensors, describe them, hand out their bytes without copying, and load them as engine tensors.
 * Every failure is a {@link SafeTensorsException} naming the file and the tensor.
 */
public interface SafeTensorsReader extends AutoCloseable {

    /** Every tensor name, sorted (by code point, as the reference implementation's {@code keys()}). */
    List<String> names();

    boolean contains(String name);

    /** The string-to-string metadata ({@code __metadata__}, or an index's "metadata"); empty when there is none. */
    Map<String, String> metadata();

    /** The header entry of {@code name}; throws naming the file when there is no such tensor. */
    TensorInfo info(String name);

    /** The file that holds {@code name}. */
    Path fileOf(String name);

    /**
     * The tensor's bytes, a zero-copy read-only slice of the memory-mapped file (little-endian, row-major). Valid until this
     * reader is closed; readable from any thread.
     */
    MemorySegment bytes(String name);

    /** Loads {@code name} onto {@code device}, into the current engine {@link Scope}. */
    default Tensor load(String name, Device device) {
        TensorInfo info = info(name);
        if (!info.isLoadable()) {
            throw new SafeTensorsException(fileOf(name), name, "dtype " + info.fileDType()
                    + " has no engine dtype (loadable: F64, F32, BF16, F16, I64, I32, U8, BOOL as U8); "
                    + "its raw bytes are available through bytes()");
        }
        MemorySegment src = bytes(name);
        try {
            return Tensor.fromSegment(src, info.shape(), info.dtype(), device);
        } catch (ShapeException e) {
            throw new SafeTensorsException(fileOf(name), name, "cannot load " + info + ": " + e.getMessage(), e);
        }
    }

    /**
     * Loads {@code name} after checking that it has exactly {@code expectDtype} (an engine dtype: a BOOL entry
     * matches U8) and {@code expectShape}; a mismatch throws naming the file, the tensor, and both.
     */
    default Tensor load(String name, Device device, DType expectDtype, Shape expectShape) {
        TensorInfo info = info(name);
        boolean dtypeOk = expectDtype == null || expectDtype == info.dtype();
        boolean shapeOk = expectShape == null || expectShape.equals(info.shape());
        if (!dtypeOk || !shapeOk) {
            throw new SafeTensorsException(fileOf(name), name, "expected "
                    + (expectDtype == null ? "any dtype" : expectDtype) + " " + (expectShape == null ? "any shape" : expectShape)
                    + ", found " + info.fileDType() + " " + info.shape()
                    + (!dtypeOk && !shapeOk ? " (dtype and shape differ)" : !dtypeOk ? " (dtype differs)" : " (shape differs)"));
        }
        return load(name, device);
    }

    /**
     * Loads {@code name} converted to {@code dtype} (for example bf16 weights as f32). The file's dtype is loaded
     * into a temporary scope and only the converted tensor lands in the current scope.
     */
    default Tensor loadAs(String name, Device device, DType dtype) {
        TensorInfo info = info(name);
        if (info.dtype() == dtype) {
            return load(name, device);
        }
        Scope.current(); // the result goes here: fail with the engine's message when there is none
        try (Scope tmp = Scope.open("safetensors.loadAs")) {
            Tensor raw = load(name, device);
            Tensor converted = raw.cast(dtype);
            return tmp.keep(converted);
        }
    }

    @Override
    void close();
}

package dev.jtune.engine.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The parameter block of one launch: cuLaunchKernel takes an array of pointers, each to a native copy of one
 * argument. Values live in a confined arena that the caller closes after the launch (the driver copies them
 * when the launch is queued). Each argument's {@link KernelParam} kind is kept, and {@link CudaFunction#launch}
 * checks them against the kernel's declared signature.
 */
public final class KernelArgs implements AutoCloseable {
    private final Arena arena = Arena.ofConfined();
    private final List<MemorySegment> values = new ArrayList<>(8);
    private final List<KernelParam> kinds = new ArrayList<>(8);

    public KernelArgs pointer(long devicePointer) {
        return add(KernelParam.PTR, arena.allocateFrom(ValueLayout.JAVA_LONG, devicePointer));
    }

    public KernelArgs i32(int v) {
        return add(KernelParam.I32, arena.allocateFrom(ValueLayout.JAVA_INT, v));
    }

    public KernelArgs i64(long v) {
        return add(KernelParam.I64, arena.allocateFrom(ValueLayout.JAVA_LONG, v));
    }

    public KernelArgs f32(float v) {
        return add(KernelParam.F32, arena.allocateFrom(ValueLayout.JAVA_FLOAT, v));
    }

    public KernelArgs f64(double v) {
        return add(KernelParam.F64, arena.allocateFrom(ValueLayout.JAVA_DOUBLE, v));
    }

    /** A {@code Layout} struct by value (kernels/common.cuh): {@code dims} and their {@code strides}, see {@link StridedLayout}. */
    KernelArgs layout(long[] dims, long[] strides) {
        MemorySegment s = arena.allocate(StridedLayout.BYTES, 16);
        StridedLayout.write(s, dims, strides);
        return add(KernelParam.LAYOUT, s);
    }

    /** A TMA descriptor by value (its 128 bytes, 64-byte aligned as the driver wants them). */
    KernelArgs tensorMap(TensorMap map) {
        MemorySegment s = arena.allocate(TensorMap.BYTES, TensorMap.ALIGNMENT);
        s.copyFrom(map.bytes());
        return add(KernelParam.TENSOR_MAP, s);
    }

    private KernelArgs add(KernelParam kind, MemorySegment value) {
        kinds.add(kind);
        values.add(value);
        return this;
    }

    /** The kinds of the arguments added so far, in order. */
    List<KernelParam> kinds() {
        return Collections.unmodifiableList(kinds);
    }

    MemorySegment pack() {
        MemorySegment array = arena.allocate(ValueLayout.ADDRESS, Math.max(values.size(), 1));
        for (int i = 0; i < values.size(); i++) {
            array.setAtIndex(ValueLayout.ADDRESS, i, values.get(i));
        }
        return array;
    }

    @Override
    public void close() {
        arena.close();
    }
}

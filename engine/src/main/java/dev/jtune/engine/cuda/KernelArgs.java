package dev.jtune.engine.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * The parameter block of one launch: cuLaunchKernel takes an array of pointers, each to a native copy of one
 * argument. Values live in a confined arena that the caller closes after the launch (the driver copies them
 * when the launch is queued).
 */
public final class KernelArgs implements AutoCloseable {
    private final Arena arena = Arena.ofConfined();
    private final List<MemorySegment> values = new ArrayList<>(8);

    public KernelArgs pointer(long devicePointer) {
        return i64(devicePointer);
    }

    public KernelArgs i32(int v) {
        values.add(arena.allocateFrom(ValueLayout.JAVA_INT, v));
        return this;
    }

    public KernelArgs i64(long v) {
        values.add(arena.allocateFrom(ValueLayout.JAVA_LONG, v));
        return this;
    }

    public KernelArgs f32(float v) {
        values.add(arena.allocateFrom(ValueLayout.JAVA_FLOAT, v));
        return this;
    }

    public KernelArgs f64(double v) {
        values.add(arena.allocateFrom(ValueLayout.JAVA_DOUBLE, v));
        return this;
    }

    /** A struct passed by value: its bytes, laid out as the C struct. */
    public KernelArgs struct(MemorySegment bytes) {
        MemorySegment copy = arena.allocate(bytes.byteSize(), 16);
        copy.copyFrom(bytes);
        values.add(copy);
        return this;
    }

    /** A struct built directly in this launch's arena. */
    public MemorySegment allocateStruct(long bytes) {
        MemorySegment s = arena.allocate(bytes, 16);
        values.add(s);
        return s;
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

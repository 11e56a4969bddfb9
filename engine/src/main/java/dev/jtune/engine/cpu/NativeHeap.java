package dev.jtune.engine.cpu;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Host memory from the C library (aligned_alloc / free). A shared {@code Arena} per tensor costs ~25 us to close
 * (it synchronises with every thread); a training step on the cpu makes thousands of small tensors, so the cpu
 * backend allocates here instead and frees deterministically when the storage closes.
 */
final class NativeHeap {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle ALIGNED_ALLOC = LINKER.downcallHandle(LINKER.defaultLookup().find("aligned_alloc").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
    private static final MethodHandle FREE = LINKER.downcallHandle(LINKER.defaultLookup().find("free").orElseThrow(),
            FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));

    private NativeHeap() {
    }

    /** {@code bytes} (rounded up to the alignment, as aligned_alloc requires) readable from any thread; null when out of memory. */
    static MemorySegment allocate(long bytes, long alignment) {
        long size = Math.ceilDiv(bytes, alignment) * alignment;
        MemorySegment p;
        try {
            p = (MemorySegment) ALIGNED_ALLOC.invokeExact(alignment, size);
        } catch (Throwable t) {
            throw new IllegalStateException("aligned_alloc failed", t);
        }
        return p.equals(MemorySegment.NULL) ? null : p.reinterpret(bytes);
    }

    static void free(MemorySegment segment) {
        try {
            FREE.invokeExact(segment);
        } catch (Throwable t) {
            throw new IllegalStateException("free failed", t);
        }
    }
}

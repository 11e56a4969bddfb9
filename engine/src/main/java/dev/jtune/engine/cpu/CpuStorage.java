package dev.jtune.engine.cpu;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Storage;
import dev.jtune.engine.backend.HostVisible;

import java.lang.foreign.MemorySegment;

/**
 * Native host memory for the cpu backend, from {@link NativeHeap}: closing the storage frees exactly this block
 * at once (not when the garbage collector runs), and any thread may read it. Its placement only decides where it is
 * counted ({@link Placement#HOST_MAPPED}: the host figure): on cpu both are plain host memory.
 */
public final class CpuStorage extends Storage implements HostVisible {
    /** Alignment of every block: a cache line, and enough for any vector width. */
    static final long ALIGNMENT = 64;

    private final MemorySegment segment;
    private final CpuBackend backend;

    CpuStorage(CpuBackend backend, MemorySegment segment, MemoryCategory category, Placement placement) {
        super(Device.CPU, segment.byteSize(), category, placement);
        this.backend = backend;
        this.segment = segment;
    }

    /** The whole block; invalid once this storage is closed. */
    public MemorySegment segment() {
        checkOpen("segment");
        return segment;
    }

    @Override
    public MemorySegment hostSegment() {
        return segment();
    }

    @Override
    public long address() {
        return segment.address();
    }

    @Override
    protected void release() {
        NativeHeap.free(segment);
        backend.released(this);
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.cuda.CudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

import static dev.jtune.cuda.CudaException.check;

/**
 * Page-locked host buffers (cuMemHostAlloc), cached by power-of-two size: pinning costs milliseconds, so a
 * buffer is pinned once and reused for every transfer (and, later, for optimizer state offloaded to the host).
 */
public final class PinnedHostPool implements AutoCloseable {
    private static final long MIN_BYTES = 64L << 10;

    private final CudaContext context;
    private final Map<Long, ArrayDeque<MemorySegment>> free = new HashMap<>();
    private long reserved;
    private long inUse;

    PinnedHostPool(CudaContext context) {
        this.context = context;
    }

    /** A buffer of at least {@code bytes}; close it to give it back. */
    public synchronized Buffer acquire(long bytes) {
        long size = Math.max(MIN_BYTES, Long.highestOneBit(Math.max(1, bytes - 1)) << 1);
        ArrayDeque<MemorySegment> list = free.computeIfAbsent(size, s -> new ArrayDeque<>());
        MemorySegment seg = list.poll();
        if (seg == null) {
            seg = allocate(size);
            reserved += size;
        }
        inUse += size;
        return new Buffer(seg, size);
    }

    private MemorySegment allocate(long size) {
        context.makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(CudaDriver.cuMemHostAlloc(out, size, CudaDriver.CU_MEMHOSTALLOC_PORTABLE), "cuMemHostAlloc(" + size + " bytes)");
            return out.get(ValueLayout.ADDRESS, 0).reinterpret(size);
        }
    }

    private synchronized void giveBack(MemorySegment seg, long size) {
        inUse -= size;
        free.get(size).push(seg);
    }

    /** Pinned bytes held, in use or cached. */
    public synchronized long reservedBytes() {
        return reserved;
    }

    public synchronized long inUseBytes() {
        return inUse;
    }

    /** Frees every cached buffer (buffers in use stay). */
    public synchronized void emptyCache() {
        context.makeCurrent();
        for (Map.Entry<Long, ArrayDeque<MemorySegment>> e : free.entrySet()) {
            for (MemorySegment seg : e.getValue()) {
                check(CudaDriver.cuMemFreeHost(seg), "cuMemFreeHost");
                reserved -= e.getKey();
            }
            e.getValue().clear();
        }
    }

    @Override
    public void close() {
        emptyCache();
    }

    /** A pinned buffer on loan from the pool. */
    public final class Buffer implements AutoCloseable {
        private final MemorySegment segment;
        private final long size;
        private boolean returned;

        private Buffer(MemorySegment segment, long size) {
            this.segment = segment;
            this.size = size;
        }

        public MemorySegment segment() {
            return segment;
        }

        @Override
        public void close() {
            if (!returned) {
                returned = true;
                giveBack(segment, size);
            }
        }
    }
}

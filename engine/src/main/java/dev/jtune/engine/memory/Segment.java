package dev.jtune.engine.memory;

/**
 * A range of device addresses that blocks are carved from: one {@code malloc} with plain segments, or one
 * reserved virtual range (of which only some pages are mapped) with expandable segments. Blocks never cross a
 * segment's bounds, because two segments are not contiguous memory.
 */
final class Segment {
    final long address;
    final long size;
    /** The chunk at the lowest address; chunks tile the segment from here through {@link Chunk#next}. */
    Chunk first;

    Segment(long address, long size) {
        this.address = address;
        this.size = size;
        this.first = new Chunk(this, address, size);
    }

    long end() {
        return address + size;
    }

    /** Whether no live block lies in this segment (it is then one free chunk, since free neighbours coalesce). */
    boolean isUnused() {
        return first.isFree() && first.next == null;
    }
}

package dev.jtune.engine.memory;

/**
 * One address range inside a {@link Segment}: either free or backing one live {@link Block}. The chunks of a
 * segment tile it in address order through {@code prev}/{@code next}, which is what makes coalescing with
 * neighbours O(1). A chunk's address never changes; its size changes only while it is out of its pool's free set
 * (the set is ordered by size).
 */
final class Chunk {
    final Segment segment;
    final long address;
    long size;
    Chunk prev;
    Chunk next;
    /** The live block this chunk backs; null while free. */
    Block owner;

    Chunk(Segment segment, long address, long size) {
        this.segment = segment;
        this.address = address;
        this.size = size;
    }

    boolean isFree() {
        return owner == null;
    }

    long end() {
        return address + size;
    }

    @Override
    public String toString() {
        return "Chunk[0x" + Long.toHexString(address) + ", " + size + (isFree() ? ", free]" : ", live]");
    }
}

package dev.jtune.engine.memory;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.NavigableSet;
import java.util.TreeSet;

/**
 * The segments of one size class and their free chunks. Finds the best fit (smallest free chunk that is big
 * enough, lowest address among equals, so that allocation is deterministic), splits it, and coalesces a freed
 * chunk with free neighbours in its segment. Knows nothing about how segments get their memory.
 */
final class Pool {
    private static final Comparator<Chunk> BY_SIZE_THEN_ADDRESS =
            Comparator.<Chunk>comparingLong(c -> c.size).thenComparingLong(c -> c.address);

    private final String name;
    private final boolean small;
    private final List<Segment> segments = new ArrayList<>();
    private final NavigableSet<Chunk> free = new TreeSet<>(BY_SIZE_THEN_ADDRESS);

    Pool(String name, boolean small) {
        this.name = name;
        this.small = small;
    }

    String name() {
        return name;
    }

    boolean isSmall() {
        return small;
    }

    List<Segment> segments() {
        return segments;
    }

    /** The free chunks, smallest first. Callers must not change sizes while iterating. */
    NavigableSet<Chunk> freeChunks() {
        return free;
    }

    /** Adds a segment as one free chunk; returns that chunk. */
    Chunk addSegment(Segment segment) {
        segments.add(segment);
        free.add(segment.first);
        return segment.first;
    }

    /** Drops an unused segment (its memory is being given back). */
    void removeSegment(Segment segment) {
        if (!segment.isUnused()) {
            throw new IllegalStateException("segment at 0x" + Long.toHexString(segment.address) + " still holds live blocks");
        }
        free.remove(segment.first);
        segments.remove(segment);
    }

    /** The smallest free chunk of at least {@code size} bytes, or null. */
    Chunk bestFit(long size) {
        return free.ceiling(new Chunk(null, Long.MIN_VALUE, size));
    }

    /** How many bytes a block of {@code size} taken from {@code chunk} will span (all of it when not worth splitting). */
    long spanFor(Chunk chunk, long size) {
        return SizeClasses.shouldSplit(small, chunk.size - size) ? size : chunk.size;
    }

    /** Takes {@code size} bytes from the start of free {@code chunk}, returning the rest to the free set if worth it. */
    Chunk take(Chunk chunk, long size) {
        if (!free.remove(chunk)) {
            throw new IllegalStateException(chunk + " is not a free chunk of the " + name + " pool");
        }
        long span = spanFor(chunk, size);
        if (span < chunk.size) {
            Chunk rest = new Chunk(chunk.segment, chunk.address + span, chunk.size - span);
            rest.prev = chunk;
            rest.next = chunk.next;
            if (chunk.next != null) {
                chunk.next.prev = rest;
            }
            chunk.next = rest;
            chunk.size = span;
            free.add(rest);
        }
        return chunk;
    }

    /** Returns a chunk whose block was freed, merged with free neighbours; returns the merged free chunk. */
    Chunk give(Chunk chunk) {
        Chunk merged = chunk;
        Chunk prev = chunk.prev;
        if (prev != null && prev.isFree()) {
            free.remove(prev);
            absorbNext(prev);
            merged = prev;
        }
        Chunk next = merged.next;
        if (next != null && next.isFree()) {
            free.remove(next);
            absorbNext(merged);
        }
        free.add(merged);
        return merged;
    }

    /** {@code chunk} takes over the range of its next neighbour, which disappears. */
    private static void absorbNext(Chunk chunk) {
        Chunk next = chunk.next;
        chunk.size += next.size;
        chunk.next = next.next;
        if (next.next != null) {
            next.next.prev = chunk;
        }
    }

    /** Checks the pool's structure; returns the bytes of live chunks. Throws {@link IllegalStateException} if broken. */
    long verify() {
        long live = 0;
        int freeCount = 0;
        for (Segment s : segments) {
            long at = s.address;
            Chunk prev = null;
            for (Chunk c = s.first; c != null; prev = c, c = c.next) {
                check(c.segment == s && c.prev == prev && c.address == at && c.size > 0, "broken chunk list at " + c);
                check(!(c.isFree() && prev != null && prev.isFree()), "adjacent free chunks " + prev + " and " + c);
                check(c.isFree() == free.contains(c), "free set disagrees about " + c);
                if (c.isFree()) {
                    freeCount++;
                } else {
                    check(c.owner.chunk() == c && c.owner.size() == c.size, "owner of " + c + " is " + c.owner);
                    check(SizeClasses.isSmall(c.size) == small, c + " in the " + name + " pool");
                    live += c.size;
                }
                at = c.end();
            }
            check(at == s.end(), "chunks of segment 0x" + Long.toHexString(s.address) + " end at 0x" + Long.toHexString(at));
        }
        check(freeCount == free.size(), "free set holds " + free.size() + " chunks, segments " + freeCount);
        return live;
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalStateException("allocator invariant broken: " + what);
        }
    }
}

package dev.jtune.engine.offload;

/**
 * Which of two device slots holds which unit (a decoder layer) of a store that keeps its units' weights elsewhere and
 * brings a unit into a slot when computation reaches it: pinned host memory ({@link HostWeights}) or the ranks'
 * shards ({@code dist.ShardedWeights}). {@link #acquire} fetches the unit when no slot holds it, stages it, and
 * fetches the unit expected next into the other slot. The next unit is guessed from the direction of travel: up in
 * forward, down in backward, turning at either end (so the turn costs no fetch: the unit needed next is still in the
 * other slot). A wrong guess only costs a wait. The store says how a unit is fetched and staged ({@link Source}).
 */
public final class UnitSlots {
    /** How a store moves its units: what {@link UnitSlots} calls. */
    public interface Source {
        /** Queues unit {@code unit}'s bytes into slot {@code slot}, after the device work queued so far (which may read the slot). */
        void fetch(int unit, int slot);

        /** Makes the device work queued from now on wait for the fetches queued so far. */
        void ready();

        /** Points unit {@code unit}'s parameters at their copies in slot {@code slot}. */
        void stage(int unit, int slot);

        /** Points unit {@code unit}'s parameters back at their values. */
        void unstage(int unit);
    }

    private final int units;
    private final Source source;
    /** The unit each slot holds (or is being fetched into), -1 for none. */
    private final int[] holds = {-1, -1};
    /** The unit staged last, and the direction of travel (+1 forward, -1 backward). */
    private int last = -1;
    private int direction = 1;
    private long fetches;

    public UnitSlots(int units, Source source) {
        if (units <= 0) {
            throw new IllegalArgumentException("UnitSlots: no units");
        }
        this.units = units;
        this.source = source;
    }

    /**
     * Makes unit {@code index}'s parameters readable by device work queued from now on (staged to its slot, fetched
     * there first when no slot holds it) and fetches the unit expected next. Call before every forward or
     * recomputation of the unit.
     */
    public void acquire(int index) {
        if (index < 0 || index >= units) {
            throw new IndexOutOfBoundsException("unit " + index + " of " + units);
        }
        int slot = slotOf(index);
        if (slot < 0) {
            slot = last >= 0 ? 1 - slotOf(last) : 0; // not the slot of the unit staged last, which may still be in use
            fetch(index, slot);
        }
        source.ready(); // its fetch (queued now or at the last acquire) lands before the unit runs
        if (last >= 0 && last != index) {
            source.unstage(last);
            direction = index > last ? 1 : -1;
        }
        source.stage(index, slot);
        last = index;
        int next = index + direction;
        if (next < 0 || next >= units) {
            next = index - direction; // the turn: backward follows forward's last unit, the next forward backward's first
        }
        if (next >= 0 && next < units && slotOf(next) < 0) {
            fetch(next, 1 - slot);
        }
    }

    /** The values changed (an optimizer step): every unit is fetched again when next acquired. */
    public void invalidate() {
        java.util.Arrays.fill(holds, -1);
        release();
        direction = 1;
    }

    /** Unstages the unit staged last, if any: computation reads the values again. */
    public void release() {
        if (last >= 0) {
            source.unstage(last);
        }
        last = -1;
    }

    /** Fetches so far (a measure of how well the guesses went). */
    public long fetches() {
        return fetches;
    }

    private int slotOf(int unit) {
        return holds[0] == unit ? 0 : holds[1] == unit ? 1 : -1;
    }

    private void fetch(int unit, int slot) {
        if (holds[slot] >= 0 && holds[slot] == last) {
            source.unstage(last);
            last = -1;
        }
        source.fetch(unit, slot);
        holds[slot] = unit;
        fetches++;
    }
}

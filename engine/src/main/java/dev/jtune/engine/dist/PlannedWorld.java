package dev.jtune.engine.dist;

import dev.jtune.engine.Device;
import dev.jtune.engine.Tensor;

/**
 * A world to plan in: rank 0 of {@code size} ranks on the meta device, whose operations move nothing (meta tensors hold
 * no values), so what a rank allocates around them (an optimizer's shard of the state, a gathered buffer) is what the
 * memory planner counts. Any tensor off the meta device is refused: it is never a world to train in.
 */
public final class PlannedWorld implements Collectives {
    private final int size;

    private PlannedWorld(int size) {
        if (size < 1) {
            throw new IllegalArgumentException("a world of " + size + " ranks");
        }
        this.size = size;
    }

    /** Rank 0 of {@code size}. */
    public static PlannedWorld rankZeroOf(int size) {
        return new PlannedWorld(size);
    }

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int worldSize() {
        return size;
    }

    private static void meta(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t.device().kind() != Device.Kind.META) {
                throw new IllegalArgumentException(op + " in a planned world: " + t.describe() + " is not on the meta device");
            }
        }
    }

    @Override
    public void allReduce(Tensor t, Reduction op) {
        meta("all-reduce", t);
    }

    @Override
    public void reduceScatter(Tensor in, Tensor out, Reduction op) {
        meta("reduce-scatter", in, out);
    }

    @Override
    public void allGather(Tensor in, Tensor out) {
        meta("all-gather", in, out);
    }

    @Override
    public void broadcast(Tensor t, int root) {
        meta("broadcast", t);
    }

    @Override
    public void abort() {
    }

    @Override
    public void close() {
    }
}

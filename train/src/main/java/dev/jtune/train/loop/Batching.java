package dev.jtune.train.loop;

import java.util.Objects;

/**
 * How examples become micro-batches: {@code order} of the rows within an epoch, and {@code packedLength}, 0 for one
 * example per row (padded to the longest of its micro-batch), else rows packed with whole examples up to that many
 * tokens ({@code --packing} with {@code --max_seq_length}; see {@code data.Packer}).
 */
public record Batching(Order order, int packedLength) {
    /** HF's defaults: one example per row, grouped by length. */
    public static final Batching DEFAULT = new Batching(Order.GROUP_BY_LENGTH, 0);

    /** The order of rows within an epoch; both start from the same shuffle of (seed, epoch). */
    public enum Order {
        /** transformers' group_by_length: mega-batches of 50 micro-batches, each sorted longest first. */
        GROUP_BY_LENGTH,
        /** The shuffle alone (HF's default random sampler, {@code --group_by_length false}). */
        RANDOM
    }

    public Batching {
        Objects.requireNonNull(order, "order");
        if (packedLength < 0) {
            throw new IllegalArgumentException("packed rows of " + packedLength + " tokens (0: no packing)");
        }
    }

    public boolean packed() {
        return packedLength > 0;
    }
}

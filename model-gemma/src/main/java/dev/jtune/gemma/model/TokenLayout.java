package dev.jtune.gemma.model;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.AttentionMask;

import java.util.Objects;

/**
 * Where each token of a batch of packed rows stands, all I32 [B, T] like the ids: {@code segments}, the sample it
 * belongs to (0, 1, ... within its row; -1 for padding), {@code groups} (null: none), its bidirectional group (-1:
 * an ordinary causal token; tokens of one sample with the same id >= 0 see each other both ways, as a vision model's
 * image tokens), and {@code positions}, its RoPE position (restarting at 0 for each sample). Attention follows
 * {@link AttentionMask}'s rule, so no token sees another sample. The forward's layout without one is a single sample
 * per row at positions 0..T-1.
 *
 * <p>The loss shifts labels by one inside a row: whoever packs must ignore (-100) the label of each sample's first
 * token, so that the last token of one sample never predicts the first of the next (the trainer's packer does).
 */
public record TokenLayout(Tensor segments, Tensor groups, Tensor positions) {
    public TokenLayout {
        Objects.requireNonNull(segments, "segments");
        Objects.requireNonNull(positions, "positions");
    }

    /** Samples of ordinary causal tokens. */
    public static TokenLayout packed(Tensor segments, Tensor positions) {
        return new TokenLayout(segments, null, positions);
    }

    /** Checks the layout against ids [B, T] and moves it to {@code device}. */
    TokenLayout on(Device device, Tensor ids) {
        check(segments, "segments", ids);
        check(positions, "positions", ids);
        if (groups != null) {
            check(groups, "groups", ids);
        }
        return to(device);
    }

    /** This layout on {@code device}. */
    TokenLayout to(Device device) {
        return new TokenLayout(segments.to(device), groups == null ? null : groups.to(device), positions.to(device));
    }

    /** The attention mask of this layout. */
    AttentionMask mask() {
        return new AttentionMask(segments, groups);
    }

    private static void check(Tensor t, String role, Tensor ids) {
        if (t.dtype() != DType.I32 || !t.shape().equals(ids.shape())) {
            throw new ShapeException("Gemma 3 forward: token layout " + role + " must be I32 " + ids.shape() + " like the ids, got "
                    + t.describe());
        }
    }
}

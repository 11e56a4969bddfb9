package dev.jtune.engine.ops;

import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;

import java.util.Objects;

/**
 * The one mask representation of packed rows (several samples in one sequence), per token of I32 [B, T] tensors:
 * <ul>
 * <li>{@code segments}: which sample a token belongs to (0, 1, ... within its row); -1 is padding, which sees no key
 * and is seen by no query (its output is 0, its log-sum-exp -inf);</li>
 * <li>{@code groups} (null: none): a bidirectional group; tokens of the same sample with the same group id {@code >= 0}
 * see each other both ways, whatever causality and the window say (the image tokens of a vision model); -1 is an
 * ordinary causal token.</li>
 * </ul>
 * Key j is visible to query i of the same row when {@code seg[i] >= 0}, {@code seg[i] == seg[j]} and either the
 * causal rule holds ({@code j <= i}, and with a window w {@code i - j < w}) or {@code grp[i] >= 0} and
 * {@code grp[i] == grp[j]}. So causal and sliding windows never cross a sample boundary (varlen attention). Without a
 * mask (null) attention is causal over the whole row, as before.
 */
public record AttentionMask(Tensor segments, Tensor groups) {
    public AttentionMask {
        Objects.requireNonNull(segments, "segments");
    }

    /** Segments only: every token an ordinary causal one. */
    public static AttentionMask segments(Tensor segments) {
        return new AttentionMask(segments, null);
    }

    /** Checks the mask against q [B, H, T, D]: I32 [B, T] on q's device; returns it contiguous. */
    AttentionMask checked(String op, Tensor q) {
        Tensor s = check(op, segments, "segments", q);
        Tensor g = groups == null ? null : check(op, groups, "groups", q);
        return s == segments && g == groups ? this : new AttentionMask(s, g);
    }

    private static Tensor check(String op, Tensor t, String role, Tensor q) {
        Checks.dtype(op, t, DType.I32, role);
        Checks.sameDevice(op, q, t);
        if (t.rank() != 2 || t.dim(0) != q.dim(0) || t.dim(1) != q.dim(2)) {
            throw new ShapeException(op + ": " + role + " " + t.shape() + " must be [B, T] = [" + q.dim(0) + ", " + q.dim(2)
                    + "] for q " + q.shape());
        }
        return t.contiguous();
    }

    /** Batch row b's segments as a [T] view. */
    Tensor segmentsOf(long b) {
        return segments.slice(0, b, b + 1).reshape(segments.dim(1));
    }

    /** Batch row b's groups as a [T] view, or null. */
    Tensor groupsOf(long b) {
        return groups == null ? null : groups.slice(0, b, b + 1).reshape(groups.dim(1));
    }
}

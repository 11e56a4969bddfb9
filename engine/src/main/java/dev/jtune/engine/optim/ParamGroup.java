package dev.jtune.engine.optim;

import dev.jtune.engine.backend.AdamWStep;

import java.util.Objects;

/**
 * A parameter group as far as AdamW's differ in torch ({@code param_groups}): a learning rate that is a fixed multiple
 * of the optimizer's scheduled one (a group's own {@code lr} under a scheduler that scales every group alike), and
 * whether weight decay applies. The optimizers keep each group in flat buffers of its own, stepped with its own
 * scalars; their checkpointed state stays named per parameter, so a run may resume with other groups.
 *
 * @param label   what the group is, for messages ("vision_tower")
 * @param lrScale the group's learning rate over the optimizer's (1: the same), finite and at least 0
 * @param decay   whether the optimizer's weight decay applies (torch groups biases and norms with decay 0)
 */
public record ParamGroup(String label, double lrScale, boolean decay) {
    /** The optimizer's own learning rate and weight decay. */
    public static final ParamGroup DEFAULT = new ParamGroup("default", 1, true);

    public ParamGroup {
        Objects.requireNonNull(label, "label");
        if (!(lrScale >= 0) || Double.isInfinite(lrScale)) {
            throw new IllegalArgumentException("ParamGroup " + label + ": the learning-rate scale must be finite and at least 0, got " + lrScale);
        }
    }

    /** This group's scalars for step {@code step} of an optimizer configured with {@code config}. */
    AdamWStep step(AdamW.Config config, long step) {
        return new AdamWStep(config.lr() * lrScale, config.beta1(), config.beta2(), config.eps(), decay ? config.weightDecay() : 0, step);
    }

    /** Which group each parameter, by name, belongs to. */
    @FunctionalInterface
    public interface Assignment {
        /** Every parameter in {@link #DEFAULT}. */
        Assignment UNIFORM = name -> DEFAULT;

        ParamGroup of(String parameter);
    }
}

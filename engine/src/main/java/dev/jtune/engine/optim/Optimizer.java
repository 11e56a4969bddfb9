package dev.jtune.engine.optim;

import dev.jtune.engine.Tensor;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SequencedMap;

/** Updates parameters from their accumulated gradients. */
public interface Optimizer extends AutoCloseable {
    /** One update of every parameter that has a gradient. */
    void step();

    /** Clears every parameter's gradient (the next backward starts afresh): frees it, or zeroes a flat buffer. */
    void zeroGrad();

    void learningRate(double lr);

    double learningRate();

    /** Updates applied so far (the bias corrections' t). */
    long steps();

    /**
     * The state to checkpoint, one entry per parameter and kind: {@code <parameter name>.<kind>} (torch's
     * {@code exp_avg}, {@code exp_avg_sq}; {@code master} for an fp32 copy of a 16-bit weight), each in its parameter's
     * shape, so that a checkpoint does not depend on how the state is stored (flat, 8-bit, on the host).
     */
    SequencedMap<String, Tensor> state();

    /** Restores {@link #state()} (same names and shapes, any device and float dtype) and the step count. */
    void restore(Map<String, Tensor> saved, long steps);

    /**
     * The flat buffers that hold every parameter's gradient, when this optimizer keeps them flat: clipping and the
     * norm then run over them ({@link GradClip#clipFlatGradNorm}, {@link GradClip#flatNorm}), one launch per buffer.
     * Empty (the default) when gradients are per-tensor: clip the parameters' list instead ({@link GradClip#clipGradNorm}).
     */
    default List<GradientBuffer> gradientBuffers() {
        return List.of();
    }

    /**
     * When this optimizer holds the accumulated gradients itself, off the device (streamed to the host): their global
     * norm, and with {@code maxNorm > 0} the gradients scaled to at most {@code maxNorm} for the next {@link #step}
     * (torch's clip_grad_norm_). Empty (the default) when the gradients are in {@link #gradientBuffers()} or on the
     * parameters: clip those.
     */
    default Optional<GradClip.GradNorm> clipHeldGradients(double maxNorm) {
        return Optional.empty();
    }

    /**
     * Applies any update still in flight (a delayed host update), so that the parameters and {@link #state()} hold
     * the same step; whoever reads or saves the weights calls it first. Nothing to do for most optimizers.
     */
    default void flush() {
    }

    /** Releases what the optimizer holds outside scopes (threads, streams); its tensors belong to their scope. */
    @Override
    default void close() {
    }
}

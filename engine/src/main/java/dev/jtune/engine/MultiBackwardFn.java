package dev.jtune.engine;

/**
 * The backward of a recorded op with several outputs ({@link Autograd#opMulti}): from the gradients of its outputs, in
 * order, the gradients of its inputs in order (null where an input needs none). An output that no gradient reached
 * (unused, or used only where nothing requires grad) comes as null: its gradient is zero. Runs with recording off.
 */
@FunctionalInterface
public interface MultiBackwardFn {
    Tensor[] apply(Tensor[] gradOutputs);
}

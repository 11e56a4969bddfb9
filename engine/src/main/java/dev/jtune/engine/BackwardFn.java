package dev.jtune.engine;

/**
 * The backward of one recorded op: from the gradient of its output, the gradients of its inputs in order (null
 * where an input needs none). Runs with gradient recording off. Each returned gradient has its input's shape.
 */
@FunctionalInterface
public interface BackwardFn {
    Tensor[] apply(Tensor gradOutput);
}

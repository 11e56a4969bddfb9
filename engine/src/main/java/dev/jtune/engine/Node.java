package dev.jtune.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One op on the autograd tape: its inputs, its backward, its number of outputs (one, or several for
 * {@link Autograd#opMulti}: each output tensor knows its index), and the tensors it saved for backward that it owns
 * (made only for backward, such as RMSNorm's rstd or attention's log-sum-exp). {@link Autograd#backward}
 * releases a node after running it: the backward is dropped and the owned tensors freed, so a graph is
 * differentiated once unless backward is asked to retain it.
 */
public final class Node {
    private final String name;
    private final Tensor[] inputs;
    private final int outputs;
    private MultiBackwardFn backward;
    private List<Tensor> owned;
    private boolean released;
    /** The output is its one input, a leaf, in another dtype: the gradient passes to it as is ({@link Autograd#castOfLeaf}). */
    private boolean castOfLeaf;

    Node(String name, Tensor[] inputs, BackwardFn backward) {
        this(name, inputs, 1, g -> backward.apply(g[0]));
    }

    Node(String name, Tensor[] inputs, int outputs, MultiBackwardFn backward) {
        this.name = name;
        this.inputs = inputs;
        this.outputs = outputs;
        this.backward = backward;
    }

    /** How many output tensors the op made (their gradients reach backward in this order). */
    int outputCount() {
        return outputs;
    }

    public String name() {
        return name;
    }

    public List<Tensor> inputs() {
        return Arrays.asList(inputs);
    }

    Tensor input(int i) {
        return inputs[i];
    }

    int inputCount() {
        return inputs.length;
    }

    /** Hands tensors saved for backward to this node, which frees them when it is released. */
    public Node own(Tensor... saved) {
        if (owned == null) {
            owned = new ArrayList<>(saved.length);
        }
        owned.addAll(Arrays.asList(saved));
        return this;
    }

    void markCastOfLeaf() {
        castOfLeaf = true;
    }

    boolean isCastOfLeaf() {
        return castOfLeaf;
    }

    public boolean isReleased() {
        return released;
    }

    /** The inputs' gradients from the outputs' ({@link #outputCount} of them; null for an output no gradient reached). */
    Tensor[] apply(Tensor[] gradOutputs) {
        if (released) {
            throw new AutogradException("backward through '" + name + "', whose graph was already freed by an earlier "
                    + "backward(); call backward(seed, Autograd.Graph.RETAIN) to keep a graph for a second backward");
        }
        Tensor[] grads = backward.apply(gradOutputs);
        if (grads.length != inputs.length) {
            throw new AutogradException("'" + name + "' returned " + grads.length + " gradients for " + inputs.length + " inputs");
        }
        return grads;
    }

    void release() {
        if (released) {
            return;
        }
        released = true;
        backward = null;
        if (owned != null) {
            for (Tensor t : owned) {
                t.close();
            }
            owned = null;
        }
    }

    @Override
    public String toString() {
        return "Node[" + name + (released ? ", released]" : "]");
    }
}

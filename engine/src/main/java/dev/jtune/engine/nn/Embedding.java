package dev.jtune.engine.nn;

import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;

/** Row lookup ({@link dev.jtune.engine.ops.Embedding}) in a table, parameter {@code weight} [count, dim]. */
public final class Embedding extends Module {
    private final Parameter weight;

    public Embedding(long count, long dim) {
        this.weight = parameter("weight", Shape.of(count, dim));
    }

    public Parameter weightParameter() {
        return weight;
    }

    /** The table [count, dim] (also a tied LM head's weight). */
    public Tensor weight() {
        return weight.tensor();
    }

    /** {@code weight[ids]}: ids I32 of any shape on the table's device; the result has shape ids.shape + [dim]. */
    public Tensor forward(Tensor ids) {
        return dev.jtune.engine.ops.Embedding.lookup(weight.value(), ids);
    }
}

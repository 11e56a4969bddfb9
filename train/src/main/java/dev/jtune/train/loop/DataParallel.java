package dev.jtune.train.loop;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.Collectives;

import java.util.Map;

/**
 * The reductions of a data-parallel step, after every rank's micro-batches ran backward: each trained parameter's
 * gradient, then the step's loss, summed over the ranks (each rank divided its losses by the whole step's label
 * tokens, so the sums are one device's step over every micro-batch). Parameters go in name order on every rank.
 */
final class DataParallel {
    private DataParallel() {
    }

    /** Sums the gradients and {@code stepLoss} (null: this rank ran no micro-batch) over the ranks; returns the summed loss. */
    static Tensor sumOverRanks(Collectives world, Trainable trainable, Tensor stepLoss, Device device) {
        for (Map.Entry<String, Tensor> p : new java.util.TreeMap<>(trainable.namedParameters()).entrySet()) {
            Tensor g = p.getValue().grad();
            if (g == null) {
                throw new IllegalStateException("rank " + world.rank() + ": " + p.getKey() + " has no gradient to sum over the ranks");
            }
            world.allReduce(g, Collectives.Reduction.SUM);
        }
        Tensor loss = stepLoss != null ? stepLoss : Tensor.zeros(Shape.of(), DType.F32, device);
        world.allReduce(loss, Collectives.Reduction.SUM);
        return loss;
    }
}

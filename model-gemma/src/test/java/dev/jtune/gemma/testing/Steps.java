package dev.jtune.gemma.testing;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.Gemma3Model;

import java.util.ArrayList;
import java.util.List;

/** One forward and backward's numbers, for tests that compare two ways of computing them. */
public final class Steps {
    private Steps() {
    }

    /** The loss, then each of {@code trained}'s gradients (zeroed after), of one forward and backward of {@code batch} (ids, labels). */
    public static List<float[]> lossAndGradients(Gemma3Model m, List<Tensor> trained, Gemma3Model.Options options, Tensor[] batch) {
        List<float[]> out = new ArrayList<>();
        try (Scope s = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
            Tensor loss = m.loss(batch[0], batch[1], options);
            loss.backward();
            out.add(loss.toFloatArray());
            for (Tensor t : trained) {
                out.add(t.grad().toFloatArray());
                t.zeroGrad();
            }
        }
        return out;
    }
}

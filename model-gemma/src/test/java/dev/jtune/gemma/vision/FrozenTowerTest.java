package dev.jtune.gemma.vision;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.testing.Goldens;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A frozen tower and projector run without autograd and leave only the features in the caller's scope (a scope frees
 * what it owns when it closes, so their intermediates would otherwise live until the micro-batch ends); a trained tower
 * keeps what its backward needs. The features are the same either way.
 */
class FrozenTowerTest {
    @Test
    void aFrozenTowerLeavesOnlyItsFeatures() {
        try (Scope run = Scope.open("frozen tower")) {
            Gemma3MultimodalModel m = Gemma3MultimodalModel.random(Goldens.fixture("gemma3-mm-tiny"), Device.CPU, DType.F32, 5);
            Tensor pixels = pixels(m);
            float[] frozen;
            try (Scope step = Scope.open("step")) {
                Tensor f = m.imageFeatures(pixels);
                assertFalse(f.requiresGrad(), "a frozen tower's features need no gradient");
                assertEquals(f.numel() * 4, step.ownedBytes(), "only the features stay in the step's scope");
                frozen = f.toFloatArray();
            }
            for (Parameter p : m.visionTower().namedParameters().values()) {
                p.tensor().requiresGrad(true);
            }
            try (Scope step = Scope.open("step")) {
                Tensor f = m.imageFeatures(pixels);
                assertTrue(f.requiresGrad(), "a trained tower's features carry its graph");
                assertTrue(step.ownedBytes() > 4 * f.numel() * 4, "its backward keeps the layers' intermediates: " + step.ownedBytes());
                assertArrayEquals(frozen, f.toFloatArray(), "the same features");
            }
        }
    }

    /**
     * A trained tower under checkpointing (as the language model's, HF's per-layer gradient checkpointing of
     * SiglipEncoder): its forward keeps only each layer's input, and backward recomputes the layers to the same
     * gradients, bit for bit on the cpu.
     */
    @Test
    void aTrainedTowerUnderCheckpointingKeepsLessAndGivesTheSameGradients() {
        try (Scope run = Scope.open("checkpointed tower")) {
            Gemma3MultimodalModel m = Gemma3MultimodalModel.random(Goldens.fixture("gemma3-mm-tiny"), Device.CPU, DType.F32, 5);
            Tensor pixels = pixels(m);
            for (Parameter p : m.visionTower().namedParameters().values()) {
                p.tensor().requiresGrad(true);
            }
            long[] kept = new long[2];
            float[][][] grads = new float[2][][];
            Gemma3Model.Checkpointing[] modes = {Gemma3Model.Checkpointing.NONE, Gemma3Model.Checkpointing.LAYERS};
            for (int k = 0; k < modes.length; k++) {
                for (Parameter p : m.visionTower().namedParameters().values()) {
                    p.tensor().zeroGrad();
                }
                try (Scope step = Scope.open("step")) {
                    Tensor out = m.visionTower().forward(pixels, modes[k], ActivationStore.DEVICE);
                    kept[k] = step.ownedBytes();
                    out.mul(out).reshape(-1).sum(0).backward();
                }
                grads[k] = m.visionTower().namedParameters().values().stream().map(p -> p.tensor().grad().toFloatArray()).toArray(float[][]::new);
            }
            System.out.printf("trained tower forward keeps %d bytes, %d under per-layer checkpointing%n", kept[0], kept[1]);
            assertTrue(kept[1] < kept[0] / 2, "checkpointing keeps " + kept[1] + " of " + kept[0] + " bytes");
            for (int i = 0; i < grads[0].length; i++) {
                assertArrayEquals(grads[0][i], grads[1][i], "gradient " + i + " recomputed");
            }
        }
    }

    /** Two images of normal noise at the tower's size. */
    private static Tensor pixels(Gemma3MultimodalModel m) {
        int size = m.visionConfig().imageSize();
        return Tensor.normal(Shape.of(2, 3, size, size), DType.F32, Device.CPU, 9, 0, 1);
    }
}

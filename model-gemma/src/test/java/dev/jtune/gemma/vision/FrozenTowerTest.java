package dev.jtune.gemma.vision;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Parameter;
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
            int size = m.visionConfig().imageSize();
            Tensor pixels = Tensor.normal(Shape.of(2, 3, size, size), DType.F32, Device.CPU, 9, 0, 1);
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
}

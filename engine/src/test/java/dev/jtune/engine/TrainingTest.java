package dev.jtune.engine;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The small models learn on the cpu; checkpointing changes nothing but memory. */
class TrainingTest {
    @Test
    void mlpLossFalls() {
        double[] losses = TinyModels.trainMlp(Device.CPU, DType.F32, 40);
        assertTrue(losses[39] < 0.3 * losses[0], "loss " + losses[0] + " -> " + losses[39]);
    }

    @Test
    void transformerBlockLossFallsAndCheckpointingGivesTheSameRun() {
        double[] plain = TinyModels.trainBlock(Device.CPU, DType.F32, 30, false);
        assertTrue(plain[29] < 0.5 * plain[0], "loss " + plain[0] + " -> " + plain[29]);
        double[] checkpointed = TinyModels.trainBlock(Device.CPU, DType.F32, 30, true);
        assertArrayEquals(plain, checkpointed, 0.0, "checkpointed and plain runs give identical losses");
    }
}

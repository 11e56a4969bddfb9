package dev.jtune.engine.cuda;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.TinyModels;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** The small models train on the GPU and follow the cpu's loss curve: closely in F32, within bf16's error in BF16. */
@Tag("gpu")
class CudaTrainingTest {
    private static final Device GPU = Device.cuda(0);

    private static void assertFollows(double[] reference, double[] got, double tol, String what) {
        for (int i = 0; i < reference.length; i++) {
            double rel = Math.abs(got[i] - reference[i]) / Math.abs(reference[i]);
            assertTrue(rel <= tol, what + ": step " + i + " loss " + got[i] + " vs cpu " + reference[i] + " (relative " + rel + ")");
        }
    }

    @Test
    void mlpOnTheGpuFollowsTheCpu() {
        double[] cpu = TinyModels.trainMlp(Device.CPU, DType.F32, 30);
        double[] f32 = TinyModels.trainMlp(GPU, DType.F32, 30);
        double[] bf16 = TinyModels.trainMlp(GPU, DType.BF16, 30);
        assertFollows(cpu, f32, 1e-3, "F32");
        assertFollows(cpu, bf16, 5e-2, "BF16");
        assertTrue(bf16[29] < 0.3 * bf16[0], "bf16 loss falls: " + bf16[0] + " -> " + bf16[29]);
    }

    @Test
    void transformerBlockOnTheGpuFollowsTheCpu() {
        double[] cpu = TinyModels.trainBlock(Device.CPU, DType.F32, 25, false);
        double[] f32 = TinyModels.trainBlock(GPU, DType.F32, 25, false);
        double[] bf16 = TinyModels.trainBlock(GPU, DType.BF16, 25, true);
        assertFollows(cpu, f32, 2e-3, "F32");
        assertFollows(cpu, bf16, 5e-2, "BF16, checkpointed");
        assertTrue(bf16[24] < 0.5 * bf16[0], "bf16 loss falls: " + bf16[0] + " -> " + bf16[24]);
    }
}

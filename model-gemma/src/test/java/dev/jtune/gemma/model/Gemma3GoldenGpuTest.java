package dev.jtune.gemma.model;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;

/** gemma3-tiny against HF on the GPU in bf16: logits within 2e-2, loss within 1e-2 of HF's float32 values. */
@Tag("gpu")
class Gemma3GoldenGpuTest {
    @Test
    void gpuBf16MatchesHf() throws IOException {
        double loss = Gemma3GoldenTest.goldenLoss();
        // hidden states and gradients in bf16: bounds wide enough for bf16 rounding through 6 layers
        Gemma3GoldenTest.checkAgainstGolden(Device.cuda(0), DType.BF16, 2e-2, 3e-2, 1e-2 / loss, 1e-1);
    }

    @Test
    void gpuFloat32MatchesHfTightly() throws IOException {
        Gemma3GoldenTest.checkAgainstGolden(Device.cuda(0), DType.F32, 1e-4, 1e-4, 1e-4, 1e-3);
    }
}

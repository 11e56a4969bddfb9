package dev.jtune.gemma.lora;

import dev.jtune.engine.Device;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** {@link LoraDropoutTest}'s dropped-input product on the GPU: the dropout kernel's mask drawn again in backward. */
@Tag("gpu")
class LoraDropoutGpuTest {
    @Test
    void theDroppedProductIsDropoutThenTheProductsBitForBit() {
        LoraDropoutTest.checkDroppedProduct(Device.cuda(0));
    }
}

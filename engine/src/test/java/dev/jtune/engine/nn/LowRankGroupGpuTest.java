package dev.jtune.engine.nn;

import dev.jtune.engine.Device;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * {@link LowRankGroupTest}'s bf16 check on the GPU: the shared down product and each up product into a column window
 * through cuBLASLt (row-strided operands and outputs), the A's stacked as a view of the flat copies, against the
 * adapters apart, every tensor within four bf16 ulps of its largest element (cuBLASLt may sum a wider product in
 * another order).
 */
@Tag("gpu")
class LowRankGroupGpuTest {
    @Test
    void castsInOneFlatBufferStackAsAViewAndTrainAsApart() {
        LowRankGroupTest.checkBf16(Device.cuda(0), Seeds.seed(), false);
    }
}

package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * {@link LeafGradientTargetTest}'s checks on the GPU: LoRA's weight-gradient products adding into the leaf's attached
 * fp32 buffer through cuBLASLt (bf16 operands, fp32 output, beta = 1), for a plain cast, a kept cast in a checkpoint
 * and dropout's own product. fp32 against the cpu's fp32 product of the same bf16 values: 1e-5 relative (the GEMM's
 * summation order).
 */
@Tag("gpu")
class LeafGradientTargetGpuTest {
    @Test
    void anAttachedBufferTakesTheProductsFp32GradientItself() {
        LeafGradientTargetTest.check(Device.cuda(0), 1e-5, Seeds.random());
    }

    /** With new allocations poisoned (NaN): the sink's fresh buffer over no rows is written with zeros. */
    @Test
    void anEmptyBatchHandsTheSinkZeros() {
        dev.jtune.engine.cuda.CudaBackend.get(0).poisonAllocations(true);
        try {
            LeafGradientTargetTest.checkEmptyBatch(Device.cuda(0));
        } finally {
            dev.jtune.engine.cuda.CudaBackend.get(0).poisonAllocations(false);
        }
    }
}

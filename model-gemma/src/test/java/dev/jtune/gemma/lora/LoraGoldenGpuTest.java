package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;

/**
 * gemma3-tiny-lora against peft's fp32 golden on the GPU: F32 tightly, and a bf16 base within the error that bf16
 * arithmetic itself costs on this fixture. Issue 5 asked for every gradient within 2e-2 in bf16; that is below what
 * bf16 gives here. HF transformers 5.17 + peft 0.21's own bf16 runs, on the H100 and on cpu
 * (bench/src/main/python/hf_lora_grad_precision.py, bf16 weights or fp32 weights under autocast, eager or SDPA
 * attention): worst gradient 4.2e-2..4.6e-2, median 2.4e-2..2.9e-2, 63..73 of the 84 above 2e-2. jtune on the same
 * H100 (2026-11-27, fused attention): worst 3.87e-2, median 2.33e-2, 61 above 2e-2; with the products in bf16
 * (autocast) 4.01e-2 / 2.64e-2. A cpu probe rounding a single class of activations
 * to bf16 (only the norm outputs, or only the linear outputs) already gives 1.5e-2..1.8e-2: this random tiny model
 * amplifies any rounding about tenfold. The bounds below sit a third above the reference stack's own bf16 error.
 */
@Tag("gpu")
class LoraGoldenGpuTest {
    @Test
    void bf16BaseMatchesPeftWithinBf16sOwnError() throws IOException {
        // three Adam steps amplify bf16 differences in tiny gradients (Adam normalises them): a wider bound there
        LoraGoldenTest.checkAgainstPeft(Device.cuda(0), DType.BF16, 1e-2, 6e-2, 3e-2, 1.5e-1);
    }

    /** HF Trainer's --bf16 semantics (autocast: the products in bf16); HF's own autocast run: worst 4.3e-2..4.6e-2. */
    @Test
    void bf16AutocastMatchesPeftWithinBf16sOwnError() throws IOException {
        LoraGoldenTest.checkAgainstPeft(Device.cuda(0), DType.BF16, DType.BF16, 1e-2, 6e-2, 3.5e-2, 1.5e-1);
    }

    @Test
    void float32MatchesPeftTightly() throws IOException {
        LoraGoldenTest.checkAgainstPeft(Device.cuda(0), DType.F32, 1e-4, 1e-4, 1e-4, 1e-4);
    }
}

package dev.jtune.gemma.lora;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.model.KvCache;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A peft adapter (fp32, peft's semantics) on a bf16 base on the GPU, as {@code jtune generate --adapter_path} runs it:
 * the logits of the training forward and of the cached (generation) prefill against the cpu's fp32, beside the same
 * comparison for the merged bf16 model, whose error is what bf16 alone costs.
 */
@Tag("gpu")
class LoraGenerationGpuTest {
    private static final long SEED = 2026_12_05L;

    private record WithAdapter(Gemma3Model model, java.util.Map<String, LoraAdapter> adapters) {
    }

    private static WithAdapter withAdapter(Device device, DType dtype) {
        Path base = LoraGoldenTest.fixture("gemma3-tiny");
        Gemma3Model model = Gemma3Model.load(base, device, dtype);
        PeftAdapter.Loaded loaded = PeftAdapter.load(LoraGoldenTest.fixture("gemma3-tiny-lora"), model, DType.F32);
        long s = SEED;
        for (LoraAdapter a : loaded.adapters().values()) { // peft's B starts at zero: give the adapter an effect to check
            Ops.copyInto(Tensor.normal(a.b().shape(), DType.F32, device, s++, 0, 0.05), a.b());
        }
        return new WithAdapter(model, loaded.adapters());
    }

    private static float[][] logits(Gemma3Model model, int[] prompt) {
        try (Autograd.GradMode off = Autograd.noGrad(); Scope s = Scope.open("logits")) {
            Tensor ids = Tensor.fromArray(prompt, Shape.of(1, prompt.length), DType.I32, Device.CPU).to(model.device());
            float[] training = model.logits(model.hidden(ids, Gemma3Model.Options.defaults(), null)).toFloatArray();
            KvCache cache = new KvCache(model, 64);
            float[] cached = model.logits(model.hiddenCached(ids.slice(1, 0, prompt.length - 4), 0, cache)).toFloatArray();
            // the last four tokens one at a time, as decoding feeds them
            float[] decoded = new float[training.length];
            System.arraycopy(cached, 0, decoded, 0, cached.length);
            int vocab = training.length / prompt.length;
            for (int t = prompt.length - 4; t < prompt.length; t++) {
                float[] one = model.logits(model.hiddenCached(ids.slice(1, t, t + 1).contiguous(), t, cache)).toFloatArray();
                System.arraycopy(one, 0, decoded, t * vocab, vocab);
            }
            return new float[][] {training, decoded};
        }
    }

    private static double relative(float[] a, float[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < a.length; i++) {
            num += ((double) a[i] - ref[i]) * ((double) a[i] - ref[i]);
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }

    @Test
    void anFp32AdapterOnABf16BaseComputesWhatTheCpuDoes() {
        System.out.println("LoraGenerationGpuTest seed " + SEED);
        int[] prompt = {2, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110};
        try (Scope scope = Scope.open("test")) {
            float[][] cpu = logits(withAdapter(Device.CPU, DType.F32).model(), prompt);
            float[][] adapter = logits(withAdapter(Device.cuda(0), DType.BF16).model(), prompt);
            WithAdapter merged = withAdapter(Device.cuda(0), DType.BF16);
            LoraMerge.merge(merged.model(), merged.adapters());
            float[][] folded = logits(merged.model(), prompt);
            double bf16Cost = Math.max(relative(folded[0], cpu[0]), relative(folded[1], cpu[1]));
            System.out.printf("relative to the cpu's fp32: adapter training forward %.2e, adapter cached prefill + decoding %.2e; merged bf16 %.2e / %.2e;"
                            + " cpu cached vs training %.2e%n", relative(adapter[0], cpu[0]), relative(adapter[1], cpu[1]),
                    relative(folded[0], cpu[0]), relative(folded[1], cpu[1]), relative(cpu[1], cpu[0]));
            assertTrue(relative(cpu[1], cpu[0]) < 1e-5, "the cpu's cached prefill equals its forward");
            // the adapter keeps the update in fp32 and adds it to the bf16 product: no worse than folding it into bf16 weights
            assertTrue(relative(adapter[0], cpu[0]) < 2 * bf16Cost + 1e-3, "training forward");
            assertTrue(relative(adapter[1], cpu[1]) < 2 * bf16Cost + 1e-3, "cached prefill and decoding");
        }
    }
}

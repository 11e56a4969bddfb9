package dev.jtune.bench;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.lora.Lora;
import dev.jtune.gemma.lora.LoraAdapter;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Writes what HF must be able to read: a jtune LoRA adapter on a base checkpoint, the merged full checkpoint, and
 * the logits jtune computes with each, for {@code hf_interop.py} to compare with transformers + peft.
 * Usage: {@code HfInterop <base checkpoint dir> <output dir>}.
 */
public final class HfInterop {
    private HfInterop() {
    }

    public static void main(String[] args) throws Exception {
        Path base = Path.of(args[0]);
        Path out = Path.of(args[1]);
        int[] ids = {2, 15, 99, 300, 7, 42, 128, 255, 3, 77};
        try (Scope scope = Scope.open("interop"); Autograd.GradMode off = Autograd.noGrad()) {
            Gemma3Model model = Gemma3Model.load(base, Device.CPU, DType.F32);
            LoraConfig config = new LoraConfig(4, 8, 0.0, LoraConfig.ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1);
            Map<String, LoraAdapter> adapters = Lora.attach(model, config, DType.F32, 11);
            long seed = 500;
            for (LoraAdapter a : adapters.values()) { // B is zero after peft's init: give the adapter an effect
                Ops.copyInto(Tensor.normal(a.b().shape(), DType.F32, Device.CPU, seed++, 0, 0.05), a.b());
            }
            Tensor t = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
            PeftAdapter.save(out.resolve("adapter"), adapters, config, base.toString());
            float[] withAdapter = model.logits(model.hidden(t, Gemma3Model.Options.defaults(), null)).toFloatArray();
            LoraMerge.merge(model, adapters);
            LoraMerge.export(model, out.resolve("merged"), LoraMerge.DEFAULT_SHARD_BYTES);
            float[] merged = model.logits(model.hidden(t, Gemma3Model.Options.defaults(), null)).toFloatArray();
            Files.writeString(out.resolve("jtune_logits.json"), "{\"ids\": " + Arrays.toString(ids) + ", \"adapter\": "
                    + Arrays.toString(withAdapter) + ", \"merged\": " + Arrays.toString(merged) + "}");
            System.out.println("wrote " + out.resolve("adapter") + ", " + out.resolve("merged") + " and jtune_logits.json");
        }
    }
}

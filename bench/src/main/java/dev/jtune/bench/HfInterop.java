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
import dev.jtune.train.loop.Trainable;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Writes what HF must be able to read: a jtune LoRA adapter on a base checkpoint, the merged full checkpoint, and
 * the logits jtune computes with each, for {@code hf_interop.py} to compare with transformers + peft.
 * Usage: {@code HfInterop <base checkpoint dir> <output dir> [image]}; an image-text base (its config.json has a
 * vision_config) gets the image-text case ({@link #imageText}), the image by default {@code img0.png} in the base.
 */
public final class HfInterop {
    private HfInterop() {
    }

    public static void main(String[] args) throws Exception {
        Path base = Path.of(args[0]);
        Path out = Path.of(args[1]);
        if (dev.jtune.gemma.config.Gemma3VisionConfig.read(base).isPresent()) {
            imageText(base, out, args.length > 2 ? Path.of(args[2]) : base.resolve("img0.png"));
            return;
        }
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

    /**
     * An image-text base (Gemma3ForConditionalGeneration): LoRA on the language model and, as --vision_lora, on the
     * tower, with the projector trained beside them (its weights perturbed, so non_lora_state_dict matters), saved as the
     * trainer saves it (adapter + non_lora_state_dict.safetensors); merged into a fresh copy of the base as jtune merge
     * does; the logits of one image and a few words with each, and the pixel values and token types HF needs.
     */
    private static void imageText(Path base, Path out, Path image) throws Exception {
        try (Scope scope = Scope.open("interop"); Autograd.GradMode off = Autograd.noGrad()) {
            var mm = dev.jtune.gemma.vision.Gemma3MultimodalModel.load(base, Device.CPU, DType.F32);
            var vc = mm.visionConfig();
            List<Integer> idList = new java.util.ArrayList<>(List.of(2, vc.boiToken()));
            for (int i = 0; i < vc.mmTokensPerImage(); i++) {
                idList.add(vc.imageToken());
            }
            idList.addAll(List.of(vc.eoiToken(), 15, 99, 300, 7, 42));
            int[] ids = idList.stream().mapToInt(Integer::intValue).toArray();
            int[] types = idList.stream().mapToInt(v -> v == vc.imageToken() ? 1 : 0).toArray();
            LoraConfig config = new LoraConfig(4, 8, 0.0, LoraConfig.ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1);
            var t = Trainable.lora(mm, config, 11, base.toString(), java.util.EnumSet.of(Trainable.Part.PROJECTOR),
                    java.util.EnumSet.of(Trainable.Part.LANGUAGE_MODEL, Trainable.Part.VISION_TOWER));
            long seed = 500;
            for (var e : t.namedParameters().entrySet()) { // B is zero after peft's init; the projector as loaded: move both
                double std = e.getKey().endsWith("lora_B.weight") ? 0.05 : e.getKey().contains("multi_modal_projector") ? 0.01 : 0;
                if (std > 0) {
                    Ops.copyInto(e.getValue().add(Tensor.normal(e.getValue().shape(), DType.F32, Device.CPU, seed++, 0, std)), e.getValue());
                }
            }
            t.eval();
            t.save(out.resolve("adapter"));
            Tensor pixels = new dev.jtune.gemma.vision.ImagePreprocessor(vc).pixelValues(List.of(image), Device.CPU);
            Tensor idsT = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
            float[] withAdapter = mm.logits(mm.hidden(idsT, pixels, Gemma3Model.Options.defaults(), null)).toFloatArray();
            var fresh = dev.jtune.gemma.vision.Gemma3MultimodalModel.load(base, Device.CPU, DType.F32);
            PeftAdapter.Loaded loaded = PeftAdapter.load(out.resolve("adapter"), fresh, DType.F32);
            Trainable.applyNonLora(out.resolve("adapter"), fresh);
            LoraMerge.merge(fresh, loaded.adapters());
            fresh.export(out.resolve("merged"), LoraMerge.DEFAULT_SHARD_BYTES);
            float[] merged = fresh.logits(fresh.hidden(idsT, pixels, Gemma3Model.Options.defaults(), null)).toFloatArray();
            new dev.jtune.gemma.safetensors.SafeTensorsWriter().metadata("format", "pt").add("pixel_values", pixels).write(out.resolve("pixel_values.safetensors"));
            Files.writeString(out.resolve("jtune_logits.json"), "{\"ids\": " + Arrays.toString(ids) + ", \"token_type_ids\": "
                    + Arrays.toString(types) + ", \"adapter\": " + Arrays.toString(withAdapter) + ", \"merged\": " + Arrays.toString(merged) + "}");
            System.out.println("wrote " + out.resolve("adapter") + " (" + loaded.adapters().size() + " adapters, tower's included, and "
                    + Trainable.NON_LORA_FILE + "), " + out.resolve("merged") + ", pixel_values.safetensors and jtune_logits.json");
        }
    }
}

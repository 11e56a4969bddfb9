package dev.jtune.gemma.lora;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.io.AtomicFiles;
import dev.jtune.engine.nn.Linear;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsException;
import dev.jtune.gemma.safetensors.SafeTensorsWriter;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Folds LoRA into the base weights ({@code W += scale * B A}, computed in fp32 and rounded once to W's dtype)
 * and exports a full HF checkpoint: config.json plus safetensors, sharded above a size (2 GB by default, as
 * transformers' save_pretrained). The tied embedding stays tied: it is written once, as
 * {@code model.embed_tokens.weight}, with no lm_head copy.
 */
public final class LoraMerge {
    /** transformers' default max_shard_size ("2GB"). */
    public static final long DEFAULT_SHARD_BYTES = 2_000_000_000L;

    private LoraMerge() {
    }

    /**
     * Merges every adapter into its module's weight (a bias stays as it is) in place and detaches the adapters from the model. An NF4 weight
     * becomes a dense one in the model's dtype (as peft's merge_and_unload on a 4-bit base), which the model computes
     * with from then on.
     */
    public static void merge(Gemma3Model model, Map<String, LoraAdapter> adapters) {
        merge(model::linear, adapters);
    }

    /** {@link #merge(Gemma3Model, Map)} on an image-text model: adapters of its language model and of its tower. */
    public static void merge(Gemma3MultimodalModel model, Map<String, LoraAdapter> adapters) {
        merge(model::linear, adapters);
    }

    private static void merge(java.util.function.Function<String, Linear> linears, Map<String, LoraAdapter> adapters) {
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (LoraAdapter a : adapters.values()) {
                Linear linear = linears.apply(a.module());
                try (Scope tmp = Scope.open("lora delta")) {
                    linear.addToWeight(a.b().cast(DType.F32).matmul(a.a().cast(DType.F32)).scale(a.scale()));
                }
                linear.detach();
            }
        }
    }

    /**
     * Writes {@code model} (merged or not) as an HF checkpoint directory, atomically per file: every tensor in the
     * model's dtype (NF4 modules dequantized to it), and config.json's {@code dtype} naming that dtype.
     */
    public static void export(Gemma3Model model, Path dir, long maxShardBytes) {
        try (Scope dense = Scope.open("export")) { // NF4 modules' dequantized copies live only while writing
            Files.createDirectories(dir);
            SafeTensorsWriter writer = new SafeTensorsWriter().metadata("format", "pt");
            model.stateDict().forEach(writer::add); // NF4 weights dequantized into this scope
            writer.writeSharded(dir, maxShardBytes);
            // the config names the dtype of the tensors written (the model's), not the one its source config named
            AtomicFiles.writeString(dir.resolve("config.json"), model.config().withWeightDType(model.dtype()).toHfJson());
        } catch (IOException e) {
            throw new SafeTensorsException(dir, null, "exporting the model failed", e);
        }
    }
}

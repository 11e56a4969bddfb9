package dev.jtune.gemma.lora;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Merging folds the adapter's effect into the weights; the exported checkpoint loads back and computes the same. */
class LoraMergeTest {
    private static float[] logits(Gemma3Model model, Tensor ids) {
        try (Autograd.GradMode off = Autograd.noGrad(); Scope s = Scope.open("logits")) {
            return model.logits(model.hidden(ids, Gemma3Model.Options.defaults(), null)).toFloatArray();
        }
    }

    private static double maxRelative(float[] a, float[] b) {
        double max = 0;
        double scale = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
            scale = Math.max(scale, Math.abs(b[i]));
        }
        return max / scale;
    }

    @Test
    void mergedAndExportedModelComputesWhatTheAdapterDid(@TempDir Path tmp) throws Exception {
        try (Scope scope = Scope.open("merge")) {
            Gemma3Model model = Gemma3Model.load(LoraGoldenTest.fixture("gemma3-tiny"), Device.CPU, DType.F32);
            PeftAdapter.Loaded loaded = PeftAdapter.load(LoraGoldenTest.fixture("gemma3-tiny-lora"), model, DType.F32);
            Tensor ids = Tensor.fromArray(new int[] {2, 10, 20, 30, 40, 50, 60, 70}, Shape.of(1, 8), DType.I32, Device.CPU);
            float[] withAdapter = logits(model, ids);
            LoraMerge.merge(model, loaded.adapters());
            float[] merged = logits(model, ids);
            assertTrue(maxRelative(merged, withAdapter) < 1e-5, "merged weights reproduce the adapter: " + maxRelative(merged, withAdapter));

            // a small shard limit forces several shards and an index, as transformers writes them above 2 GB
            LoraMerge.export(model, tmp, 300_000);
            assertTrue(Files.exists(tmp.resolve("model.safetensors.index.json")));
            try (SafeTensorsModel files = SafeTensorsModel.open(tmp)) {
                assertTrue(files.shardFiles().size() > 1);
                assertFalse(files.contains("lm_head.weight"), "the tied embedding is written once");
            }
            Gemma3Config back = Gemma3Config.read(tmp);
            assertEquals(model.config().layerTypes(), back.layerTypes());
            assertEquals(model.config().ropeThetaLocal(), back.ropeThetaLocal());
            Gemma3Model reloaded = Gemma3Model.load(tmp, Device.CPU, DType.F32);
            assertEquals(0.0, maxRelative(logits(reloaded, ids), merged), "the exported checkpoint loads back bit for bit");
        }
    }

    /**
     * A 4-bit base merged in place: the NF4 weights become 16-bit ones that the same model then computes with (it used to
     * throw ClosedException: the forward still read the dense weights freed at quantization), and its export loads back.
     */
    @Test
    void anNf4BaseMergedInPlaceComputesWhatTheAdapterDidAndExports(@TempDir Path tmp) {
        long seed = System.nanoTime();
        try (Scope scope = Scope.open("qlora merge")) {
            Gemma3Model model = Gemma3Model.load(LoraGoldenTest.fixture("gemma3-tiny"), Device.CPU, DType.F32);
            model.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
            java.util.Map<String, LoraAdapter> adapters = Lora.attach(model, LoraConfig.of(4, 8), DType.F32, seed);
            long s = seed;
            try (Autograd.GradMode off = Autograd.noGrad()) {
                for (LoraAdapter a : adapters.values()) { // peft's B starts at zero: give the adapter an effect
                    dev.jtune.engine.Ops.copyInto(Tensor.normal(a.b().shape(), DType.F32, Device.CPU, ++s, 0, 0.05), a.b());
                }
            }
            Tensor ids = Tensor.fromArray(new int[] {2, 10, 20, 30, 40, 50, 60, 70}, Shape.of(1, 8), DType.I32, Device.CPU);
            float[] base;
            Lora.detach(model, adapters);
            base = logits(model, ids);
            Lora.attach(model, adapters);
            float[] withAdapter = logits(model, ids);
            assertTrue(maxRelative(base, withAdapter) > 1e-3, "the adapter changes the logits: " + maxRelative(base, withAdapter) + " (seed " + seed + ")");
            LoraMerge.merge(model, adapters);
            float[] merged = logits(model, ids);
            assertTrue(maxRelative(merged, withAdapter) < 1e-5, "merged in place: " + maxRelative(merged, withAdapter) + " (seed " + seed + ")");
            LoraMerge.export(model, tmp, LoraMerge.DEFAULT_SHARD_BYTES);
            Gemma3Model reloaded = Gemma3Model.load(tmp, Device.CPU, DType.F32);
            float[] back = logits(reloaded, ids);
            assertTrue(maxRelative(back, withAdapter) < 1e-5, "reloaded from the export: " + maxRelative(back, withAdapter) + " (seed " + seed + ")");
            assertEquals(0.0, maxRelative(back, merged), "the export holds the merged weights");
        }
    }

    /** config.json must name the dtype of the tensors beside it (the fixture's config says bfloat16; HF loads by it). */
    @Test
    void theExportedConfigNamesTheDtypeOfTheTensorsWritten(@TempDir Path tmp) throws Exception {
        Gemma3Config config = Gemma3Config.read(LoraGoldenTest.fixture("gemma3-tiny"));
        assertEquals("bfloat16", config.torchDtype(), "the fixture's own config");
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            Path dir = tmp.resolve(dtype.toString());
            try (Scope scope = Scope.open("export")) {
                Gemma3Model model = Gemma3Model.random(config, Device.CPU, dtype, 5);
                model.quantizeLinearWeights(Nf4Scales.FP32); // NF4 modules are written dequantized, in the model's dtype too
                LoraMerge.export(model, dir, LoraMerge.DEFAULT_SHARD_BYTES);
            }
            String json = Files.readString(dir.resolve("config.json"));
            String expected = dtype == DType.F32 ? "float32" : "bfloat16";
            assertEquals(expected, new com.fasterxml.jackson.databind.ObjectMapper().readTree(json).path("dtype").asText(), json);
            assertFalse(json.contains("torch_dtype"), "one dtype field (transformers 5's), no contradicting older one");
            assertEquals(dtype, Gemma3Config.read(dir).weightDType().orElseThrow());
            try (SafeTensorsModel files = SafeTensorsModel.open(dir);
                 SafeTensorsModel hf = SafeTensorsModel.open(LoraGoldenTest.fixture("gemma3-tiny"))) {
                for (String name : files.names()) {
                    assertEquals(dtype, files.info(name).dtype(), name);
                }
                assertEquals(new java.util.HashSet<>(hf.names()), new java.util.HashSet<>(files.names()), "every tensor of HF's checkpoint, once");
            }
        }
    }
}

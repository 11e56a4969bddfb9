package dev.jtune.gemma.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** gemma3-tiny-lora against peft: loss, every LoRA gradient, three AdamW steps; and the adapter file format. */
class LoraGoldenTest {
    static Path fixture(String name) {
        return dev.jtune.gemma.testing.Goldens.fixture("" + name);
    }

    static double relativeError(Tensor got, Tensor ref) {
        return dev.jtune.gemma.testing.Goldens.relativeError(got, ref);
    }

    /** peft's runtime parameter name (with the adapter name "default"), as the golden file keys it. */
    static String runtimeName(String module, boolean a) {
        return "base_model.model." + module + (a ? ".lora_A.default.weight" : ".lora_B.default.weight");
    }

    /**
     * Loss, gradients and three AdamW steps of the fixture adapter on {@code device} in {@code dtype}: every gradient
     * within {@code gradTol}, their median within {@code medianTol} (reduced precision spreads its error over all 84
     * gradients; the median shows a systematic error the worst one would hide in rounding noise).
     */
    static void checkAgainstPeft(Device device, DType dtype, double lossTol, double gradTol, double medianTol, double stepTol) throws IOException {
        checkAgainstPeft(device, dtype, null, lossTol, gradTol, medianTol, stepTol);
    }

    /** As above, the adapters' products computed in {@code compute} (null: peft's semantics, the adapters' fp32). */
    static void checkAgainstPeft(Device device, DType dtype, DType compute, double lossTol, double gradTol, double medianTol, double stepTol)
            throws IOException {
        JsonNode golden = new ObjectMapper().readTree(fixture("gemma3-tiny-lora/golden.json").toFile());
        try (Scope scope = Scope.open("lora", MemoryCategory.WEIGHTS);
             SafeTensorsFile grads = SafeTensorsFile.open(fixture("gemma3-tiny-lora/golden.safetensors"));
             SafeTensorsFile batch = SafeTensorsFile.open(fixture("gemma3-tiny/golden.safetensors"))) {
            Gemma3Model model = Gemma3Model.load(fixture("gemma3-tiny"), device, dtype);
            PeftAdapter.Loaded loaded = PeftAdapter.load(fixture("gemma3-tiny-lora"), model, DType.F32);
            assertEquals(42, loaded.adapters().size(), "7 projections x 6 layers");
            if (compute != null) {
                loaded.adapters().values().forEach(a -> model.linear(a.module()).attach(a.computingIn(compute)));
            }
            assertEquals(2.0, loaded.config().scale());
            for (Tensor p : model.stateDict().values()) {
                assertTrue(!p.requiresGrad(), "the base stays frozen");
            }
            Tensor ids = batch.load("input_ids", Device.CPU);
            Tensor labels = batch.load("labels", Device.CPU);
            JsonNode cfg = golden.get("adamw");
            AdamW opt = new AdamW(Lora.parameters(loaded.adapters()), new AdamW.Config(cfg.get("lr").asDouble(),
                    cfg.get("betas").get(0).asDouble(), cfg.get("betas").get(1).asDouble(), cfg.get("eps").asDouble(), cfg.get("weight_decay").asDouble()));
            double worstGrad = 0;
            List<Double> gradErrors = new ArrayList<>();
            for (int step = 0; step < 3; step++) {
                try (Scope s = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
                    Tensor loss = model.loss(ids, labels, Gemma3Model.Options.defaults());
                    double expected = golden.get("losses_before_each_adamw_step").get(step).asDouble();
                    double value = loss.item();
                    assertTrue(Math.abs(value - expected) <= lossTol * Math.abs(expected), "loss before step " + step + ": " + value + " vs peft " + expected);
                    loss.backward();
                }
                if (step == 0) {
                    for (LoraAdapter a : loaded.adapters().values()) {
                        for (boolean isA : new boolean[] {true, false}) {
                            Tensor g = (isA ? a.a() : a.b()).grad();
                            double e = relativeError(g, grads.load("grad." + runtimeName(a.module(), isA), Device.CPU));
                            assertTrue(e <= gradTol, "gradient of " + runtimeName(a.module(), isA) + ": relative error " + e);
                            worstGrad = Math.max(worstGrad, e);
                            gradErrors.add(e);
                        }
                    }
                    for (Tensor p : model.stateDict().values()) {
                        assertNull(p.grad(), "no gradient reaches the frozen base");
                    }
                }
                opt.step();
                opt.zeroGrad();
            }
            double worstStep = 0;
            for (LoraAdapter a : loaded.adapters().values()) {
                for (boolean isA : new boolean[] {true, false}) {
                    double e = relativeError(isA ? a.a() : a.b(), grads.load("after3." + runtimeName(a.module(), isA), Device.CPU));
                    assertTrue(e <= stepTol, "after three AdamW steps, " + runtimeName(a.module(), isA) + ": relative error " + e);
                    worstStep = Math.max(worstStep, e);
                }
            }
            gradErrors.sort(null);
            double median = gradErrors.get(gradErrors.size() / 2);
            assertTrue(median <= medianTol, "median gradient relative error " + median);
            System.out.printf("%s %s LoRA%s: gradient relative error worst %.2e, median %.2e, %d of %d above 2e-2; worst weight after 3 AdamW steps %.2e%n",
                    device, dtype, compute == null ? "" : " computing in " + compute, worstGrad, median, gradErrors.stream().filter(e -> e > 2e-2).count(), gradErrors.size(), worstStep);
        }
    }

    @Test
    void cpuFloat32MatchesPeft() throws IOException {
        checkAgainstPeft(Device.CPU, DType.F32, 1e-4, 1e-4, 1e-4, 1e-4);
    }

    /**
     * HF Trainer's --bf16 semantics (autocast: the adapters' products in bf16), within the error of HF's own autocast
     * run on cpu (see {@link LoraGoldenGpuTest}).
     */
    @Test
    void cpuBfloat16AutocastMatchesPeftWithinBf16sOwnError() throws IOException {
        checkAgainstPeft(Device.CPU, DType.BF16, DType.BF16, 1e-2, 6e-2, 3.5e-2, 1.5e-1);
    }

    /** The bf16 path without a GPU, within the error HF's own bf16 run has on cpu (see {@link LoraGoldenGpuTest}). */
    @Test
    void cpuBfloat16MatchesPeftWithinBf16sOwnError() throws IOException {
        checkAgainstPeft(Device.CPU, DType.BF16, 1e-2, 6e-2, 3e-2, 1.5e-1);
    }

    @Test
    void savedAdaptersReloadBitExactlyWithPeftsKeysAndConfig(@TempDir Path tmp) throws IOException {
        try (Scope scope = Scope.open("roundtrip")) {
            Gemma3Model model = Gemma3Model.load(fixture("gemma3-tiny"), Device.CPU, DType.F32);
            LoraConfig config = new LoraConfig(4, 8, 0.0, LoraConfig.ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1);
            Map<String, LoraAdapter> made = Lora.attach(model, config, DType.F32, 7);
            long seed = 100;
            for (LoraAdapter a : made.values()) { // B starts at zero (peft's init); make it non-trivial for the round trip
                assertEquals(0.0, Arrays.stream(a.b().toDoubleArray()).map(Math::abs).sum(), "peft initialises B to zeros");
                dev.jtune.engine.Ops.copyInto(Tensor.randn(a.b().shape(), DType.F32, Device.CPU, seed++), a.b());
            }
            PeftAdapter.save(tmp, made, config, "gemma3-tiny");
            // the same keys and config fields peft wrote for the same settings
            try (SafeTensorsFile ours = SafeTensorsFile.open(tmp.resolve(PeftAdapter.WEIGHTS_FILE));
                 SafeTensorsFile peft = SafeTensorsFile.open(fixture("gemma3-tiny-lora/adapter_model.safetensors"))) {
                assertEquals(new TreeSet<>(peft.names()), new TreeSet<>(ours.names()));
                assertEquals(peft.metadata(), ours.metadata());
                for (String n : peft.names()) {
                    assertEquals(peft.info(n).shape(), ours.info(n).shape(), n);
                    assertEquals(peft.info(n).dtype(), ours.info(n).dtype(), n);
                }
            }
            ObjectMapper json = new ObjectMapper();
            JsonNode ours = json.readTree(tmp.resolve(PeftAdapter.CONFIG_FILE).toFile());
            JsonNode peft = json.readTree(fixture("gemma3-tiny-lora/adapter_config.json").toFile());
            for (String field : List.of("peft_type", "r", "lora_alpha", "lora_dropout", "bias", "fan_in_fan_out", "use_dora", "use_rslora", "init_lora_weights")) {
                assertEquals(peft.get(field), ours.get(field), field);
            }
            assertEquals(new TreeSet<>(textList(peft.get("target_modules"))), new TreeSet<>(textList(ours.get("target_modules"))));
            // reload: bit-exact
            Gemma3Model other = Gemma3Model.load(fixture("gemma3-tiny"), Device.CPU, DType.F32);
            PeftAdapter.Loaded back = PeftAdapter.load(tmp, other, DType.F32);
            for (LoraAdapter a : made.values()) {
                LoraAdapter b = back.adapters().get(a.module());
                assertArrayEquals(a.a().toByteArray(), b.a().toByteArray(), a.module());
                assertArrayEquals(a.b().toByteArray(), b.b().toByteArray(), a.module());
            }
        }
    }

    @Test
    void moduleSelectionHonoursTargetsExclusionsAndTheLastN() {
        try (Scope scope = Scope.open("select")) {
            Gemma3Model model = Gemma3Model.load(fixture("gemma3-tiny"), Device.CPU, DType.F32);
            List<String> all = Lora.selectModules(model, LoraConfig.of(8, 16));
            assertEquals(42, all.size());
            List<String> attn = Lora.selectModules(model, new LoraConfig(8, 16, 0, List.of("q_proj", "v_proj"), List.of("layers.0."), -1));
            assertEquals(10, attn.size(), attn.toString());
            assertTrue(attn.stream().noneMatch(m -> m.startsWith("model.layers.0.")));
            List<String> last = Lora.selectModules(model, new LoraConfig(8, 16, 0, LoraConfig.ALL_LINEAR, List.of(), 3));
            assertEquals(new ArrayList<>(all.subList(39, 42)), last);
            assertEquals(Arrays.asList("model.layers.5.mlp.gate_proj", "model.layers.5.mlp.up_proj", "model.layers.5.mlp.down_proj"), last);
        }
    }

    private static List<String> textList(JsonNode n) {
        List<String> out = new ArrayList<>();
        n.forEach(x -> out.add(x.asText()));
        return out;
    }
}

package dev.jtune.gemma.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * gemma3-tiny against HF transformers (float32 compute from the bf16 weights): logits, every hidden state, the
 * loss and every parameter's gradient, on the cpu in float32.
 */
class Gemma3GoldenTest {

    static Path fixture(String name) {
        return dev.jtune.gemma.testing.Goldens.fixture("" + name);
    }

    static double goldenLoss() throws IOException {
        return new ObjectMapper().readTree(fixture("gemma3-tiny/golden.json").toFile()).get("loss").asDouble();
    }

    static double relativeError(Tensor got, Tensor ref) {
        return dev.jtune.gemma.testing.Goldens.relativeError(got, ref);
    }

    /** Runs the golden batch on {@code device} in {@code dtype} and checks against HF within the given bounds. */
    static void checkAgainstGolden(Device device, DType dtype, double logitTol, double hiddenTol, double lossTol, double gradTol)
            throws IOException {
        try (Scope scope = Scope.open("golden", MemoryCategory.WEIGHTS);
             SafeTensorsFile golden = SafeTensorsFile.open(fixture("gemma3-tiny/golden.safetensors"))) {
            Gemma3Model model = Gemma3Model.load(fixture("gemma3-tiny"), device, dtype);
            for (Tensor p : model.stateDict().values()) {
                p.requiresGrad(true);
            }
            Tensor ids = golden.load("input_ids", Device.CPU);
            Tensor labels = golden.load("labels", Device.CPU);
            List<Tensor> hidden = new ArrayList<>();
            Tensor h;
            try (Scope step = Scope.open("forward", MemoryCategory.ACTIVATIONS)) {
                h = model.hidden(ids, Gemma3Model.Options.defaults(), hidden::add);
                Tensor logits = model.logits(h);
                double e = relativeError(logits.cast(DType.F32), golden.load("logits", Device.CPU));
                System.out.printf("%s %s: logits relative error %.2e%n", device, dtype, e);
                assertTrue(e <= logitTol, "logits relative error " + e);
                for (int i = 0; i < hidden.size(); i++) {
                    double he = relativeError(hidden.get(i).cast(DType.F32), golden.load("hidden_states." + i, Device.CPU));
                    assertTrue(he <= hiddenTol, "hidden_states." + i + " relative error " + he);
                }
                assertEquals(model.config().numHiddenLayers() + 1, hidden.size(), "hidden states reported");
            }
            try (Scope step = Scope.open("train step", MemoryCategory.ACTIVATIONS)) {
                Tensor loss = model.loss(ids, labels, Gemma3Model.Options.defaults());
                double value = loss.item();
                double expected = goldenLoss();
                System.out.printf("%s %s: loss %.6f vs HF %.6f%n", device, dtype, value, expected);
                assertTrue(Math.abs(value - expected) <= lossTol * Math.abs(expected), "loss " + value + " vs HF " + expected);
                loss.backward();
            }
            double worst = 0;
            for (Map.Entry<String, Tensor> p : model.stateDict().entrySet()) {
                assertNotNull(p.getValue().grad(), "no gradient for " + p.getKey());
                double ge = relativeError(p.getValue().grad().cast(DType.F32), golden.load("grad." + p.getKey(), Device.CPU));
                assertTrue(ge <= gradTol, "gradient of " + p.getKey() + " relative error " + ge);
                worst = Math.max(worst, ge);
            }
            System.out.printf("%s %s: worst gradient relative error %.2e over %d parameters%n", device, dtype, worst, model.stateDict().size());
        }
    }

    @Test
    void cpuFloat32MatchesHf() throws IOException {
        checkAgainstGolden(Device.CPU, DType.F32, 1e-4, 1e-4, 1e-4, 1e-3);
    }

    @Test
    void checkpointedLayersGiveTheSameGradients() {
        try (Scope scope = Scope.open("checkpoint", MemoryCategory.WEIGHTS);
             SafeTensorsFile golden = SafeTensorsFile.open(fixture("gemma3-tiny/golden.safetensors"))) {
            Gemma3Model model = Gemma3Model.load(fixture("gemma3-tiny"), Device.CPU, DType.F32);
            Tensor ids = golden.load("input_ids", Device.CPU);
            Tensor labels = golden.load("labels", Device.CPU);
            Map<String, double[]> plain = gradients(model, ids, labels, Gemma3Model.Checkpointing.NONE);
            for (Gemma3Model.Checkpointing c : new Gemma3Model.Checkpointing[] {Gemma3Model.Checkpointing.LAYERS, Gemma3Model.Checkpointing.HALVES}) {
                Map<String, double[]> checkpointed = gradients(model, ids, labels, c);
                for (String name : plain.keySet()) {
                    assertTrue(java.util.Arrays.equals(plain.get(name), checkpointed.get(name)), "gradient of " + name + " differs with checkpointing " + c);
                }
            }
        }
    }

    /**
     * Activation offload: the checkpointed inputs wait in host memory (on the cpu, a copy) and come back for the
     * recomputation; the same arithmetic, so the same gradients bit for bit, for both checkpointing modes and over two
     * steps (the second reuses the pooled host buffers).
     */
    @Test
    void offloadedActivationsGiveTheSameGradients() {
        try (Scope scope = Scope.open("offload", MemoryCategory.WEIGHTS);
             SafeTensorsFile golden = SafeTensorsFile.open(fixture("gemma3-tiny/golden.safetensors"));
             dev.jtune.engine.offload.HostActivationStore store = new dev.jtune.engine.offload.HostActivationStore(Device.CPU)) {
            Gemma3Model model = Gemma3Model.load(fixture("gemma3-tiny"), Device.CPU, DType.F32);
            Tensor ids = golden.load("input_ids", Device.CPU);
            Tensor labels = golden.load("labels", Device.CPU);
            for (Gemma3Model.Checkpointing c : new Gemma3Model.Checkpointing[] {Gemma3Model.Checkpointing.LAYERS, Gemma3Model.Checkpointing.HALVES}) {
                Map<String, double[]> onDevice = gradients(model, ids, labels, Gemma3Model.Options.defaults().withCheckpointing(c));
                for (int step = 0; step < 2; step++) {
                    Map<String, double[]> offloaded = gradients(model, ids, labels, Gemma3Model.Options.defaults().withCheckpointing(c).withActivations(store));
                    for (String name : onDevice.keySet()) {
                        assertTrue(java.util.Arrays.equals(onDevice.get(name), offloaded.get(name)),
                                "gradient of " + name + " differs with offloaded activations, checkpointing " + c + ", step " + step);
                    }
                }
            }
        }
    }

    private static Map<String, double[]> gradients(Gemma3Model model, Tensor ids, Tensor labels, Gemma3Model.Checkpointing checkpoint) {
        return gradients(model, ids, labels, Gemma3Model.Options.defaults().withCheckpointing(checkpoint));
    }

    private static Map<String, double[]> gradients(Gemma3Model model, Tensor ids, Tensor labels, Gemma3Model.Options options) {
        for (Tensor p : model.stateDict().values()) {
            p.zeroGrad();
            p.requiresGrad(true);
        }
        try (Scope step = Scope.open("step", MemoryCategory.ACTIVATIONS)) {
            model.loss(ids, labels, options).backward();
        }
        Map<String, double[]> out = new java.util.LinkedHashMap<>();
        model.stateDict().forEach((name, p) -> out.put(name, p.grad().toDoubleArray()));
        return out;
    }
}

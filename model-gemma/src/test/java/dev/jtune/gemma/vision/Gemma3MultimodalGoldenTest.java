package dev.jtune.gemma.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.gemma.model.Gemma3Model;
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
 * gemma3-mm-tiny against HF transformers' Gemma3ForConditionalGeneration (float32 compute from the bf16 weights, eager
 * attention; see the fixture's README): fed the golden pixel_values, the vision tower's output, the image features,
 * the logits (train mode, and eval), the loss and every parameter's gradient (tower, projector, language model), on
 * the cpu in float32; errors per tensor, relative to its norm (but for the analytically zero key-bias gradients).
 */
class Gemma3MultimodalGoldenTest {
    static Path fixture(String name) {
        return dev.jtune.gemma.testing.Goldens.fixture("gemma3-mm-tiny/" + name);
    }

    static double relativeError(Tensor got, Tensor ref) {
        return dev.jtune.gemma.testing.Goldens.relativeError(got, ref);
    }

    private static double norm(Tensor t) {
        double s = 0;
        for (double x : t.toDoubleArray()) {
            s += x * x;
        }
        return Math.sqrt(s);
    }

    private static void within(String run, String what, Tensor got, Tensor ref, double tol) {
        double e = relativeError(got.cast(DType.F32), ref);
        System.out.printf("%s: %s relative error %.2e%n", run, what, e);
        assertTrue(e <= tol, run + ": " + what + " relative error " + e + " (bound " + tol + ")");
    }

    /**
     * Export writes what HF wrote: the fixture loaded in bf16 and exported gives the same tensor names (HF's key layout,
     * as transformers saved it), dtypes, shapes and bytes, and a config that reads back as the same model.
     */
    @Test
    void exportWritesTheCheckpointHfWrote(@org.junit.jupiter.api.io.TempDir Path tmp) {
        Path out = tmp.resolve("export");
        try (Scope s = Scope.open("export", MemoryCategory.WEIGHTS);
             SafeTensorsFile hf = SafeTensorsFile.open(fixture("model.safetensors"))) {
            Gemma3MultimodalModel.load(fixture(""), Device.CPU, DType.BF16).export(out, Long.MAX_VALUE);
            try (SafeTensorsFile ours = SafeTensorsFile.open(out.resolve("model.safetensors"))) {
                assertEquals(new java.util.TreeSet<>(hf.names()), new java.util.TreeSet<>(ours.names()), "tensor names");
                for (String n : hf.names()) {
                    assertEquals(hf.info(n).fileDType(), ours.info(n).fileDType(), n);
                    assertEquals(hf.info(n).shape(), ours.info(n).shape(), n);
                    org.junit.jupiter.api.Assertions.assertArrayEquals(hf.load(n, Device.CPU).toFloatArray(), ours.load(n, Device.CPU).toFloatArray(), n);
                }
            }
            assertEquals(dev.jtune.gemma.config.Gemma3Config.read(fixture("")), dev.jtune.gemma.config.Gemma3Config.read(out), "text config");
            assertEquals(dev.jtune.gemma.config.Gemma3VisionConfig.read(fixture("")), dev.jtune.gemma.config.Gemma3VisionConfig.read(out), "vision config");
        }
    }

    /** A missing tensor and an unexpected one are errors naming them (the fixture copied, its weights rewritten). */
    @Test
    void missingAndUnexpectedTensorsAreNamed(@org.junit.jupiter.api.io.TempDir Path tmp) throws IOException {
        Path src = fixture("");
        for (String f : List.of("config.json", "golden.json")) {
            java.nio.file.Files.copy(src.resolve(f), tmp.resolve(f));
        }
        try (Scope s = Scope.open("load", MemoryCategory.WEIGHTS);
             dev.jtune.gemma.safetensors.SafeTensorsFile in = SafeTensorsFile.open(src.resolve("model.safetensors"))) {
            String dropped = "vision_tower.encoder.layers.1.mlp.fc2.bias";
            var w = new dev.jtune.gemma.safetensors.SafeTensorsWriter();
            for (String n : in.names()) {
                if (!n.equals(dropped)) {
                    w.copy(in, n);
                }
            }
            w.write(tmp.resolve("model.safetensors"));
            var e = org.junit.jupiter.api.Assertions.assertThrows(dev.jtune.engine.ShapeException.class,
                    () -> Gemma3MultimodalModel.load(tmp, Device.CPU, DType.F32));
            assertTrue(e.getMessage().contains(dropped), e.getMessage());

            var w2 = new dev.jtune.gemma.safetensors.SafeTensorsWriter();
            w2.copyAll(in);
            w2.add("vision_tower.head.probe.weight", Tensor.zeros(dev.jtune.engine.Shape.of(2, 2), DType.F32, Device.CPU));
            w2.write(tmp.resolve("model.safetensors"));
            var e2 = org.junit.jupiter.api.Assertions.assertThrows(dev.jtune.engine.ShapeException.class,
                    () -> Gemma3MultimodalModel.load(tmp, Device.CPU, DType.F32));
            assertTrue(e2.getMessage().contains("vision_tower.head.probe.weight"), e2.getMessage());
        }
    }

    /**
     * How close one run must come to HF's fp32 golden, each a norm-relative error (see {@link #relativeError}): the
     * tower's output, the image features, the logits (train and eval), the hidden states (NaN: not checked), the loss
     * (relative), the worst and the median parameter gradient.
     */
    record Bounds(double vision, double features, double logits, double hidden, double loss, double worstGradient, double medianGradient) {
        /** fp32 anywhere: absolute bounds, as the cpu golden always had. */
        static final Bounds FLOAT32 = new Bounds(1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-3, 1e-3);
    }

    @Test
    void cpuFloat32MatchesHf() throws IOException {
        checkAgainstHf(Device.CPU, DType.F32, Bounds.FLOAT32);
    }

    /** The training step under checkpointing (the tower's layers and the language model's halves recomputed) too. */
    @Test
    void cpuFloat32UnderCheckpointingMatchesHf() throws IOException {
        checkAgainstHf(Device.CPU, DType.F32, Bounds.FLOAT32, Gemma3Model.Options.defaults().withCheckpointing(Gemma3Model.Checkpointing.HALVES));
    }

    /** Runs the golden batch (two sequences, three images) on {@code device} in {@code dtype} against HF within {@code bounds}. */
    static void checkAgainstHf(Device device, DType dtype, Bounds bounds) throws IOException {
        checkAgainstHf(device, dtype, bounds, Gemma3Model.Options.defaults());
    }

    /** {@link #checkAgainstHf(Device, DType, Bounds)} with the training step's loss and gradients under {@code step}. */
    static void checkAgainstHf(Device device, DType dtype, Bounds bounds, Gemma3Model.Options step) throws IOException {
        JsonNode meta = new ObjectMapper().readTree(fixture("golden.json").toFile());
        String run = device + " " + dtype + (step.checkpointing() == Gemma3Model.Checkpointing.NONE ? "" : " " + step.checkpointing());
        try (Scope scope = Scope.open("mm golden", MemoryCategory.WEIGHTS);
             SafeTensorsFile golden = SafeTensorsFile.open(fixture("golden.safetensors"))) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(fixture(""), device, dtype);
            List<String> names = new ArrayList<>(model.namedParameters().keySet());
            List<String> hf = new ArrayList<>();
            meta.get("parameter_names_in_memory").forEach(n -> hf.add(n.asText()));
            // HF's names; the tower's and projector's in HF's order (the text layers keep jtune's order: random init draws
            // its seeds in it, see Gemma3ModelTreeTest)
            assertEquals(new java.util.HashSet<>(hf), new java.util.HashSet<>(names), "parameter names, as HF's named_parameters");
            assertEquals(hf.stream().filter(n -> !n.startsWith("model.language_model.")).toList(),
                    names.stream().filter(n -> !n.startsWith("model.language_model.")).toList(), "the tower's and projector's order");
            for (Parameter p : model.namedParameters().values()) {
                p.value().requiresGrad(true);
            }
            Tensor pixels = golden.load("pixel_values", Device.CPU);
            Tensor ids = golden.load("input_ids", Device.CPU);
            Tensor labels = golden.load("labels", Device.CPU);
            try (Scope s = Scope.open("vision", MemoryCategory.ACTIVATIONS)) {
                within(run, "vision tower output", model.visionStates(pixels), golden.load("vision_last_hidden_state", Device.CPU), bounds.vision());
                within(run, "image features", model.imageFeatures(pixels), golden.load("image_features", Device.CPU), bounds.features());
            }
            try (Scope s = Scope.open("forward", MemoryCategory.ACTIVATIONS)) {
                List<Tensor> hidden = new ArrayList<>();
                Tensor h = model.hidden(ids, pixels, Gemma3Model.Options.defaults(), hidden::add);
                within(run, "logits", model.logits(h), golden.load("logits", Device.CPU), bounds.logits());
                within(run, "eval logits", model.logits(h), golden.load("eval_logits", Device.CPU), bounds.logits());
                if (!Double.isNaN(bounds.hidden())) {
                    for (int i = 0; i < hidden.size(); i++) {
                        within(run, "hidden_states." + i, hidden.get(i), golden.load("hidden_states." + i, Device.CPU), bounds.hidden());
                    }
                }
            }
            try (Scope s = Scope.open("train step", MemoryCategory.ACTIVATIONS)) {
                Tensor loss = model.loss(ids, pixels, labels, step, 0);
                double value = loss.item();
                double expected = meta.get("loss").asDouble();
                double e = Math.abs(value - expected) / Math.abs(expected);
                System.out.printf("%s: loss %.6f vs HF %.6f (relative %.2e)%n", run, value, expected, e);
                assertTrue(e <= bounds.loss(), run + ": loss " + value + " vs HF " + expected + " (bound " + bounds.loss() + ")");
                loss.backward();
            }
            List<Double> errors = new ArrayList<>();
            double worst = 0;
            String worstName = null;
            for (Map.Entry<String, Parameter> p : model.namedParameters().entrySet()) {
                Tensor g = p.getValue().value().grad();
                assertNotNull(g, "no gradient for " + p.getKey());
                if (p.getKey().endsWith("self_attn.k_proj.bias")) {
                    // analytically zero (a key bias adds the same q.b to every score of a query: the softmax ignores it);
                    // HF's is rounding noise (~1e-9), so a relative error means nothing: ours must be noise too, against
                    // the same layer's query bias gradient (in fp32 1e-5 of it; in lower precision the noise is the
                    // precision's, held to the worst-gradient bound)
                    double ours = norm(g.cast(DType.F32));
                    double scale = norm(model.namedParameters().get(p.getKey().replace("k_proj", "q_proj")).value().grad().cast(DType.F32));
                    double noise = dtype == DType.F32 ? 1e-5 : bounds.worstGradient();
                    assertTrue(ours <= noise * scale, run + ": " + p.getKey() + ": gradient norm " + ours + " against the query bias's " + scale);
                    continue;
                }
                double e = relativeError(g.cast(DType.F32), golden.load("grad." + p.getKey(), Device.CPU));
                assertTrue(e <= bounds.worstGradient(), run + ": gradient of " + p.getKey() + " relative error " + e + " (bound " + bounds.worstGradient() + ")");
                errors.add(e);
                if (e > worst) {
                    worst = e;
                    worstName = p.getKey();
                }
            }
            errors.sort(null);
            double median = errors.get(errors.size() / 2);
            System.out.printf("%s: worst gradient relative error %.2e (%s), median %.2e over %d parameters%n",
                    run, worst, worstName, median, model.namedParameters().size());
            assertTrue(median <= bounds.medianGradient(), run + ": median gradient relative error " + median + " (bound " + bounds.medianGradient() + ")");
        }
    }
}

package dev.jtune.gemma.model;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.lora.Lora;
import dev.jtune.gemma.lora.LoraAdapter;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.testing.Steps;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Gemma 3 with its layers' weights offloaded to host memory ({@link Gemma3Model#offloadLayerWeights()}) computes
 * what it computes with them on the device, bit for bit on the cpu: the loss and every gradient of a full fine-tune
 * (gradients reach the host values) with layer and half checkpointing, and a QLoRA step's loss and adapter
 * gradients; training without recomputation is refused; the embedding stays on the device.
 */
class Gemma3WeightOffloadTest {
    private static final Gemma3Config CONFIG = Gemma3Config.read(Gemma3GoldenTest.fixture("gemma3-tiny"));

    private static Tensor[] batch(long seed) {
        Random rnd = new Random(seed);
        int[] ids = rnd.ints(2 * 12, 0, CONFIG.vocabSize()).toArray();
        return new Tensor[] {Tensor.fromArray(ids, Shape.of(2, 12), DType.I32, Device.CPU),
                Tensor.fromArray(ids, Shape.of(2, 12), DType.I32, Device.CPU)};
    }

    /** The loss and the gradients of {@code trained}, in order, for one forward and backward (shared with the GPU test). */
    static List<float[]> step(Gemma3Model m, List<Tensor> trained, Gemma3Model.Checkpointing c, Tensor[] batch) {
        return step(m, trained, Gemma3Model.Options.defaults().withCheckpointing(c), batch);
    }

    private static List<float[]> step(Gemma3Model m, List<Tensor> trained, Gemma3Model.Options options, Tensor[] batch) {
        return Steps.lossAndGradients(m, trained, options, batch);
    }

    static void assertSame(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), what + ": result " + i + " (the loss, then the gradients)");
        }
    }

    private static List<Tensor> trainAll(Gemma3Model m) {
        List<Tensor> out = new ArrayList<>();
        for (Parameter p : m.namedParameters().values()) {
            out.add(p.tensor().requiresGrad(true));
        }
        return out;
    }

    @Test
    void fullFineTuningWithOffloadedLayersEqualsTheDevicesBitForBit() {
        long seed = Seeds.seed();
        for (Gemma3Model.Checkpointing c : List.of(Gemma3Model.Checkpointing.LAYERS, Gemma3Model.Checkpointing.HALVES)) {
            try (Scope scope = Scope.open("full", MemoryCategory.WEIGHTS)) {
                Tensor[] batch = batch(seed);
                Gemma3Model plain = Gemma3Model.random(CONFIG, Device.CPU, DType.F32, seed);
                List<float[]> expected = step(plain, trainAll(plain), c, batch);
                Gemma3Model offloaded = Gemma3Model.random(CONFIG, Device.CPU, DType.F32, seed);
                trainAll(offloaded);
                offloaded.offloadLayerWeights();
                List<Tensor> trained = offloaded.namedParameters().values().stream().map(Parameter::tensor).toList();
                assertEquals(Placement.DEVICE, offloaded.embedding().placement(), "the embedding stays");
                assertEquals(Placement.HOST_MAPPED, offloaded.layers().get(2).mlp().upProj().weight().placement());
                for (int pass = 0; pass < 2; pass++) {
                    assertSame(expected, step(offloaded, trained, c, batch), c + ", pass " + pass);
                    offloaded.weightsChanged();
                }
                offloaded.offloadedWeights().orElseThrow().close();
            }
        }
    }

    /** With a tiled MLP the tiles' recomputations stage the layer too (half checkpointing: the tiles are the MLP's checkpoint). */
    @Test
    void aTiledMlpWithOffloadedLayersEqualsTheDevicesBitForBit() {
        long seed = Seeds.seed();
        for (Gemma3Model.Checkpointing c : List.of(Gemma3Model.Checkpointing.LAYERS, Gemma3Model.Checkpointing.HALVES)) {
            Gemma3Model.Options options = Gemma3Model.Options.defaults().withCheckpointing(c).withMlpTiling(Gemma3Model.MlpTiling.shards(3));
            try (Scope scope = Scope.open("tiled", MemoryCategory.WEIGHTS)) {
                Tensor[] batch = batch(seed);
                Gemma3Model plain = Gemma3Model.random(CONFIG, Device.CPU, DType.F32, seed);
                List<float[]> expected = step(plain, trainAll(plain), options, batch);
                Gemma3Model offloaded = Gemma3Model.random(CONFIG, Device.CPU, DType.F32, seed);
                trainAll(offloaded);
                offloaded.offloadLayerWeights();
                List<Tensor> trained = offloaded.namedParameters().values().stream().map(Parameter::tensor).toList();
                assertSame(expected, step(offloaded, trained, options, batch), c + " with 3 tiles");
                offloaded.offloadedWeights().orElseThrow().close();
            }
        }
    }

    @Test
    void qloraWithOffloadedLayersEqualsTheDevicesBitForBit() {
        long seed = Seeds.seed();
        List<List<float[]>> results = new ArrayList<>();
        for (boolean offload : new boolean[] {false, true}) {
            try (Scope scope = Scope.open("qlora", MemoryCategory.WEIGHTS)) {
                Tensor[] batch = batch(seed);
                Gemma3Model m = Gemma3Model.random(CONFIG, Device.CPU, DType.F32, seed);
                m.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
                Map<String, LoraAdapter> adapters = Lora.attach(m, LoraConfig.of(4, 8), DType.F32, seed + 1);
                List<Tensor> trained = Lora.parameters(adapters);
                for (Tensor t : trained) { // peft starts B at zero; move it so A's gradients are not zero too
                    try (var off = dev.jtune.engine.Autograd.noGrad()) {
                        dev.jtune.engine.Ops.copyInto(Tensor.normal(t.shape(), t.dtype(), Device.CPU, seed + 2, 0, 0.05), t);
                    }
                }
                if (offload) {
                    m.offloadLayerWeights();
                    assertEquals(Placement.HOST_MAPPED, m.linear("model.layers.1.self_attn.q_proj").quantizedWeight().codes().placement());
                }
                results.add(step(m, trained, Gemma3Model.Checkpointing.LAYERS, batch));
                m.offloadedWeights().ifPresent(w -> w.close());
            }
        }
        assertSame(results.get(0), results.get(1), "QLoRA");
    }

    /**
     * Loading layer by layer (each quantized as it is loaded, then moved to the host) gives the model that loading,
     * quantizing and offloading the whole does: the same loss and adapter gradients, bit for bit.
     */
    @Test
    void loadingLayerByLayerToTheHostEqualsOffloadingAfterwards() {
        long seed = Seeds.seed();
        java.nio.file.Path dir = Gemma3GoldenTest.fixture("gemma3-tiny");
        List<List<float[]>> results = new ArrayList<>();
        for (boolean byLayer : new boolean[] {false, true}) {
            try (Scope scope = Scope.open("load", MemoryCategory.WEIGHTS)) {
                Tensor[] batch = batch(seed);
                Gemma3Model m;
                if (byLayer) {
                    m = Gemma3Model.load(dir, Device.CPU, DType.F32,
                            new Gemma3Model.Loading(Nf4Scales.DOUBLE_QUANTIZED, Gemma3Model.Loading.Placement.HOST));
                    assertTrue(m.offloadedWeights().isPresent(), "offloaded as loaded");
                } else {
                    m = Gemma3Model.load(dir, Device.CPU, DType.F32);
                    m.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
                    m.offloadLayerWeights();
                }
                assertEquals(Placement.HOST_MAPPED, m.linear("model.layers.2.mlp.down_proj").quantizedWeight().codes().placement());
                assertEquals(Placement.HOST_MAPPED, m.layers().get(2).inputLayernorm().weight().placement());
                assertEquals(Placement.DEVICE, m.embedding().placement());
                List<Tensor> trained = Lora.parameters(Lora.attach(m, LoraConfig.of(4, 8), DType.F32, seed + 1));
                results.add(step(m, trained, Gemma3Model.Checkpointing.LAYERS, batch));
                m.offloadedWeights().orElseThrow().close();
            }
        }
        assertSame(results.get(0), results.get(1), "loaded layer by layer");
    }

    @Test
    void trainingWithoutRecomputationIsRefused() {
        try (Scope scope = Scope.open("refuse", MemoryCategory.WEIGHTS)) {
            Gemma3Model m = Gemma3Model.random(CONFIG, Device.CPU, DType.F32, 1);
            trainAll(m);
            m.offloadLayerWeights();
            Tensor[] batch = batch(1);
            UnsupportedOpException e = assertThrows(UnsupportedOpException.class,
                    () -> m.loss(batch[0], batch[1], Gemma3Model.Options.defaults()));
            assertTrue(e.getMessage().contains("gradient checkpointing"), e.getMessage());
            try (var off = dev.jtune.engine.Autograd.noGrad()) { // evaluation needs no recomputation
                assertTrue(Double.isFinite(m.loss(batch[0], batch[1], Gemma3Model.Options.defaults()).item()));
            }
            m.offloadedWeights().orElseThrow().close();
        }
    }
}

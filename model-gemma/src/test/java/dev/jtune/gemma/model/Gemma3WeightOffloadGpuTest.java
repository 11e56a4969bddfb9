package dev.jtune.gemma.model;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.lora.Lora;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Weight offload on a GPU: each layer's weights come from pinned host memory into one of two device slots on a copy
 * stream, one layer ahead; copies move bytes only and the same kernels run on the same values, so a bf16 full
 * fine-tune step (layer and half checkpointing, two passes, the second after the host values were declared changed)
 * and a QLoRA step give the loss and gradients of the model with its weights on the device, bit for bit. Fresh blocks
 * are poisoned, so a layer that ran before its copy landed would show.
 */
@Tag("gpu")
class Gemma3WeightOffloadGpuTest {
    private static final Gemma3Config CONFIG = Gemma3Config.read(Gemma3GoldenTest.fixture("gemma3-tiny"));
    private static final Device GPU = Device.cuda(0);

    private static Tensor[] batch(long seed) {
        int[] ids = new Random(seed).ints(2 * 64, 0, CONFIG.vocabSize()).toArray();
        return new Tensor[] {Tensor.fromArray(ids, Shape.of(2, 64), DType.I32, GPU), Tensor.fromArray(ids, Shape.of(2, 64), DType.I32, GPU)};
    }

    private static List<float[]> step(Gemma3Model m, List<Tensor> trained, Gemma3Model.Checkpointing c, Tensor[] batch) {
        return Gemma3WeightOffloadTest.step(m, trained, c, batch);
    }

    private static void assertSame(List<float[]> expected, List<float[]> actual, String what) {
        Gemma3WeightOffloadTest.assertSame(expected, actual, what);
    }

    @Test
    void fullFineTuningWithOffloadedLayersEqualsTheDevicesBitForBit() {
        long seed = Seeds.seed();
        CudaBackend.get(0).poisonAllocations(true);
        try {
            for (Gemma3Model.Checkpointing c : List.of(Gemma3Model.Checkpointing.LAYERS, Gemma3Model.Checkpointing.HALVES)) {
                try (Scope scope = Scope.open("full", MemoryCategory.WEIGHTS)) {
                    Tensor[] batch = batch(seed);
                    Gemma3Model plain = Gemma3Model.random(CONFIG, GPU, DType.BF16, seed);
                    List<Tensor> plainParams = plain.namedParameters().values().stream().map(p -> p.tensor().requiresGrad(true)).toList();
                    List<float[]> expected = step(plain, plainParams, c, batch);
                    Gemma3Model offloaded = Gemma3Model.random(CONFIG, GPU, DType.BF16, seed);
                    offloaded.namedParameters().values().forEach(p -> p.tensor().requiresGrad(true));
                    offloaded.offloadLayerWeights();
                    assertEquals(Placement.HOST_MAPPED, offloaded.layers().get(1).selfAttn().qProj().weight().placement());
                    List<Tensor> trained = offloaded.namedParameters().values().stream().map(Parameter::tensor).toList();
                    for (int pass = 0; pass < 2; pass++) {
                        assertSame(expected, step(offloaded, trained, c, batch), c + ", pass " + pass);
                        offloaded.weightsChanged();
                    }
                    offloaded.offloadedWeights().orElseThrow().close();
                }
            }
        } finally {
            CudaBackend.get(0).poisonAllocations(false);
        }
    }

    @Test
    void qloraWithOffloadedLayersEqualsTheDevicesBitForBit() {
        long seed = Seeds.seed();
        List<List<float[]>> results = new ArrayList<>();
        CudaBackend.get(0).poisonAllocations(true);
        try {
            for (boolean offload : new boolean[] {false, true}) {
                try (Scope scope = Scope.open("qlora", MemoryCategory.WEIGHTS)) {
                    Tensor[] batch = batch(seed);
                    Gemma3Model m = Gemma3Model.random(CONFIG, GPU, DType.BF16, seed);
                    m.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
                    List<Tensor> trained = Lora.parameters(Lora.attach(m, LoraConfig.of(4, 8), DType.F32, seed + 1));
                    try (Autograd.GradMode off = Autograd.noGrad()) { // B away from zero, so A's gradients are not zero too
                        for (Tensor t : trained) {
                            Ops.copyInto(Tensor.normal(t.shape(), t.dtype(), GPU, seed + 2, 0, 0.05), t);
                        }
                    }
                    if (offload) {
                        m.offloadLayerWeights();
                    }
                    results.add(step(m, trained, Gemma3Model.Checkpointing.LAYERS, batch));
                    m.offloadedWeights().ifPresent(w -> w.close());
                }
            }
        } finally {
            CudaBackend.get(0).poisonAllocations(false);
        }
        assertSame(results.get(0), results.get(1), "QLoRA");
    }
}

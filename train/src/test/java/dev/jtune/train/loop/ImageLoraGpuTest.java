package dev.jtune.train.loop;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.testing.Seeds;
import dev.jtune.train.data.Example;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LoRA on an image-text model's language model and tower (--vision_lora) with the projector trained beside them, on
 * the GPU in fp32 against the same on the cpu (gemma3-mm-tiny, drawn images, the adapters' B drawn so they act): the
 * loss and every trained parameter's gradient, plain and under checkpointing (the tower's layers recomputed).
 */
@Tag("gpu")
class ImageLoraGpuTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = Gemma3Model.Checkpointing.class, names = {"NONE", "HALVES"})
    void towerAndLanguageModelLoraMatchTheCpuInFloat32(Gemma3Model.Checkpointing checkpointing) throws IOException {
        long seed = Seeds.seed();
        try (Scope run = Scope.open("image lora gpu", MemoryCategory.WEIGHTS)) {
            Map<String, double[]> cpu = step(Device.CPU, checkpointing, seed);
            Map<String, double[]> gpu = step(Device.cuda(0), checkpointing, seed);
            double worst = 0;
            String worstName = null;
            for (String name : cpu.keySet()) {
                double e = relative(gpu.get(name), cpu.get(name));
                if (e > worst) {
                    worst = e;
                    worstName = name;
                }
            }
            System.out.printf("cuda vs cpu F32 %s: %d tensors, worst relative error %.2e (%s)%n", checkpointing, cpu.size(), worst, worstName);
            assertTrue(cpu.keySet().stream().anyMatch(n -> n.contains("vision_tower") && n.contains("lora_A")), "the tower's adapters are compared");
            assertTrue(worst <= 1e-4, worstName + ": " + worst + " (seed " + seed + ")");
        }
    }

    /** The loss ("loss") and every trained tensor's gradient after one micro-batch on {@code device}. */
    private Map<String, double[]> step(Device device, Gemma3Model.Checkpointing checkpointing, long seed) throws IOException {
        Map<String, double[]> out = new LinkedHashMap<>();
        try (Scope s = Scope.open("step on " + device)) {
            Gemma3MultimodalModel model = Gemma3MultimodalModel.load(ImageTrainerTest.fixture(), device, DType.F32);
            Trainable t = Trainable.lora(model, LoraConfig.of(4, 8), 11, "tiny-mm", Set.of(Trainable.Part.PROJECTOR),
                    EnumSet.of(Trainable.Part.LANGUAGE_MODEL, Trainable.Part.VISION_TOWER));
            long draw = 500;
            for (Map.Entry<String, Tensor> e : t.namedParameters().entrySet()) {
                if (e.getKey().endsWith("lora_B.weight")) { // zero after peft's init: give the adapters an effect
                    try (dev.jtune.engine.Autograd.GradMode off = dev.jtune.engine.Autograd.noGrad()) {
                        Ops.copyInto(Tensor.normal(e.getValue().shape(), DType.F32, Device.CPU, draw++, 0, 0.05).to(device), e.getValue());
                    }
                }
            }
            List<Example> examples = ImageTrainerTest.examples(model.visionConfig(), 4, new Random(seed), dir);
            Batcher b = new Batcher(examples, 4, 1, 0);
            Tensor loss = t.loss(b.batch(b.epoch(0).getFirst(), device), Gemma3Model.Options.defaults().withCheckpointing(checkpointing), 0);
            out.put("loss", loss.toDoubleArray());
            loss.backward();
            t.namedParameters().forEach((n, p) -> out.put(n, p.grad().toDoubleArray()));
        }
        return out;
    }

    private static double relative(double[] got, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            num += (got[i] - ref[i]) * (got[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }
}

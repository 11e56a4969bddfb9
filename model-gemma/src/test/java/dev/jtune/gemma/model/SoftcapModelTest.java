package dev.jtune.gemma.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.ops.CrossEntropy;
import dev.jtune.gemma.generate.Generator;
import dev.jtune.gemma.generate.SamplingOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A config that sets final and attention logit soft-capping (as Gemma 2 does; Gemma 3's configs set them null):
 * the training loss equals the cross-entropy of the capped logits, and cached generation equals recomputation.
 */
class SoftcapModelTest {
    private static Gemma3Model capped(Path dir) throws IOException {
        Path tiny = Gemma3GoldenTest.fixture("gemma3-tiny");
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = (ObjectNode) json.readTree(tiny.resolve("config.json").toFile());
        c.put("final_logit_softcapping", 3.0);
        c.put("attn_logit_softcapping", 2.0);
        Files.writeString(dir.resolve("config.json"), json.writeValueAsString(c));
        Files.copy(tiny.resolve("model.safetensors"), dir.resolve("model.safetensors"));
        return Gemma3Model.load(dir, Device.CPU, DType.F32);
    }

    @Test
    void cappedLogitsDriveTheLossAndGeneration(@TempDir Path dir) throws IOException {
        try (Scope scope = Scope.open("capped")) {
            Gemma3Model model = capped(dir);
            int[] ids = {2, 30, 31, 32, 33, 34, 300, 301, 7, 8};
            Tensor t = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
            double loss;
            double reference;
            try (Autograd.GradMode off = Autograd.noGrad()) {
                loss = model.loss(t, t, Gemma3Model.Options.defaults()).item();
                Tensor logits = model.logits(model.hidden(t, Gemma3Model.Options.defaults(), null));
                for (double v : logits.toDoubleArray()) {
                    assertTrue(Math.abs(v) <= 3.0, "final logits are capped at 3: " + v);
                }
                Tensor shiftedLogits = logits.slice(0, 0, ids.length - 1);
                Tensor labels = t.reshape(ids.length).slice(0, 1, ids.length).contiguous();
                reference = CrossEntropy.mean(shiftedLogits, labels).item();
            }
            assertEquals(reference, loss, 1e-5 * Math.abs(reference));
            // cached decoding (prefill + one token at a time) against recomputing everything each step
            int steps = 20;
            int[] cached = new Generator(model, Set.of()).generate(ids, SamplingOptions.greedy(steps), x -> { });
            List<Integer> seq = new ArrayList<>();
            for (int i : ids) {
                seq.add(i);
            }
            int[] recomputed = new int[steps];
            try (Autograd.GradMode off = Autograd.noGrad()) {
                for (int s = 0; s < steps; s++) {
                    try (Scope step = Scope.open("step")) {
                        int[] cur = seq.stream().mapToInt(Integer::intValue).toArray();
                        Tensor h = model.hidden(Tensor.fromArray(cur, Shape.of(1, cur.length), DType.I32, Device.CPU), Gemma3Model.Options.defaults(), null);
                        float[] l = model.logits(h.slice(0, cur.length - 1, cur.length)).toFloatArray();
                        int best = 0;
                        for (int i = 1; i < l.length; i++) {
                            if (l[i] > l[best]) {
                                best = i;
                            }
                        }
                        recomputed[s] = best;
                        seq.add(best);
                    }
                }
            }
            assertArrayEquals(recomputed, cached);
        }
    }
}

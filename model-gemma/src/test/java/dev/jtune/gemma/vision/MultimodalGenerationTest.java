package dev.jtune.gemma.vision;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.model.KvCache;
import dev.jtune.gemma.testing.Goldens;
import dev.jtune.gemma.testing.TestImages;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Generation with an image (cpu, fp32, the gemma3-mm-tiny fixture): the KV-cached prompt with its image in place, and
 * the next token fed alone, give the logits of the training forward over the same ids (its image tokens bidirectional).
 */
class MultimodalGenerationTest {
    @TempDir
    Path dir;

    @Test
    void aCachedPromptWithAnImageGivesTheForwardsLogits() {
        Random rnd = Seeds.random();
        try (Scope s = Scope.open("generation"); Autograd.GradMode off = Autograd.noGrad()) {
            Gemma3MultimodalModel m = Gemma3MultimodalModel.load(Goldens.fixture("gemma3-mm-tiny"), Device.CPU, DType.F32);
            Gemma3VisionConfig vc = m.visionConfig();
            ImagePreprocessor pre = new ImagePreprocessor(vc);
            Tensor pixels = pre.pixelValues(List.of(TestImages.ellipse(dir.resolve("a.png"), 0, rnd)), Device.CPU);
            Tensor other = pre.pixelValues(List.of(TestImages.ellipse(dir.resolve("b.png"), 1, rnd)), Device.CPU);
            int[] prompt = new int[vc.mmTokensPerImage() + 6];
            prompt[0] = 2;
            prompt[1] = 30;
            prompt[2] = vc.boiToken();
            for (int k = 0; k < vc.mmTokensPerImage(); k++) {
                prompt[3 + k] = vc.imageToken();
            }
            prompt[3 + vc.mmTokensPerImage()] = vc.eoiToken();
            prompt[4 + vc.mmTokensPerImage()] = 40;
            prompt[5 + vc.mmTokensPerImage()] = 41;
            int n = prompt.length;
            KvCache cache = new KvCache(m.text(), n + 1);
            Tensor cached = m.logits(m.promptHidden(ids(prompt), pixels, cache).slice(0, n - 1, n));
            Tensor full = lastLogits(m, prompt, pixels);
            double promptError = Goldens.relativeError(cached, full);
            int[] longer = java.util.Arrays.copyOf(prompt, n + 1);
            longer[n] = 57;
            Tensor next = m.logits(m.text().hiddenCached(ids(new int[] {57}), n, cache));
            double nextError = Goldens.relativeError(next, lastLogits(m, longer, pixels));
            System.out.printf("generation with an image: prompt logits %.2e, next token %.2e from the forward's%n", promptError, nextError);
            assertTrue(promptError < 1e-5, "prompt logits off the forward's by " + promptError);
            assertTrue(nextError < 1e-5, "next-token logits off the forward's by " + nextError);
            double imageMatters = Goldens.relativeError(lastLogits(m, prompt, other), full);
            assertTrue(imageMatters > 1e-3, "another image changes the answer's logits (" + imageMatters + ")");
        }
    }

    private static Tensor ids(int[] ids) {
        return Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
    }

    private static Tensor lastLogits(Gemma3MultimodalModel m, int[] ids, Tensor pixels) {
        Tensor h = m.hidden(ids(ids), pixels, Gemma3Model.Options.defaults(), null);
        return m.logits(h.slice(0, ids.length - 1, ids.length));
    }
}

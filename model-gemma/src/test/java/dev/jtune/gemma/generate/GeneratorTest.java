package dev.jtune.gemma.generate;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.Gemma3Model;
import org.junit.jupiter.api.Test;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Generation with the KV cache (ring buffers on sliding layers) equals recomputing the whole sequence each step. */
class GeneratorTest {
    private static Gemma3Model tiny(Device device) throws URISyntaxException {
        return Gemma3Model.load(Path.of(GeneratorTest.class.getResource("/gemma3-tiny").toURI()), device, DType.F32);
    }

    /** Greedy decoding without a cache: the full forward over prompt + generated tokens, every step. */
    private static int[] greedyByRecomputation(Gemma3Model model, int[] prompt, int steps) {
        List<Integer> seq = new ArrayList<>();
        for (int p : prompt) {
            seq.add(p);
        }
        int[] out = new int[steps];
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (int s = 0; s < steps; s++) {
                try (Scope step = Scope.open("recompute")) {
                    int[] ids = seq.stream().mapToInt(Integer::intValue).toArray();
                    Tensor h = model.hidden(Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU), Gemma3Model.Options.defaults(), null);
                    float[] logits = model.logits(h.slice(0, ids.length - 1, ids.length)).toFloatArray();
                    int best = 0;
                    for (int i = 1; i < logits.length; i++) {
                        if (logits[i] > logits[best]) {
                            best = i;
                        }
                    }
                    out[s] = best;
                    seq.add(best);
                }
            }
        }
        return out;
    }

    @Test
    void cachedGreedyDecodingEqualsRecomputationPastTheSlidingWindow() throws URISyntaxException {
        try (Scope scope = Scope.open("model")) {
            Gemma3Model model = tiny(Device.CPU);
            int[] prompt = {2, 17, 300, 45, 99, 3, 250, 7, 411, 12};
            int steps = 30; // the tiny model's window is 16: the sliding layers' rings wrap
            List<Integer> streamed = new ArrayList<>();
            int[] cached = new Generator(model, Set.of()).generate(prompt, SamplingOptions.greedy(steps), streamed::add);
            int[] recomputed = greedyByRecomputation(model, prompt, steps);
            assertArrayEquals(recomputed, cached);
            assertEquals(Arrays.stream(cached).boxed().toList(), streamed, "every token is streamed as it comes");
        }
    }

    @Test
    void generationStopsAtAStopTokenAndSamplingIsSeeded() throws URISyntaxException {
        try (Scope scope = Scope.open("model")) {
            Gemma3Model model = tiny(Device.CPU);
            int[] prompt = {2, 5, 6, 7};
            int[] free = new Generator(model, Set.of()).generate(prompt, SamplingOptions.greedy(8), t -> { });
            int stop = free[3];
            int[] stopped = new Generator(model, Set.of(stop)).generate(prompt, SamplingOptions.greedy(8), t -> { });
            int firstStop = 0;
            while (free[firstStop] != stop) {
                firstStop++;
            }
            assertArrayEquals(Arrays.copyOf(free, firstStop + 1), stopped, "stops right after the stop token");
            SamplingOptions sampling = new SamplingOptions(12, 1.3, 50, 0.95, 42);
            int[] a = new Generator(model, Set.of()).generate(prompt, sampling, t -> { });
            int[] b = new Generator(model, Set.of()).generate(prompt, sampling, t -> { });
            assertArrayEquals(a, b, "the same seed samples the same tokens");
            int[] c = new Generator(model, Set.of()).generate(prompt, new SamplingOptions(12, 1.3, 50, 0.95, 43), t -> { });
            assertNotEquals(Arrays.toString(a), Arrays.toString(c), "another seed samples differently");
            for (int t : a) {
                assertTrue(t >= 0 && t < model.config().vocabSize());
            }
        }
    }
}

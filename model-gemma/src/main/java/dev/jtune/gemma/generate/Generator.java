package dev.jtune.gemma.generate;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.model.KvCache;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.function.IntConsumer;

/**
 * Text generation for quick checks of a model: the prompt runs once, then one token at a time against the KV
 * cache, stopping at a stop token (Gemma 3 ends a turn with {@code <end_of_turn>}, id 106, and a text with
 * {@code <eos>}, id 1 — both stop) or after {@code maxNewTokens}.
 */
public final class Generator {
    private final Gemma3Model model;
    private final Set<Integer> stopIds;

    public Generator(Gemma3Model model, Set<Integer> stopIds) {
        this.model = model;
        this.stopIds = Set.copyOf(stopIds);
    }

    /** Stops at the config's eos ids and at {@code <end_of_turn>} (106). */
    public static Generator forModel(Gemma3Model model) {
        Set<Integer> stops = new HashSet<>(model.config().eosTokenIds());
        stops.add(106);
        return new Generator(model, stops);
    }

    /** How a prompt's hidden states [n, hidden] are computed from its ids I32 [1, n], filling the cache (positions from 0). */
    @FunctionalInterface
    public interface Prefill {
        Tensor hidden(Tensor ids, KvCache cache);
    }

    /** The generated ids (the stop token included when one ended the text); each is also passed to onToken. */
    public int[] generate(int[] prompt, SamplingOptions options, IntConsumer onToken) {
        return generate(prompt, (ids, cache) -> model.hiddenCached(ids, 0, cache), options, onToken);
    }

    /** {@link #generate(int[], SamplingOptions, IntConsumer)} with the prompt computed by {@code prefill} (an image-text model's, with its images). */
    public int[] generate(int[] prompt, Prefill prefill, SamplingOptions options, IntConsumer onToken) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("generate: the prompt has no tokens");
        }
        int[] out = new int[options.maxNewTokens()];
        int count = 0;
        Sampler sampler = new Sampler(options);
        try (Autograd.GradMode off = Autograd.noGrad(); Scope scope = Scope.open("generate")) {
            KvCache cache = new KvCache(model, prompt.length + options.maxNewTokens());
            int[] feed = prompt;
            int position = 0;
            while (count < options.maxNewTokens()) {
                int next;
                try (Scope step = Scope.open("token")) {
                    Tensor ids = Tensor.fromArray(feed, Shape.of(1, feed.length), DType.I32, Device.CPU);
                    Tensor hidden = position == 0 ? prefill.hidden(ids, cache) : model.hiddenCached(ids, position, cache);
                    Tensor last = hidden.slice(0, feed.length - 1, feed.length);
                    next = sampler.next(model.logits(last).cast(DType.F32).toFloatArray());
                }
                position += feed.length;
                out[count++] = next;
                onToken.accept(next);
                if (stopIds.contains(next)) {
                    break;
                }
                feed = new int[] {next};
            }
        }
        return Arrays.copyOf(out, count);
    }
}

package dev.jtune.train.loop;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.train.data.Example;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;

/**
 * Deterministic micro-batches per epoch: the examples are shuffled with a seed derived from (seed, epoch), then
 * grouped by length as transformers' group_by_length does (mega-batches of 50 batches sorted longest first), so
 * padding stays small; the same (seed, epoch) always gives the same order, which is what makes resuming exact.
 */
public final class Batcher {
    private final List<Example> examples;
    private final int batchSize;
    private final long seed;
    private final int padId;

    public Batcher(List<Example> examples, int batchSize, long seed, int padId) {
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no training examples");
        }
        this.examples = List.copyOf(examples);
        this.batchSize = batchSize;
        this.seed = seed;
        this.padId = padId;
    }

    public int batchesPerEpoch() {
        return (examples.size() + batchSize - 1) / batchSize;
    }

    /** The micro-batches of one epoch, as lists of example indices. */
    public List<int[]> epoch(long epoch) {
        Integer[] order = new Integer[examples.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Random rnd = new Random(seed * 1_000_003L + epoch);
        for (int i = order.length - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            Integer t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int mega = batchSize * 50;
        for (int start = 0; start < order.length; start += mega) {
            Arrays.sort(order, start, Math.min(order.length, start + mega),
                    Comparator.comparingInt((Integer i) -> examples.get(i).length()).reversed());
        }
        List<int[]> batches = new ArrayList<>();
        for (int start = 0; start < order.length; start += batchSize) {
            int end = Math.min(order.length, start + batchSize);
            int[] b = new int[end - start];
            for (int i = start; i < end; i++) {
                b[i - start] = order[i];
            }
            batches.add(b);
        }
        return batches;
    }

    public Example example(int index) {
        return examples.get(index);
    }

    /** ids and labels I32 [B, longest], padded with the pad id and ignored labels. */
    public Tensor[] tensors(int[] batch, Device device) {
        int longest = 0;
        for (int i : batch) {
            longest = Math.max(longest, examples.get(i).length());
        }
        int[] ids = new int[batch.length * longest];
        int[] labels = new int[batch.length * longest];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, Example.IGNORE);
        for (int r = 0; r < batch.length; r++) {
            Example e = examples.get(batch[r]);
            System.arraycopy(e.ids(), 0, ids, r * longest, e.length());
            System.arraycopy(e.labels(), 0, labels, r * longest, e.length());
        }
        Shape s = Shape.of(batch.length, longest);
        return new Tensor[] {Tensor.fromArray(ids, s, DType.I32, device), Tensor.fromArray(labels, s, DType.I32, device)};
    }

    /** Counted tokens of a micro-batch (for the step's loss normalizer). */
    public int countedTokens(int[] batch) {
        int n = 0;
        for (int i : batch) {
            n += examples.get(i).countedTokens();
        }
        return n;
    }

    public int tokens(int[] batch) {
        int n = 0;
        for (int i : batch) {
            n += examples.get(i).length();
        }
        return n;
    }
}

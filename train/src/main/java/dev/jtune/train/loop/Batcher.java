package dev.jtune.train.loop;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.TokenLayout;
import dev.jtune.train.data.Example;
import dev.jtune.train.data.Packer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;

/**
 * Deterministic micro-batches per epoch. The rows (one example each, or examples packed into rows by
 * {@link Packer} once, when built) are shuffled with a seed derived from (seed, epoch); then, by default, grouped by
 * length as transformers' group_by_length does (mega-batches of 50 batches sorted longest first), so padding stays
 * small, or left in the shuffled order ({@link Batching.Order#RANDOM}). The same (seed, epoch) always gives the same
 * order, which is what makes resuming exact.
 */
public final class Batcher {
    private final List<Example> examples;
    /** The rows: packed, or null when each example is its own row. */
    private final List<Packer.Row> packed;
    private final int batchSize;
    private final long seed;
    private final int padId;
    private final Batching batching;

    public Batcher(List<Example> examples, int batchSize, long seed, int padId) {
        this(examples, batchSize, seed, padId, Batching.DEFAULT);
    }

    public Batcher(List<Example> examples, int batchSize, long seed, int padId, Batching batching) {
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no training examples");
        }
        this.examples = List.copyOf(examples);
        this.batchSize = batchSize;
        this.seed = seed;
        this.padId = padId;
        this.batching = batching;
        if (batching.packed() && this.examples.stream().anyMatch(e -> !e.images().isEmpty())) {
            throw new IllegalArgumentException("packing records with images is not supported yet: train them without --packing");
        }
        this.packed = batching.packed() ? Packer.pack(this.examples, batching.packedLength()) : null;
    }

    /**
     * A micro-batch's tensors: ids and labels I32 [B, longest row], padded with the pad id and ignored labels; with
     * packing, its {@link TokenLayout} (padding in segment -1 at position 0), else null (one sample per row); and the
     * image files whose soft tokens the ids hold, in the order those tokens come (row by row), decoded only when the
     * step runs.
     */
    public record Batch(Tensor ids, Tensor labels, TokenLayout layout, List<Path> images) {
        public Batch {
            images = List.copyOf(images);
        }
    }

    public int batchesPerEpoch() {
        return (rows() + batchSize - 1) / batchSize;
    }

    /** The rows {@code examples} make under {@code batching}: the examples themselves, or packed rows (packs them). */
    public static int rowCount(List<Example> examples, Batching batching) {
        return batching.packed() ? Packer.pack(examples, batching.packedLength()).size() : examples.size();
    }

    /** Rows per epoch: examples, or packed rows. */
    public int rows() {
        return packed == null ? examples.size() : packed.size();
    }

    private int length(int row) {
        return packed == null ? examples.get(row).length() : packed.get(row).length();
    }

    /** The micro-batches of one epoch, as lists of row indices (example indices without packing). */
    public List<int[]> epoch(long epoch) {
        Integer[] order = new Integer[rows()];
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
        if (batching.order() == Batching.Order.GROUP_BY_LENGTH) {
            int mega = batchSize * 50;
            for (int start = 0; start < order.length; start += mega) {
                Arrays.sort(order, start, Math.min(order.length, start + mega),
                        Comparator.comparingInt((Integer i) -> length(i)).reversed());
            }
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

    /** ids and labels I32 [B, longest], padded with the pad id and ignored labels (one example per row). */
    public Tensor[] tensors(int[] batch, Device device) {
        Batch b = batch(batch, device);
        return new Tensor[] {b.ids(), b.labels()};
    }

    /** The tensors of a micro-batch of rows (see {@link Batch}). */
    public Batch batch(int[] batch, Device device) {
        int longest = 0;
        for (int i : batch) {
            longest = Math.max(longest, length(i));
        }
        int[] ids = new int[batch.length * longest];
        int[] labels = new int[batch.length * longest];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, Example.IGNORE);
        int[] segments = packed == null ? null : new int[batch.length * longest];
        int[] positions = packed == null ? null : new int[batch.length * longest];
        if (segments != null) {
            Arrays.fill(segments, -1);
        }
        List<Path> images = new ArrayList<>();
        for (int r = 0; r < batch.length; r++) {
            if (packed == null) {
                Example e = examples.get(batch[r]);
                images.addAll(e.images());
                System.arraycopy(e.ids(), 0, ids, r * longest, e.length());
                System.arraycopy(e.labels(), 0, labels, r * longest, e.length());
            } else {
                Packer.Row row = packed.get(batch[r]);
                System.arraycopy(row.ids(), 0, ids, r * longest, row.length());
                System.arraycopy(row.labels(), 0, labels, r * longest, row.length());
                System.arraycopy(row.segments(), 0, segments, r * longest, row.length());
                System.arraycopy(row.positions(), 0, positions, r * longest, row.length());
            }
        }
        Shape s = Shape.of(batch.length, longest);
        TokenLayout layout = packed == null ? null : TokenLayout.packed(Tensor.fromArray(segments, s, DType.I32, device),
                Tensor.fromArray(positions, s, DType.I32, device));
        return new Batch(Tensor.fromArray(ids, s, DType.I32, device), Tensor.fromArray(labels, s, DType.I32, device), layout, images);
    }

    /** Counted tokens of a micro-batch (for the step's loss normalizer). */
    public int countedTokens(int[] batch) {
        int n = 0;
        for (int i : batch) {
            n += packed == null ? examples.get(i).countedTokens() : packed.get(i).countedTokens();
        }
        return n;
    }

    /** Tokens of a micro-batch, padding not counted. */
    public int tokens(int[] batch) {
        int n = 0;
        for (int i : batch) {
            n += length(i);
        }
        return n;
    }
}

package dev.jtune.train.data;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Packing (TRL's {@code packing}, padding-free): whole tokenized examples placed into rows of up to {@code maxLength}
 * tokens, never split, each keeping its own positions and labels, so that a row's loss is the sum of its samples'.
 *
 * <p>The rule is best-fit decreasing (TRL's "bfd"), deterministic: examples longest first (equal lengths in data
 * order); each goes into the open row with the least room that still holds it (equal room: the row opened first),
 * else opens a new row. Rows come in the order they were opened; within a row, samples in the order they were
 * placed. An example longer than {@code maxLength} keeps its first {@code maxLength} tokens (as the data loader's
 * truncation does).
 */
public final class Packer {
    private Packer() {
    }

    /**
     * One packed row, per token: {@code ids}; {@code labels}, the examples' labels with each sample's first token
     * ignored ({@link Example#IGNORE}), so that the loss's shift by one never lets the last token of one sample predict
     * the first of the next; {@code segments}, the sample (0, 1, ... in the row; padding, added when rows are
     * batched, is -1); {@code positions}, restarting at 0 for each sample. {@code examples}: the indices of the packed
     * examples, in row order.
     */
    public record Row(int[] ids, int[] labels, int[] segments, int[] positions, int[] examples) {
        public int length() {
            return ids.length;
        }

        /** Tokens the loss counts: labels[1..] not ignored; the sum of the samples' {@link Example#countedTokens()}. */
        public int countedTokens() {
            int n = 0;
            for (int i = 1; i < labels.length; i++) {
                if (labels[i] != Example.IGNORE) {
                    n++;
                }
            }
            return n;
        }
    }

    /** The rows of {@code examples} packed into at most {@code maxLength} tokens each (see the class comment). */
    public static List<Row> pack(List<Example> examples, int maxLength) {
        if (maxLength < 1) {
            throw new IllegalArgumentException("packing: rows of at least 1 token, got " + maxLength);
        }
        Integer[] order = new Integer[examples.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingInt((Integer i) -> length(examples.get(i), maxLength)).reversed()
                .thenComparingInt(i -> i));
        List<List<Integer>> rows = new ArrayList<>();
        List<Integer> used = new ArrayList<>();
        TreeMap<Integer, TreeSet<Integer>> byRoom = new TreeMap<>(); // room left -> open rows with that much
        for (int e : order) {
            int n = length(examples.get(e), maxLength);
            var fit = byRoom.ceilingEntry(n);
            int row;
            if (fit == null) {
                row = rows.size();
                rows.add(new ArrayList<>());
                used.add(0);
            } else {
                row = fit.getValue().pollFirst();
                if (fit.getValue().isEmpty()) {
                    byRoom.remove(fit.getKey());
                }
            }
            rows.get(row).add(e);
            used.set(row, used.get(row) + n);
            int room = maxLength - used.get(row);
            if (room > 0) {
                byRoom.computeIfAbsent(room, r -> new TreeSet<>()).add(row);
            }
        }
        List<Row> out = new ArrayList<>(rows.size());
        for (int r = 0; r < rows.size(); r++) {
            out.add(row(examples, rows.get(r), used.get(r), maxLength));
        }
        return out;
    }

    private static int length(Example e, int maxLength) {
        return Math.min(e.length(), maxLength);
    }

    private static Row row(List<Example> examples, List<Integer> members, int length, int maxLength) {
        int[] ids = new int[length];
        int[] labels = new int[length];
        int[] segments = new int[length];
        int[] positions = new int[length];
        int at = 0;
        for (int s = 0; s < members.size(); s++) {
            Example e = examples.get(members.get(s));
            int n = length(e, maxLength);
            System.arraycopy(e.ids(), 0, ids, at, n);
            System.arraycopy(e.labels(), 0, labels, at, n);
            labels[at] = Example.IGNORE;
            Arrays.fill(segments, at, at + n, s);
            for (int i = 0; i < n; i++) {
                positions[at + i] = i;
            }
            at += n;
        }
        return new Row(ids, labels, segments, positions, members.stream().mapToInt(Integer::intValue).toArray());
    }
}

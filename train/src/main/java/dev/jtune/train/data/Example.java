package dev.jtune.train.data;

import java.util.Arrays;

/**
 * One tokenized training sample: ids and, aligned with them, labels (the id where the model is trained to
 * produce it, {@code -100} elsewhere, e.g. on user turns). The loss shifts them: position p predicts labels[p + 1].
 * {@code images}: the image files whose soft tokens the ids hold, in order (empty for text).
 */
public record Example(int[] ids, int[] labels, java.util.List<java.nio.file.Path> images) {
    public static final int IGNORE = -100;

    public Example {
        if (ids.length != labels.length) {
            throw new IllegalArgumentException("example: " + ids.length + " ids but " + labels.length + " labels");
        }
        images = java.util.List.copyOf(images);
    }

    /** A text sample. */
    public Example(int[] ids, int[] labels) {
        this(ids, labels, java.util.List.of());
    }

    public int length() {
        return ids.length;
    }

    /** Tokens the loss counts: labels[1..] that are not ignored (the first label predicts nothing). */
    public int countedTokens() {
        int n = 0;
        for (int i = 1; i < labels.length; i++) {
            if (labels[i] != IGNORE) {
                n++;
            }
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Example e && Arrays.equals(ids, e.ids) && Arrays.equals(labels, e.labels) && images.equals(e.images);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * Arrays.hashCode(ids) + Arrays.hashCode(labels)) + images.hashCode();
    }
}

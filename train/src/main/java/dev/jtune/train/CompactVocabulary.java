package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.train.data.Example;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * For the embedded default on the cpu only: the token ids a dataset uses, renumbered 0..n-1 (the pad id first),
 * so a demo model needs an n-row embedding instead of 262,144 rows. Written beside the model as
 * {@code compact_vocabulary.json} (new id -> Gemma 3 id).
 */
final class CompactVocabulary {
    private final TreeMap<Integer, Integer> toCompact;
    private final int[] toGemma;

    private CompactVocabulary(TreeMap<Integer, Integer> toCompact, int[] toGemma) {
        this.toCompact = toCompact;
        this.toGemma = toGemma;
    }

    static CompactVocabulary of(List<Example> examples, int padId) {
        TreeMap<Integer, Integer> map = new TreeMap<>();
        map.put(padId, 0);
        for (Example e : examples) {
            for (int id : e.ids()) {
                map.putIfAbsent(id, map.size());
            }
        }
        int[] back = new int[map.size()];
        map.forEach((gemma, compact) -> back[compact] = gemma);
        return new CompactVocabulary(map, back);
    }

    int size() {
        return toGemma.length;
    }

    int padId() {
        return 0;
    }

    List<Example> remap(List<Example> examples) {
        List<Example> out = new ArrayList<>(examples.size());
        for (Example e : examples) {
            int[] ids = new int[e.length()];
            int[] labels = new int[e.length()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = toCompact.get(e.ids()[i]);
                labels[i] = e.labels()[i] == Example.IGNORE ? Example.IGNORE : toCompact.get(e.labels()[i]);
            }
            out.add(new Example(ids, labels));
        }
        return out;
    }

    void write(Path file) {
        try {
            Files.writeString(file, new ObjectMapper().writeValueAsString(toGemma));
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file, e);
        }
    }
}

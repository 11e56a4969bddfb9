package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.train.data.Example;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * For the embedded default on the cpu only: the token ids a dataset uses, renumbered 0..n-1 (the pad id first),
 * so a demo model needs an n-row embedding instead of 262,144 rows. Written beside the model as
 * {@code compact_vocabulary.json} (a JSON array: compact id -> Gemma 3 id); {@code generate} reads it back to map
 * a prompt's Gemma 3 ids to the model's and the model's back before decoding.
 */
final class CompactVocabulary {
    /** The file's name beside a model. */
    static final String FILE = "compact_vocabulary.json";

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

    /** Reads {@code file} as {@link #write} writes it; a malformed file is an error naming it and the problem. */
    static CompactVocabulary read(Path file) {
        int[] back;
        try {
            back = new ObjectMapper().readValue(file.toFile(), int[].class);
        } catch (IOException e) {
            throw new CommandException("reading the compact vocabulary " + file, e);
        }
        if (back == null || back.length == 0) {
            throw new CommandException(file + ": expected a non-empty JSON array of Gemma 3 token ids (compact id -> Gemma 3 id)");
        }
        TreeMap<Integer, Integer> map = new TreeMap<>();
        for (int i = 0; i < back.length; i++) {
            if (back[i] < 0) {
                throw new CommandException(file + ": entry " + i + " is " + back[i] + ", a token id must not be negative");
            }
            Integer before = map.put(back[i], i);
            if (before != null) {
                throw new CommandException(file + ": Gemma 3 id " + back[i] + " appears twice (entries " + before + " and " + i + ")");
            }
        }
        return new CompactVocabulary(map, back);
    }

    /** Whether Gemma 3's token {@code gemmaId} has a compact id. */
    boolean contains(int gemmaId) {
        return toCompact.containsKey(gemmaId);
    }

    /** The compact id of Gemma 3's token {@code gemmaId}; an id outside the vocabulary is an error. */
    int toCompact(int gemmaId) {
        Integer id = toCompact.get(gemmaId);
        if (id == null) {
            throw new IllegalArgumentException("token id " + gemmaId + " is not in the compact vocabulary (" + size() + " tokens)");
        }
        return id;
    }

    /** The Gemma 3 id of compact id {@code compactId}. */
    int toGemma(int compactId) {
        if (compactId < 0 || compactId >= toGemma.length) {
            throw new IllegalArgumentException("compact id " + compactId + " is outside the compact vocabulary (0.." + (toGemma.length - 1) + ")");
        }
        return toGemma[compactId];
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
            throw new CommandException("writing " + file, e);
        }
    }
}

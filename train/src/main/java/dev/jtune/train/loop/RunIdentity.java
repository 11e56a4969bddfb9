package dev.jtune.train.loop;

import dev.jtune.train.data.Example;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * What makes a run the run it is, stored with each checkpoint so that resuming into a different run is caught.
 * {@link #fixed} settings (model, tokenizer, data, what is trained and how, seed, batch geometry) cannot change
 * under a resumed run: the saved state would not mean what the new settings say. {@link #adjustable} ones (learning
 * rate and schedule, cadence, device, checkpointing) may: the run continues with the new values and says so.
 * Keys are the names a user knows (flag names where there is one), values are display strings.
 */
public record RunIdentity(Map<String, String> fixed, Map<String, String> adjustable) {
    public RunIdentity {
        fixed = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(fixed));
        adjustable = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(adjustable));
    }

    /** What differs between a saved identity and this one: refusals (fixed settings) and warnings (adjustable). */
    public record Difference(List<String> refusals, List<String> warnings) {
        public boolean refused() {
            return !refusals.isEmpty();
        }
    }

    /** Compares the identity a checkpoint was saved with to this run's. */
    public Difference against(RunIdentity saved) {
        return new Difference(differences(saved.fixed, fixed), differences(saved.adjustable, adjustable));
    }

    private static List<String> differences(Map<String, String> saved, Map<String, String> now) {
        List<String> out = new ArrayList<>();
        for (String key : union(saved, now)) {
            String was = saved.get(key);
            String is = now.get(key);
            if (!Objects.equals(was, is)) {
                out.add(key + ": " + (was == null ? "(not recorded)" : was) + " in the checkpoint, " + (is == null ? "(none)" : is) + " now");
            }
        }
        return out;
    }

    private static List<String> union(Map<String, String> a, Map<String, String> b) {
        List<String> keys = new ArrayList<>(a.keySet());
        b.keySet().stream().filter(k -> !a.containsKey(k)).forEach(keys::add);
        return keys;
    }

    /** Builds an identity entry by entry, in display order. */
    public static Builder builder() {
        return new Builder();
    }

    public static final class Builder {
        private final Map<String, String> fixed = new LinkedHashMap<>();
        private final Map<String, String> adjustable = new LinkedHashMap<>();

        public Builder fixed(String key, Object value) {
            fixed.put(key, String.valueOf(value));
            return this;
        }

        public Builder adjustable(String key, Object value) {
            adjustable.put(key, String.valueOf(value));
            return this;
        }

        public RunIdentity build() {
            return new RunIdentity(fixed, adjustable);
        }
    }

    // ---- fingerprints ------------------------------------------------------------------------------------------

    /** SHA-256 (first 16 hex digits) of the token ids and labels of the examples, in order: the data as trained on. */
    public static String dataFingerprint(List<Example> examples) {
        MessageDigest d = sha256();
        ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        for (Example e : examples) {
            put(d, b, e.length());
            for (int i = 0; i < e.length(); i++) {
                put(d, b, e.ids()[i]);
                put(d, b, e.labels()[i]);
            }
        }
        b.flip();
        d.update(b);
        return hex(d) + " (" + examples.size() + " examples)";
    }

    private static void put(MessageDigest d, ByteBuffer b, int v) {
        if (b.remaining() < 4) {
            b.flip();
            d.update(b);
            b.clear();
        }
        b.putInt(v);
    }

    /**
     * A model directory's fingerprint: SHA-256 over config.json and each safetensors file's name, size and header
     * (the tensor names, shapes, dtypes and offsets), not the weights' bytes, so a moved copy of a model keeps its
     * identity and a 2 GB model costs milliseconds.
     */
    public static String modelFingerprint(Path dir) {
        MessageDigest d = sha256();
        try {
            d.update(Files.readAllBytes(dir.resolve("config.json")));
            List<Path> weights;
            try (Stream<Path> s = Files.list(dir)) {
                weights = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            }
            for (Path w : weights) {
                d.update(w.getFileName().toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
                try (FileChannel ch = FileChannel.open(w, StandardOpenOption.READ)) {
                    ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
                    ch.read(len, 0);
                    long headerLength = len.flip().remaining() == 8 ? len.getLong() : 0;
                    d.update(ByteBuffer.allocate(8).putLong(ch.size()).flip());
                    ByteBuffer header = ByteBuffer.allocate((int) Math.max(0, Math.min(headerLength, Math.min(ch.size() - 8, 100_000_000L))));
                    ch.read(header, 8);
                    d.update(header.flip());
                }
            }
        } catch (IOException e) {
            throw new RunException("fingerprinting the model in " + dir, e);
        }
        return hex(d);
    }

    /** SHA-256 (first 16 hex digits) of a file's bytes. */
    public static String fileFingerprint(Path file) {
        try {
            MessageDigest d = sha256();
            d.update(Files.readAllBytes(file));
            return hex(d);
        } catch (IOException e) {
            throw new RunException("fingerprinting " + file, e);
        }
    }

    /** SHA-256 (first 16 hex digits) of a text. */
    public static String textFingerprint(String text) {
        MessageDigest d = sha256();
        d.update(text.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        return hex(d);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }

    private static String hex(MessageDigest d) {
        return HexFormat.of().formatHex(d.digest(), 0, 8);
    }
}

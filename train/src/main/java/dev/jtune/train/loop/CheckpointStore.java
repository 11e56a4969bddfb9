package dev.jtune.train.loop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.io.FileTrees;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.optim.Optimizer;
import dev.jtune.gemma.safetensors.SafeTensorsException;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import dev.jtune.gemma.safetensors.SafeTensorsWriter;
import dev.jtune.gemma.safetensors.TensorInfo;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

/**
 * {@code output_dir/checkpoint-N}: the trained weights (peft adapter or full model), the optimizer's state
 * ({@code optimizer.safetensors}; not with {@code --save_only_model}, whose checkpoints cannot resume training), {@code trainer_state.json} (position in the data, counters, the run's identity,
 * the log so far) and {@code jtune_checksums.json} (size and CRC32C of every other file). Written whole into a
 * hidden temporary directory, then renamed: a checkpoint directory either exists complete or not at all. Before a
 * checkpoint is used, {@link #validate} checks every file against its checksum, the state's fields, and that every
 * weight is finite. Keeps the newest {@code limit} (0: all).
 */
public final class CheckpointStore {
    private static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");
    /** An older jtune's optimizer entry: the trained parameter's index, then the kind of state. */
    private static final Pattern NUMBERED = Pattern.compile("(\\d{1,9})\\.(exp_avg|exp_avg_sq|master)");
    private static final ObjectMapper JSON = MetricsJson.MAPPER;
    public static final String STATE_FILE = "trainer_state.json";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    public static final String CHECKSUMS_FILE = "jtune_checksums.json";
    static final String TMP_PREFIX = ".tmp-checkpoint-";

    private final Path outputDir;
    private final int limit;
    private final TrainerConfig.CheckpointContents contents;

    public CheckpointStore(Path outputDir, int limit) {
        this(outputDir, limit, TrainerConfig.CheckpointContents.MODEL_AND_STATE);
    }

    /** {@code contents}: with MODEL_ONLY no {@value #OPTIMIZER_FILE} is written (HF's {@code --save_only_model}). */
    public CheckpointStore(Path outputDir, int limit, TrainerConfig.CheckpointContents contents) {
        this.outputDir = outputDir;
        this.limit = limit;
        this.contents = java.util.Objects.requireNonNull(contents, "contents");
    }

    /** Where the loop stands: optimizer steps done and micro-batches consumed. */
    public record Position(long step, long microBatches) {
    }

    /**
     * Everything a checkpoint holds besides the weights.
     *
     * @param optimizerSteps updates the optimizer applied (steps minus skipped ones)
     * @param tokens         tokens seen so far
     * @param totalSteps     the run's length when the checkpoint was written
     */
    public record State(Position position, long optimizerSteps, long seed, long tokens, double elapsedSeconds,
                        long skippedSteps, long totalSteps, RunIdentity identity, List<StepRecord> history) {
        public State {
            history = List.copyOf(history);
        }
    }

    /**
     * Writes checkpoint-N: the weights, the optimizer's state per parameter name ({@link Optimizer#state()}, which
     * the caller reads: null when the checkpoints hold the model only), the state and the checksums.
     */
    public Path save(State state, Trainable trainable, java.util.SequencedMap<String, dev.jtune.engine.Tensor> optimizerState) {
        long step = state.position().step();
        Path target = outputDir.resolve("checkpoint-" + step);
        Path tmp = outputDir.resolve(TMP_PREFIX + step);
        try {
            FileTrees.deleteTree(tmp);
            Files.createDirectories(tmp);
            trainable.save(tmp);
            if (contents == TrainerConfig.CheckpointContents.MODEL_AND_STATE) {
                SafeTensorsWriter w = new SafeTensorsWriter().metadata("step", Long.toString(state.optimizerSteps()));
                java.util.Objects.requireNonNull(optimizerState, "the optimizer's state, for a checkpoint that holds it").forEach(w::add);
                w.write(tmp.resolve(OPTIMIZER_FILE));
            }
            PauseHook.at("in-checkpoint", step);
            Files.writeString(tmp.resolve(STATE_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(toJson(state)));
            writeChecksums(tmp);
            FileTrees.deleteTree(target);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            try {
                FileTrees.deleteTree(tmp);
            } catch (IOException ignored) {
                // the original failure is what the user needs to see
            }
            throw new RunException("writing checkpoint " + target + ": " + e.getMessage(), e);
        }
        prune();
        return target;
    }

    private static ObjectNode toJson(State s) {
        ObjectNode state = JSON.createObjectNode();
        state.put("global_step", s.position().step());
        state.put("micro_batches", s.position().microBatches());
        state.put("optimizer_steps", s.optimizerSteps());
        state.put("seed", s.seed());
        state.put("num_input_tokens_seen", s.tokens());
        state.put("elapsed_seconds", s.elapsedSeconds());
        state.put("skipped_steps", s.skippedSteps());
        state.put("max_steps", s.totalSteps());
        state.set("run_identity", JSON.valueToTree(s.identity()));
        state.set("log_history", JSON.valueToTree(s.history()));
        return state;
    }

    /** The newest complete checkpoint in the output directory, if any. */
    public Optional<Path> latest() {
        List<Path> all = checkpoints();
        return all.isEmpty() ? Optional.empty() : Optional.of(all.get(all.size() - 1));
    }

    /** The {@code checkpoint-N} directories of the output directory, oldest first (complete or not). */
    public List<Path> checkpoints() {
        return checkpoints(outputDir);
    }

    /** The {@code checkpoint-N} directories of {@code dir}, oldest first. */
    public static List<Path> checkpoints(Path dir) {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> Files.isDirectory(p) && NAME.matcher(p.getFileName().toString()).matches())
                    .sorted(Comparator.comparingLong(CheckpointStore::stepOf)).toList();
        } catch (IOException e) {
            throw new RunException("listing " + dir + ": " + e.getMessage(), e);
        }
    }

    static long stepOf(Path p) {
        Matcher m = NAME.matcher(p.getFileName().toString());
        if (!m.matches()) {
            return -1;
        }
        try {
            return Long.parseLong(m.group(1));
        } catch (NumberFormatException e) {
            return Long.MAX_VALUE;
        }
    }

    // ---- validation ---------------------------------------------------------------------------------------------

    /**
     * Checks a checkpoint whole before anything is restored from it: every file its checksums list has its size and
     * CRC32C, trainer_state.json has every field, and every tensor of its safetensors files is finite. Throws a
     * {@link RunException} saying what is wrong, else returns the state.
     */
    public static State validate(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw damaged(dir, Files.exists(dir) ? "is not a directory" : "does not exist");
        }
        if (!Files.isRegularFile(dir.resolve(CHECKSUMS_FILE))) {
            throw damaged(dir, Files.isRegularFile(dir.resolve(STATE_FILE))
                    ? "has no " + CHECKSUMS_FILE + " (it was written by an older jtune, or not completely)"
                    : "is not a jtune checkpoint: it has no " + STATE_FILE + (Files.isRegularFile(dir.resolve("config.json")) ? " (it looks like a model directory)" : ""));
        }
        verifyChecksums(dir);
        State state = readState(dir);
        for (Path f : safetensorsFiles(dir)) {
            requireFinite(dir, f);
        }
        return state;
    }

    private static RunException damaged(Path dir, String why) {
        return new RunException("checkpoint " + dir + " " + why);
    }

    static void writeChecksums(Path dir) throws IOException {
        Map<String, Map<String, Object>> files = new LinkedHashMap<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path f : s.filter(Files::isRegularFile).sorted().toList()) {
                files.put(f.getFileName().toString(), Map.of("size", Files.size(f), "crc32c", crc32c(f)));
            }
        }
        Files.writeString(dir.resolve(CHECKSUMS_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(Map.of("files", files)));
    }

    private static void verifyChecksums(Path dir) {
        JsonNode files;
        try {
            files = JSON.readTree(dir.resolve(CHECKSUMS_FILE).toFile()).get("files");
        } catch (IOException e) {
            throw damaged(dir, "has an unreadable " + CHECKSUMS_FILE + ": " + e.getMessage());
        }
        if (files == null || !files.isObject() || files.isEmpty()) {
            throw damaged(dir, "has a " + CHECKSUMS_FILE + " that lists no files");
        }
        for (var it = files.properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            Path f = dir.resolve(e.getKey());
            try {
                if (!Files.isRegularFile(f)) {
                    throw damaged(dir, "lacks " + e.getKey());
                }
                long size = Files.size(f);
                if (size != e.getValue().path("size").asLong(-1)) {
                    throw damaged(dir, "has " + e.getKey() + " of " + size + " bytes where " + e.getValue().path("size").asLong(-1) + " were written");
                }
                String crc = crc32c(f);
                if (!crc.equals(e.getValue().path("crc32c").asText())) {
                    throw damaged(dir, "has " + e.getKey() + " with CRC32C " + crc + " where " + e.getValue().path("crc32c").asText()
                            + " was written: its bytes changed after it was saved");
                }
            } catch (IOException x) {
                throw damaged(dir, "cannot read " + e.getKey() + ": " + x.getMessage());
            }
        }
    }

    static String crc32c(Path f) throws IOException {
        CRC32C crc = new CRC32C();
        byte[] buf = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(f)) {
            for (int n; (n = in.read(buf)) > 0; ) {
                crc.update(buf, 0, n);
            }
        }
        return HexFormat.of().toHexDigits((int) crc.getValue());
    }

    private static State readState(Path dir) {
        JsonNode s;
        try {
            s = JSON.readTree(dir.resolve(STATE_FILE).toFile());
        } catch (IOException e) {
            throw damaged(dir, "has an unreadable " + STATE_FILE + ": " + e.getMessage());
        }
        for (String field : List.of("global_step", "micro_batches", "optimizer_steps", "seed", "num_input_tokens_seen", "max_steps",
                "run_identity", "log_history")) {
            if (s == null || !s.hasNonNull(field)) {
                throw damaged(dir, "has a " + STATE_FILE + " without " + field);
            }
        }
        try {
            List<StepRecord> history = new ArrayList<>();
            for (JsonNode n : s.get("log_history")) {
                history.add(JSON.treeToValue(n, StepRecord.class));
            }
            return new State(new Position(s.get("global_step").asLong(), s.get("micro_batches").asLong()),
                    s.get("optimizer_steps").asLong(), s.get("seed").asLong(), s.get("num_input_tokens_seen").asLong(),
                    s.path("elapsed_seconds").asDouble(0), s.path("skipped_steps").asLong(0), s.get("max_steps").asLong(),
                    JSON.treeToValue(s.get("run_identity"), RunIdentity.class), history);
        } catch (IOException | IllegalArgumentException e) {
            throw damaged(dir, "has a " + STATE_FILE + " that does not parse: " + e.getMessage());
        }
    }

    private static List<Path> safetensorsFiles(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList();
        } catch (IOException e) {
            throw damaged(dir, "cannot be listed: " + e.getMessage());
        }
    }

    /** Every float tensor of the file is finite (exponent bits not all ones), read straight from the mapped file. */
    private static void requireFinite(Path dir, Path file) {
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            for (TensorInfo t : f.infos()) {
                long bad = firstNonFinite(f.bytes(t.name()), t);
                if (bad >= 0) {
                    throw damaged(dir, "has a non-finite value in " + t.name() + " (element " + bad + ") of " + file.getFileName());
                }
            }
        } catch (SafeTensorsException e) {
            throw damaged(dir, "has an unreadable " + file.getFileName() + ": " + e.getMessage());
        }
    }

    private static long firstNonFinite(MemorySegment bytes, TensorInfo t) {
        return switch (t.dtype()) {
            case F32 -> {
                long n = bytes.byteSize() / 4;
                for (long i = 0; i < n; i++) {
                    if ((bytes.get(ValueLayout.JAVA_INT_UNALIGNED, i * 4) & 0x7f800000) == 0x7f800000) {
                        yield i;
                    }
                }
                yield -1;
            }
            case BF16, F16 -> {
                int mask = t.dtype() == dev.jtune.engine.DType.BF16 ? 0x7f80 : 0x7c00;
                long n = bytes.byteSize() / 2;
                for (long i = 0; i < n; i++) {
                    if ((bytes.get(ValueLayout.JAVA_SHORT_UNALIGNED, i * 2) & mask) == mask) {
                        yield i;
                    }
                }
                yield -1;
            }
            case F64 -> {
                long n = bytes.byteSize() / 8;
                for (long i = 0; i < n; i++) {
                    if (!Double.isFinite(bytes.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, i * 8))) {
                        yield i;
                    }
                }
                yield -1;
            }
            default -> -1; // integer and packed 4-bit data cannot be non-finite
        };
    }

    // ---- restore ------------------------------------------------------------------------------------------------

    /**
     * Restores weights and optimizer state from a {@link #validate validated} checkpoint into the live objects. The
     * optimizer's entries are named per trained parameter ({@code <name>.exp_avg}); a checkpoint of an older jtune,
     * whose entries are numbered in the trained parameters' order ({@code 3.exp_avg}), is read with entry i as the
     * i-th of {@link Trainable#namedParameters}, which holds when the same run resumes (the run identity requires the
     * same model and LoRA shape, so the same parameters in the same order).
     */
    public static void restore(Path dir, State state, Trainable trainable, Optimizer optimizer) {
        restore(dir, state, trainable, optimizer, Runnable::run);
    }

    /**
     * As above, the weights restored inside {@code wholeWeights} (which runs what it is given with the model's weights
     * whole: ZeRO stage 3 lends sharded ones, and takes the restored values back), the optimizer's state after.
     */
    public static void restore(Path dir, State state, Trainable trainable, Optimizer optimizer, java.util.function.Consumer<Runnable> wholeWeights) {
        if (!Files.isRegularFile(dir.resolve(OPTIMIZER_FILE))) {
            throw new RunException("checkpoint " + dir + " holds no " + OPTIMIZER_FILE + " (written with --save_only_model): training"
                    + " cannot continue from it without the optimizer's state; start afresh with --overwrite_output_dir, or resume"
                    + " from a checkpoint saved without --save_only_model");
        }
        wholeWeights.accept(() -> trainable.restore(dir));
        try (SafeTensorsFile f = SafeTensorsFile.open(dir.resolve(OPTIMIZER_FILE)); Scope tmp = Scope.open("optimizer state")) {
            Map<String, Tensor> saved = new LinkedHashMap<>();
            for (String name : f.names()) {
                saved.put(name, f.load(name, Device.CPU));
            }
            optimizer.restore(byParameterName(dir, saved, List.copyOf(trainable.namedParameters().keySet())), state.optimizerSteps());
        } catch (ShapeException e) {
            throw new RunException("checkpoint " + dir + ": its " + OPTIMIZER_FILE + " does not fit this run's optimizer: " + e.getMessage(), e);
        }
    }

    /**
     * {@code saved} with numbered entries ({@code i.exp_avg}, all of them, as older checkpoints wrote) renamed after the
     * i-th of {@code names}; entries already named pass unchanged. An index past the trained parameters is refused.
     */
    static Map<String, Tensor> byParameterName(Path dir, Map<String, Tensor> saved, List<String> names) {
        if (saved.isEmpty() || !saved.keySet().stream().allMatch(k -> NUMBERED.matcher(k).matches())) {
            return saved;
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : saved.entrySet()) {
            Matcher m = NUMBERED.matcher(e.getKey());
            m.matches();
            int index = Integer.parseInt(m.group(1));
            if (index >= names.size()) {
                throw new RunException("checkpoint " + dir + " holds optimizer state " + e.getKey() + " (an older jtune's numbering, by trained "
                        + "parameter) for parameter " + index + ", but this run trains " + names.size() + " parameters: it is not this run's checkpoint");
            }
            out.put(names.get(index) + "." + m.group(2), e.getValue());
        }
        return out;
    }

    private void prune() {
        if (limit <= 0) {
            return;
        }
        List<Path> all = checkpoints();
        for (int i = 0; i < all.size() - limit; i++) {
            try {
                FileTrees.deleteTree(all.get(i));
            } catch (IOException e) {
                throw new RunException("removing old checkpoint " + all.get(i) + ": " + e.getMessage(), e);
            }
        }
    }
}

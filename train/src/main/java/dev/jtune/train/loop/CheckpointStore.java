package dev.jtune.train.loop;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.gemma.safetensors.SafeTensorsFile;
import dev.jtune.gemma.safetensors.SafeTensorsWriter;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * {@code output_dir/checkpoint-N}: the trained weights (peft adapter or full model), the optimizer's state
 * ({@code optimizer.safetensors}) and {@code trainer_state.json} (step, position in the data, seed, the log so
 * far). Written whole into a hidden temporary directory, then renamed: a checkpoint directory either exists
 * complete or not at all. Keeps the newest {@code limit} (0: all).
 */
public final class CheckpointStore {
    private static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");
    private static final ObjectMapper JSON = MetricsJson.MAPPER;
    public static final String STATE_FILE = "trainer_state.json";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";

    private final Path outputDir;
    private final int limit;

    public CheckpointStore(Path outputDir, int limit) {
        this.outputDir = outputDir;
        this.limit = limit;
    }

    /** Where the loop stands: optimizer steps done and micro-batches consumed. */
    public record Position(long step, long microBatches) {
    }

    public Path save(Position position, Trainable trainable, AdamW optimizer, long seed, List<StepRecord> history) {
        Path target = outputDir.resolve("checkpoint-" + position.step());
        Path tmp = outputDir.resolve(".tmp-checkpoint-" + position.step());
        try {
            deleteTree(tmp);
            Files.createDirectories(tmp);
            trainable.save(tmp);
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("step", Long.toString(optimizer.steps()));
            optimizer.state().forEach(w::add);
            w.write(tmp.resolve(OPTIMIZER_FILE));
            ObjectNode state = JSON.createObjectNode();
            state.put("global_step", position.step());
            state.put("micro_batches", position.microBatches());
            state.put("optimizer_steps", optimizer.steps());
            state.put("seed", seed);
            state.set("log_history", JSON.valueToTree(history));
            Files.writeString(tmp.resolve(STATE_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(state));
            deleteTree(target);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            try {
                deleteTree(tmp);
            } catch (IOException ignored) {
                // the original failure is what the user needs to see
            }
            throw new UncheckedIOException("writing checkpoint " + target, e);
        }
        prune();
        return target;
    }

    /** The newest complete checkpoint in the output directory, if any. */
    public Optional<Path> latest() {
        List<Path> all = checkpoints();
        return all.isEmpty() ? Optional.empty() : Optional.of(all.get(all.size() - 1));
    }

    /** Complete checkpoints, oldest first. */
    public List<Path> checkpoints() {
        if (!Files.isDirectory(outputDir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(outputDir)) {
            return s.filter(p -> NAME.matcher(p.getFileName().toString()).matches() && Files.isRegularFile(p.resolve(STATE_FILE)))
                    .sorted(Comparator.comparingLong(CheckpointStore::stepOf)).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("listing " + outputDir, e);
        }
    }

    static long stepOf(Path p) {
        Matcher m = NAME.matcher(p.getFileName().toString());
        return m.matches() ? Long.parseLong(m.group(1)) : -1;
    }

    /** What a checkpoint holds besides the weights. */
    public record Loaded(Position position, long seed, List<StepRecord> history) {
    }

    /** Restores weights and optimizer state from {@code dir} into the live objects; returns the position. */
    public Loaded restore(Path dir, Trainable trainable, AdamW optimizer) {
        try {
            var state = JSON.readTree(dir.resolve(STATE_FILE).toFile());
            trainable.restore(dir);
            try (SafeTensorsFile f = SafeTensorsFile.open(dir.resolve(OPTIMIZER_FILE)); Scope tmp = Scope.open("optimizer state")) {
                Map<String, Tensor> saved = new LinkedHashMap<>();
                for (String name : f.names()) {
                    saved.put(name, f.load(name, Device.CPU));
                }
                optimizer.restore(saved, state.get("optimizer_steps").asLong());
            }
            List<StepRecord> history = new ArrayList<>();
            state.get("log_history").forEach(n -> history.add(JSON.convertValue(n, StepRecord.class)));
            return new Loaded(new Position(state.get("global_step").asLong(), state.get("micro_batches").asLong()),
                    state.get("seed").asLong(), history);
        } catch (IOException e) {
            throw new UncheckedIOException("reading checkpoint " + dir, e);
        }
    }

    private void prune() {
        if (limit <= 0) {
            return;
        }
        List<Path> all = checkpoints();
        for (int i = 0; i < all.size() - limit; i++) {
            try {
                deleteTree(all.get(i));
            } catch (IOException e) {
                throw new UncheckedIOException("removing old checkpoint " + all.get(i), e);
            }
        }
    }

    static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path x : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(x);
            }
        }
    }
}

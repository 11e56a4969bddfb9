package dev.jtune.train.args;

import dev.jtune.train.loop.CheckpointStore;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * {@code --resume_from_checkpoint}: where training continues from.
 * <ul>
 *   <li>{@code auto} (the default): the newest {@code checkpoint-N} in output_dir if there is one, unless
 *       {@code --overwrite_output_dir}; otherwise a fresh start;</li>
 *   <li>{@code true} or {@code latest}: the newest {@code checkpoint-N} in output_dir, which must exist;</li>
 *   <li>{@code false}: a fresh start (the trainer refuses it where output_dir holds a run's checkpoints, unless
 *       {@code --overwrite_output_dir}: {@code OutputDirectory.plan});</li>
 *   <li>a path: that checkpoint directory.</li>
 * </ul>
 */
public record Resume(Mode mode, Path path) {
    public enum Mode { AUTO, LATEST, NEVER, PATH }

    public static final Resume AUTO = new Resume(Mode.AUTO, null);
    public static final Resume LATEST = new Resume(Mode.LATEST, null);
    public static final Resume NEVER = new Resume(Mode.NEVER, null);

    public Resume {
        Objects.requireNonNull(mode, "mode");
        if ((mode == Mode.PATH) != (path != null)) {
            throw new IllegalArgumentException("a path goes with Mode.PATH and only with it");
        }
    }

    public static Resume at(Path checkpoint) {
        return new Resume(Mode.PATH, checkpoint);
    }

    /** Parses the flag's value: auto, true / latest, false, or a path. */
    static Resume parse(String raw) {
        return switch (raw.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "auto" -> AUTO;
            case "true", "latest", "yes" -> LATEST;
            case "false", "no" -> NEVER;
            case "" -> throw new IllegalArgumentException("is empty (give a path, latest, auto or false)");
            default -> at(Path.of(raw.trim()));
        };
    }

    /** The flag's spelling of this value; parses back to an equal Resume. */
    public String flagValue() {
        return switch (mode) {
            case AUTO -> "auto";
            case LATEST -> "latest";
            case NEVER -> "false";
            case PATH -> path.toString();
        };
    }

    @Override
    public String toString() {
        return flagValue();
    }

    /**
     * The checkpoint to resume from, if any. {@code latest} with no checkpoint in outputDir is an error (HF's
     * "no valid checkpoint found in output directory").
     */
    public Optional<Path> checkpoint(Path outputDir, boolean overwriteOutputDir) {
        return switch (mode) {
            case NEVER -> Optional.empty();
            case PATH -> Optional.of(path);
            case AUTO -> overwriteOutputDir ? Optional.empty() : newestCheckpoint(outputDir);
            case LATEST -> Optional.of(newestCheckpoint(outputDir).orElseThrow(() -> new ArgsException(
                    Flag.RESUME_FROM_CHECKPOINT.cli() + " " + flagValue() + ": no checkpoint-N directory in "
                            + Flag.OUTPUT_DIR.cli() + " " + outputDir)));
        };
    }

    /** The checkpoint-N directory of outputDir with the largest N, if any. */
    public static Optional<Path> newestCheckpoint(Path outputDir) {
        if (outputDir == null) {
            return Optional.empty();
        }
        List<Path> all = CheckpointStore.checkpoints(outputDir);
        return all.isEmpty() ? Optional.empty() : Optional.of(all.getLast());
    }
}

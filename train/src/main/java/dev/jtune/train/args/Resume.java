package dev.jtune.train.args;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Objects;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * {@code --resume_from_checkpoint}: where training continues from.
 * <ul>
 *   <li>{@code auto} (the default): the newest {@code checkpoint-N} in output_dir if there is one, unless
 *       {@code --overwrite_output_dir}; otherwise a fresh start;</li>
 *   <li>{@code true} or {@code latest}: the newest {@code checkpoint-N} in output_dir, which must exist;</li>
 *   <li>{@code false}: a fresh start even when output_dir has checkpoints;</li>
 *   <li>a path: that checkpoint directory.</li>
 * </ul>
 */
public record Resume(Mode mode, Path path) {
    public enum Mode { AUTO, LATEST, NEVER, PATH }

    public static final Resume AUTO = new Resume(Mode.AUTO, null);
    public static final Resume LATEST = new Resume(Mode.LATEST, null);
    public static final Resume NEVER = new Resume(Mode.NEVER, null);

    private static final Pattern CHECKPOINT = Pattern.compile("checkpoint-(\\d+)");

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
        if (outputDir == null || !Files.isDirectory(outputDir)) {
            return Optional.empty();
        }
        try (Stream<Path> children = Files.list(outputDir)) {
            return children.filter(Files::isDirectory)
                    .filter(p -> CHECKPOINT.matcher(p.getFileName().toString()).matches())
                    .max(Comparator.comparingLong(Resume::step));
        } catch (IOException e) {
            throw new UncheckedIOException("listing " + outputDir, e);
        }
    }

    private static long step(Path checkpoint) {
        Matcher m = CHECKPOINT.matcher(checkpoint.getFileName().toString());
        if (!m.matches()) {
            throw new IllegalStateException(checkpoint.toString());
        }
        try {
            return Long.parseLong(m.group(1));
        } catch (NumberFormatException e) {
            return Long.MAX_VALUE; // absurdly many digits: still "newest"
        }
    }
}

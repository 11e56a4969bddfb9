package dev.jtune.train.loop;

import dev.jtune.engine.io.FileTrees;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * jtune's output-directory contract (stated in {@code --help} and the README):
 * <ul>
 *   <li>the directory is a run: each checkpoint stores the run's {@link RunIdentity}; a run resumes only into the same
 *       identity, and the way out of a refusal is {@code --overwrite_output_dir} or another {@code --output_dir};</li>
 *   <li>{@code --overwrite_output_dir} removes what jtune wrote there and nothing else, by moving it aside into
 *       one hidden directory and deleting that, so an interruption never leaves half an old run;</li>
 *   <li>an output directory that is a file, or that is or holds the model being trained, is refused before anything
 *       is loaded;</li>
 *   <li>the final step is always checkpointed, so a finished run rerun in place is recognised and does nothing.</li>
 * </ul>
 */
public final class OutputDirectory {
    /** Names jtune writes at the top of an output directory (besides checkpoint-N). */
    static final List<String> WRITTEN = List.of("metrics.jsonl", "report.html", "jtune_args.json", "adapter_config.json",
            "adapter_model.safetensors", "config.json", "model.safetensors", "model.safetensors.index.json",
            "generation_config.json", "compact_vocabulary.json", "base_model");
    private static final String TRASH = ".jtune-removed";

    private OutputDirectory() {
    }

    /** What a run does with its output directory. */
    public sealed interface Plan {
        /** Train from step 0. */
        record Fresh() implements Plan {
        }

        /** Continue from a validated checkpoint; {@code notes} say what changed and is accepted. */
        record Resume(Path checkpoint, CheckpointStore.State state, List<String> notes) implements Plan {
        }

        /** The directory holds this run, finished: nothing to do. */
        record Finished(Path checkpoint, CheckpointStore.State state, String message) implements Plan {
        }
    }

    /** How the run asked to start: {@code --resume_from_checkpoint}'s modes. */
    public enum Start { AUTO, LATEST, NEVER, PATH }

    /**
     * Refuses an output directory that cannot hold a run: an existing file, or a directory that is or contains the
     * model directory. Runs before the model or the data are loaded.
     */
    public static void check(Path outputDir, Path modelDir) {
        if (Files.exists(outputDir) && !Files.isDirectory(outputDir)) {
            throw new RunException("--output_dir " + outputDir + " is an existing file, not a directory: name a directory");
        }
        if (modelDir != null) {
            Path out = FileTrees.resolved(outputDir);
            Path model = FileTrees.resolved(modelDir);
            if (model.startsWith(out)) {
                throw new RunException("--output_dir " + outputDir + (model.equals(out) ? " is" : " contains") + " --model_path " + modelDir
                        + ": checkpoints and --overwrite_output_dir would mix with or remove the model; choose another --output_dir");
            }
        }
    }

    /**
     * Decides how the run starts, after {@code --overwrite_output_dir} has been applied ({@link #clear}).
     *
     * @param explicit   the checkpoint named by {@code --resume_from_checkpoint PATH}, for {@link Start#PATH}
     * @param totalSteps this run's length in optimizer steps
     */
    public static Plan plan(Path outputDir, Start start, Path explicit, RunIdentity identity, long totalSteps) {
        List<Path> all = CheckpointStore.checkpoints(outputDir);
        Path candidate = switch (start) {
            case PATH -> explicit;
            case AUTO -> all.isEmpty() ? null : all.getLast();
            case LATEST -> {
                if (all.isEmpty()) {
                    throw new RunException("--resume_from_checkpoint latest: there is no checkpoint-N in --output_dir " + outputDir);
                }
                yield all.getLast();
            }
            case NEVER -> {
                if (!all.isEmpty()) {
                    throw new RunException("--output_dir " + outputDir + " holds checkpoints of a run (newest " + all.getLast().getFileName()
                            + ") and --resume_from_checkpoint false starts a new one, which would mix with them: "
                            + "pass --overwrite_output_dir to replace that run, or choose another --output_dir");
                }
                yield null;
            }
        };
        if (candidate == null) {
            return new Plan.Fresh();
        }
        CheckpointStore.State state = validated(candidate, start == Start.PATH ? List.of() : all);
        RunIdentity.Difference diff = identity.against(state.identity());
        if (diff.refused()) {
            throw new RunException(candidate + " belongs to a different run, so it cannot be resumed:\n  - "
                    + String.join("\n  - ", diff.refusals())
                    + "\nTo start this run anyway, pass --overwrite_output_dir (removes the earlier run's files from " + outputDir
                    + ") or choose another --output_dir.");
        }
        long at = state.position().step();
        if (at >= totalSteps) {
            String msg = at == totalSteps
                    ? outputDir + " already holds this run, finished at step " + at + " (" + candidate.getFileName() + "): nothing to do. "
                    + "To train again, pass --overwrite_output_dir or choose another --output_dir; to train longer, raise --max_steps."
                    : outputDir + " holds this run at step " + at + " (" + candidate.getFileName() + "), past this run's " + totalSteps
                    + " steps: nothing to do. To train again with fewer steps, pass --overwrite_output_dir or choose another --output_dir.";
            return new Plan.Finished(candidate, state, msg);
        }
        List<String> notes = new ArrayList<>();
        for (String w : diff.warnings()) {
            notes.add("changed since the checkpoint, continuing with the new value: " + w);
        }
        if (totalSteps != state.totalSteps()) {
            notes.add("the run was " + state.totalSteps() + " steps long and is now " + totalSteps
                    + ": it continues, but is no longer bit-exact with an uninterrupted run of either length (the schedule depends on it)");
        }
        return new Plan.Resume(candidate, state, notes);
    }

    /**
     * {@link CheckpointStore#validate}; when the checkpoint is damaged, the error names the newest valid older
     * checkpoint of {@code others} and the flag that resumes from it.
     */
    private static CheckpointStore.State validated(Path checkpoint, List<Path> others) {
        try {
            return CheckpointStore.validate(checkpoint);
        } catch (RunException damaged) {
            String way = newestValidBefore(checkpoint, others)
                    .map(good -> ". The newest valid checkpoint is " + good + ": resume from it with --resume_from_checkpoint " + good
                            + ", or start afresh with --overwrite_output_dir")
                    .orElse(". No older valid checkpoint exists: start afresh with --overwrite_output_dir");
            throw new RunException(damaged.getMessage() + way, damaged);
        }
    }

    private static Optional<Path> newestValidBefore(Path checkpoint, List<Path> others) {
        for (Path older : others.reversed()) {
            if (CheckpointStore.stepOf(older) < CheckpointStore.stepOf(checkpoint)) {
                try {
                    CheckpointStore.validate(older);
                    return Optional.of(older);
                } catch (RunException alsoDamaged) {
                    // keep looking further back
                }
            }
        }
        return Optional.empty();
    }

    /**
     * {@code --overwrite_output_dir}: removes what jtune wrote in {@code outputDir} (checkpoints, unfinished
     * checkpoints, metrics, report, adapter or model files, saved arguments) and nothing else. Everything is first
     * moved into one hidden directory, then that is deleted; a leftover from an interrupted removal goes too.
     * Returns the names removed.
     */
    public static List<String> clear(Path outputDir) {
        if (!Files.isDirectory(outputDir)) {
            return List.of();
        }
        Path trash = outputDir.resolve(TRASH);
        List<String> moved = new ArrayList<>();
        try {
            FileTrees.deleteTree(trash);
            List<Path> ours;
            try (Stream<Path> s = Files.list(outputDir)) {
                ours = s.filter(OutputDirectory::writtenByJtune).sorted().toList();
            }
            if (ours.isEmpty()) {
                return List.of();
            }
            Files.createDirectories(trash);
            for (Path p : ours) {
                Files.move(p, trash.resolve(p.getFileName()), StandardCopyOption.ATOMIC_MOVE);
                moved.add(p.getFileName().toString());
            }
            FileTrees.deleteTree(trash);
        } catch (IOException e) {
            throw new RunException("--overwrite_output_dir: removing the earlier run's files from " + outputDir + ": " + e.getMessage(), e);
        }
        return moved;
    }

    private static boolean writtenByJtune(Path p) {
        String n = p.getFileName().toString();
        return WRITTEN.contains(n) || CheckpointStore.stepOf(p) >= 0 || n.startsWith(CheckpointStore.TMP_PREFIX)
                || n.matches("model-\\d{5}-of-\\d{5}\\.safetensors");
    }

    /** Creates the directory (and its parents); says what and where when it cannot. */
    public static Path create(Path dir) {
        try {
            return Files.createDirectories(dir);
        } catch (IOException e) {
            throw new RunException("creating --output_dir " + dir + ": " + e.getClass().getSimpleName() + " " + e.getMessage(), e);
        }
    }
}

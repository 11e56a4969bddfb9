package dev.jtune.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.gemma.lora.AdapterException;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsException;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.train.loop.Trainable;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/** A peft adapter directory as {@code generate} and {@code merge} use it: its files, its base model, applying it. */
final class AdapterDir {
    private AdapterDir() {
    }

    /** What is missing for {@code dir} to be a peft adapter directory, or null when nothing is. */
    static String problem(Path dir) {
        Path abs = dir.toAbsolutePath();
        if (!Files.isDirectory(dir)) {
            return "--adapter_path " + abs + " is not a directory (expected a peft adapter: "
                    + PeftAdapter.CONFIG_FILE + " + " + PeftAdapter.WEIGHTS_FILE + ")";
        }
        for (String f : new String[] {PeftAdapter.CONFIG_FILE, PeftAdapter.WEIGHTS_FILE}) {
            if (!Files.isRegularFile(dir.resolve(f))) {
                return "no " + f + " in " + abs + " (--adapter_path must be a peft adapter directory: "
                        + PeftAdapter.CONFIG_FILE + " + " + PeftAdapter.WEIGHTS_FILE + ")";
            }
        }
        return null;
    }

    /** adapter_config.json's {@code base_model_name_or_path}, or empty when it has none. */
    static Optional<String> baseName(Path dir) {
        Path file = dir.resolve(PeftAdapter.CONFIG_FILE);
        try {
            JsonNode base = new ObjectMapper().readTree(file.toFile()).path("base_model_name_or_path");
            return base.isTextual() && !base.asText().isBlank() ? Optional.of(base.asText()) : Optional.empty();
        } catch (IOException e) {
            throw new AdapterException("reading " + file.toAbsolutePath(), e);
        }
    }

    /**
     * The adapter's base as a local model directory (one holding config.json): {@code base_model_name_or_path} as
     * given (absolute, or relative to the working directory), else relative to the adapter directory.
     */
    static Optional<Path> localBase(Path dir) {
        return baseName(dir).flatMap(name -> {
            try {
                Path p = Path.of(name);
                for (Path candidate : p.isAbsolute() ? new Path[] {p} : new Path[] {p, dir.resolve(p)}) {
                    if (Files.isRegularFile(candidate.resolve("config.json"))) {
                        return Optional.of(candidate);
                    }
                }
            } catch (java.nio.file.InvalidPathException e) {
                // a hub id with characters no path may have: not a local directory
            }
            return Optional.empty();
        });
    }

    /** The base an adapter is used with, or, when there is none, the exit status of the error already printed. */
    record Base(Path dir, int exitStatus) {
    }

    /**
     * For {@code jtune COMMAND --adapter_path DIR [--model_path given]}: checks the adapter directory and picks its
     * base, {@code given} or else the adapter's local base_model_name_or_path (said on {@code err}). A problem is
     * printed as {@code jtune COMMAND: ...}: exit 1 for a broken adapter, 2 for a missing --model_path.
     */
    static Base base(Path dir, Path given, String command, PrintStream err) {
        String problem = problem(dir);
        if (problem != null) {
            err.println("jtune " + command + ": " + problem);
            return new Base(null, 1);
        }
        if (given != null) {
            return new Base(given, 0);
        }
        Optional<Path> local = localBase(dir);
        if (local.isEmpty()) {
            err.println("jtune " + command + ": --model_path is required: " + noLocalBase(dir));
            return new Base(null, 2);
        }
        err.println("jtune " + command + ": base model " + local.get().toAbsolutePath() + " (the adapter's base_model_name_or_path)");
        return new Base(local.get(), 0);
    }

    /** Why {@code --model_path} cannot be left out for this adapter (for the usage error). */
    static String noLocalBase(Path dir) {
        return baseName(dir).map(n -> "the adapter's base_model_name_or_path ('" + n + "') is not a local model directory")
                .orElse("the adapter's " + PeftAdapter.CONFIG_FILE + " names no base_model_name_or_path");
    }

    /**
     * Loads the adapter onto {@code model} (fp32 weights and products: peft's semantics) and attaches it; an adapter
     * that does not fit is an error naming both directories, with the mismatch as its cause.
     */
    static PeftAdapter.Loaded apply(Path dir, Gemma3Model model, Path modelDir) {
        return apply(dir, () -> PeftAdapter.load(dir, model, DType.F32), modelDir);
    }

    /** {@link #apply(Path, Gemma3Model, Path)} onto an image-text model: its language model's and its tower's adapters. */
    static PeftAdapter.Loaded apply(Path dir, Gemma3MultimodalModel model, Path modelDir) {
        return apply(dir, () -> PeftAdapter.load(dir, model, DType.F32), modelDir);
    }

    private static PeftAdapter.Loaded apply(Path dir, java.util.function.Supplier<PeftAdapter.Loaded> load, Path modelDir) {
        try {
            return load.get();
        } catch (AdapterException | SafeTensorsException | ShapeException e) {
            throw new AdapterException("the adapter in " + dir.toAbsolutePath() + " does not fit the model in "
                    + modelDir.toAbsolutePath(), e);
        }
    }

    /** {@link Trainable#applyNonLora}: an adapter's {@link Trainable#NON_LORA_FILE} into {@code model}. */
    static List<String> applyNonLora(Path dir, Gemma3MultimodalModel model) {
        try {
            return Trainable.applyNonLora(dir, model);
        } catch (SafeTensorsException | ShapeException e) {
            throw new AdapterException("reading " + dir.resolve(Trainable.NON_LORA_FILE).toAbsolutePath() + " into the image-text model", e);
        }
    }
}

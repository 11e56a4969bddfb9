package dev.jtune.train.args;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

/** A directory with a model checkpoint, training data and an HF cache, and helpers to parse against it. */
final class Fixture {
    final Path root;
    final Path model;
    final Path data;
    final Map<String, String> env = new HashMap<>();

    Fixture(Path root) {
        this.root = root;
        this.model = dir("model");
        write(model.resolve("config.json"), "{}");
        this.data = write(root.resolve("data.json"), "[]");
        env.put("HOME", root.resolve("home").toString());
        env.put("HF_HOME", root.resolve("hf").toString());
    }

    Path dir(String name) {
        try {
            return Files.createDirectories(root.resolve(name));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Path write(Path file, String text) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            return Files.writeString(file, text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The minimum a run needs (a model and data), then args. */
    String[] argv(String... args) {
        List<String> l = new ArrayList<>(List.of("--model_path", model.toString(), "--data_path", data.toString(),
                "--output_dir", root.resolve("out").toString()));
        l.addAll(List.of(args));
        return l.toArray(String[]::new);
    }

    CommandLine.Train train(String... args) {
        return switch (CommandLine.parse(argv(args), env)) {
            case CommandLine.Train t -> t;
            case CommandLine.Help h -> throw new AssertionError("help instead of a run");
        };
    }

    TrainArgs parse(String... args) {
        try {
            return train(args).args();
        } catch (ArgsException e) {
            return fail("unexpected: " + e.getMessage());
        }
    }

    /** Raw: no model and data added. */
    CommandLine raw(String... args) {
        return CommandLine.parse(args, env);
    }

    ArgsException error(String... args) {
        return assertThrows(ArgsException.class, () -> train(args));
    }

    /** A fake HF cache entry models--ORG--NAME/snapshots/REV with refs/main, under hub. */
    static Path cacheModel(Path hub, String id, String rev, boolean ref) {
        Path repo = hub.resolve("models--" + id.replace("/", "--"));
        Path snapshot = repo.resolve("snapshots").resolve(rev);
        write(snapshot.resolve("config.json"), "{}");
        if (ref) {
            write(repo.resolve("refs").resolve("main"), rev + "\n");
        }
        return snapshot;
    }
}

package dev.jtune.train.report;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.train.loop.StepRecord;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** Appends one JSON object per logged step to {@code metrics.jsonl} (flushed each time: a crash loses nothing logged). */
public final class MetricsLog {
    private static final ObjectMapper JSON = dev.jtune.train.loop.MetricsJson.MAPPER;
    private final Path file;

    public MetricsLog(Path file) {
        this.file = file;
    }

    public void append(StepRecord r) {
        try {
            Files.createDirectories(file.getParent());
            Files.writeString(file, JSON.writeValueAsString(r) + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file, e);
        }
    }

    public Path file() {
        return file;
    }
}

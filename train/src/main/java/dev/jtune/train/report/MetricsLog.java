package dev.jtune.train.report;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.train.loop.RunException;
import dev.jtune.train.loop.StepRecord;

import java.io.IOException;
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
            throw new RunException("writing " + file + ": " + e.getMessage(), e);
        }
    }

    /** Replaces the file with exactly these records (atomically): a run restarts its log from its checkpoint. */
    public void rewrite(java.util.List<StepRecord> records) {
        StringBuilder sb = new StringBuilder();
        try {
            for (StepRecord r : records) {
                sb.append(JSON.writeValueAsString(r)).append('\n');
            }
            Files.createDirectories(file.getParent());
            dev.jtune.engine.io.AtomicFiles.writeString(file, sb);
        } catch (IOException e) {
            throw new RunException("writing " + file + ": " + e.getMessage(), e);
        }
    }

    public Path file() {
        return file;
    }
}

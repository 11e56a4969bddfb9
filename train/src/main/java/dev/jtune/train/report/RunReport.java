package dev.jtune.train.report;

import dev.jtune.train.loop.StepRecord;

import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * What report.html shows: the run's identity, its settings, the logged steps, and how it ended.
 *
 * @param title        the page's heading
 * @param identity     the run's identity as label/value pairs in display order (model, data fingerprint, jtune
 *                     version, device, ...)
 * @param settings     the run's settings as flag/value rows, non-default values marked
 * @param steps        the logged steps in order (non-finite values are NaN: drawn as gaps)
 * @param memoryDevice the device whose memory the steps' allocated/peak figures count ("cuda:0 (NVIDIA H100 ...)" or
 *                     "cpu (host memory)"), so a chart is labelled with what actually ran
 * @param failure      empty when the run ended normally; otherwise what stopped it (the page is still written)
 */
public record RunReport(String title, List<Entry> identity, List<Setting> settings, List<StepRecord> steps,
                        String memoryDevice, Optional<String> failure) {

    /** One label/value line of the identity block. */
    public record Entry(String label, String value) {
    }

    /** One settings row: the flag's name (without dashes), its value as the flag spells it, its default's spelling. */
    public record Setting(String flag, String value, String defaultValue) {
        public boolean isDefault() {
            return Objects.equals(value, defaultValue);
        }
    }

    public RunReport {
        identity = List.copyOf(identity);
        settings = List.copyOf(settings);
        steps = List.copyOf(steps);
        Objects.requireNonNull(memoryDevice, "memoryDevice");
        Objects.requireNonNull(failure, "failure");
    }
}

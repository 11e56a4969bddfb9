package dev.jtune.train.loop;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;

/**
 * What one optimizer step did, as logged (metrics.jsonl, trainer_state.json's log_history) and plotted
 * (report.html). Keys follow HF's {@code log_history} ({@code step}, {@code epoch}, {@code loss}, {@code grad_norm},
 * {@code learning_rate}, {@code eval_loss}, {@code num_input_tokens_seen}), then jtune's own. A value that is not
 * finite (a NaN loss, a step with no eval) is written as JSON null and read back as NaN ({@link MetricsJson}).
 *
 * @param tokens       tokens seen by the run so far (cumulative across resumes)
 * @param skippedSteps steps whose update was skipped for a non-finite loss or gradient norm, so far in the run
 * @param memoryBytes  the memory report by category ({@link dev.jtune.train.report.MemoryReport#bytes()}): device
 *                     peaks per category, the device peak, host-mapped bytes; empty in logs of older runs
 */
@JsonPropertyOrder({"step", "epoch", "loss", "grad_norm", "learning_rate", "eval_loss", "num_input_tokens_seen",
        "tokens_per_second", "memory_allocated_gib", "memory_peak_gib", "elapsed_seconds", "skipped_steps", "memory_bytes"})
public record StepRecord(
        @JsonProperty("step") long step,
        @JsonProperty("epoch") double epoch,
        @JsonProperty("loss") double loss,
        @JsonProperty("grad_norm") double gradNorm,
        @JsonProperty("learning_rate") double learningRate,
        @JsonProperty("eval_loss") double evalLoss,
        @JsonProperty("num_input_tokens_seen") long tokens,
        @JsonProperty("tokens_per_second") double tokensPerSecond,
        @JsonProperty("memory_allocated_gib") double allocatedGiB,
        @JsonProperty("memory_peak_gib") double peakGiB,
        @JsonProperty("elapsed_seconds") double elapsedSeconds,
        @JsonProperty("skipped_steps") long skippedSteps,
        @JsonProperty("memory_bytes") java.util.Map<String, Long> memoryBytes) {

    public StepRecord {
        memoryBytes = memoryBytes == null ? java.util.Map.of() : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(memoryBytes));
    }

    /** Whether this step evaluated (its eval loss is a number). */
    public boolean hasEval() {
        return !Double.isNaN(evalLoss);
    }

    /** Whether this step's update was skipped: its loss or gradient norm was not finite. */
    public boolean nonFinite() {
        return !Double.isFinite(loss) || !Double.isFinite(gradNorm);
    }
}

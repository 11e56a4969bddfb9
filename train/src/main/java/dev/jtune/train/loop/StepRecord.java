package dev.jtune.train.loop;

/** What one optimizer step did, as logged (metrics.jsonl) and plotted (report.html). */
public record StepRecord(long step, double epoch, double loss, double learningRate, double gradNorm, double tokensPerSecond,
                         long tokens, double allocatedGiB, double peakGiB, double elapsedSeconds, Double evalLoss) {
}

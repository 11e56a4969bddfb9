package dev.jtune.train.args;

/** {@code --report_to}: where metrics go besides the console. Both are files in output_dir, written offline. */
public enum ReportTarget implements Choice {
    /** One JSON object a line per logging step: metrics.jsonl. */
    JSONL,
    /** A self-contained HTML page of the loss and learning-rate curves: report.html. */
    HTML
}

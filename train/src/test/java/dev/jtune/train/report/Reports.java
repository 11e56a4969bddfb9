package dev.jtune.train.report;

import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.train.loop.StepRecord;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.LongPredicate;

/** RunReports for the report tests: a plausible run, then the awkward cases (NaN, eval, failure, a cpu run). */
final class Reports {
    static final String CPU = "cpu (host memory)";
    static final String CUDA = "cuda:0 (NVIDIA H100 80GB HBM3)";
    /** A value that would run script if it reached the page unescaped. */
    static final String SCRIPT_VALUE = "<script>alert('x')</script>";

    private Reports() {
    }

    /** Steps 1..n (logged every 5), a decaying loss; nanLoss picks the steps whose loss is NaN, evalAt those that evaluated. */
    static List<StepRecord> steps(int n, LongPredicate nanLoss, LongPredicate evalAt) {
        List<StepRecord> steps = new ArrayList<>();
        for (long s = 1; s <= n; s += s == 1 ? 4 : 5) {
            double loss = nanLoss.test(s) ? Double.NaN : 3.0 * Math.exp(-s / 40.0) + 0.4;
            double eval = evalAt.test(s) ? 3.2 * Math.exp(-s / 45.0) + 0.5 : Double.NaN;
            steps.add(new StepRecord(s, s / (double) n, loss, 1.5, 2e-4 * Math.min(1, s / 20.0), eval, s * 512, 1800 + 40 * (s % 7),
                    0.9 + 0.001 * s, 1.1 + 0.001 * s, 0.6 * s, 0, java.util.Map.of()));
        }
        return steps;
    }

    static List<StepRecord> allNaN(int n) {
        List<StepRecord> steps = new ArrayList<>();
        for (long s = 1; s <= n; s++) {
            steps.add(new StepRecord(s, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, s * 512, Double.NaN,
                    Double.NaN, Double.NaN, Double.NaN, s, java.util.Map.of()));
        }
        return steps;
    }

    /**
     * The step with the memory figures a run logs for these byte counts ({@link MemoryReport#of}'s rows, as the
     * trainer writes them): the device categories' peaks and the device peak, the host-mapped bytes by category and
     * their peak.
     */
    static StepRecord withMemory(StepRecord s, Map<MemoryCategory, Long> devicePeaks, long devicePeak, Map<MemoryCategory, Long> host, long hostPeak) {
        long hostNow = host.values().stream().mapToLong(Long::longValue).sum();
        MemoryStats stats = new MemoryStats(devicePeak, devicePeak, devicePeak, devicePeak, 0, 0, 0, 0, Map.of(), devicePeaks, Map.of(),
                new MemoryStats.Host(hostNow, hostPeak, host));
        return new StepRecord(s.step(), s.epoch(), s.loss(), s.gradNorm(), s.learningRate(), s.evalLoss(), s.tokens(), s.tokensPerSecond(),
                s.allocatedGiB(), s.peakGiB(), s.elapsedSeconds(), s.skippedSteps(), MemoryReport.of(stats).bytes());
    }

    /**
     * A QLoRA-like run with the optimizer offloaded, logged at steps 1, 5, 10, 15, 20: weights and adapters flat,
     * gradients and activations growing, activations zero at step 1, nothing in optimizer or the other device
     * categories; the last two steps alike (one bar across them). On the host, optimizer state, master weights and a copy of the trained weights.
     */
    static RunReport memoryByCategory(String device, boolean host) {
        long m = 1L << 20;
        List<StepRecord> steps = new ArrayList<>();
        for (StepRecord s : steps(20, x -> false, x -> false)) {
            long k = Math.min(s.step(), 15);
            Map<MemoryCategory, Long> peaks = Map.of(MemoryCategory.QUANTIZED_WEIGHTS, 700 * m, MemoryCategory.WEIGHTS, 300 * m,
                    MemoryCategory.ADAPTERS, 12 * m, MemoryCategory.GRADIENTS, (12 + k) * m, MemoryCategory.ACTIVATIONS, s.step() == 1 ? 0 : 40 * k * m);
            long sum = peaks.values().stream().mapToLong(Long::longValue).sum();
            Map<MemoryCategory, Long> hostBytes = host
                    ? Map.of(MemoryCategory.OPTIMIZER, 96 * m, MemoryCategory.MASTER_WEIGHTS, 48 * m, MemoryCategory.WEIGHTS, 6 * m) : Map.of();
            steps.add(withMemory(s, peaks, sum * 9 / 10, hostBytes, host ? (150 + k) * m : 0));
        }
        return report(steps, device, Optional.empty());
    }

    /** A single logged step with device memory and optimizer state on the host. */
    static RunReport oneStepWithMemory() {
        long m = 1L << 20;
        StepRecord s = withMemory(steps(1, x -> false, x -> false).getFirst(), Map.of(MemoryCategory.WEIGHTS, 540 * m, MemoryCategory.GRADIENTS, 540 * m,
                MemoryCategory.ACTIVATIONS, 900 * m), 1800 * m, Map.of(MemoryCategory.OPTIMIZER, 2048 * m), 2048 * m);
        return report(List.of(s), CUDA, Optional.empty());
    }

    static RunReport report(List<StepRecord> steps, String device, Optional<String> failure) {
        return new RunReport("jtune training report", identity(device), settings(), steps, device, failure);
    }

    static List<RunReport.Entry> identity(String device) {
        return List.of(new RunReport.Entry("model", "google/gemma-3-270m"), new RunReport.Entry("data fingerprint", "sha256:0f3a…"),
                new RunReport.Entry("device", device), new RunReport.Entry("note", "a < b & \"c\""));
    }

    /** Two rows off their default (one of them a script), two on it, and one long value that has to wrap. */
    static List<RunReport.Setting> settings() {
        return List.of(new RunReport.Setting("learning_rate", "0.0002", "5e-05"), new RunReport.Setting("max_steps", "100", "100"),
                new RunReport.Setting("output_dir", SCRIPT_VALUE, "out"),
                new RunReport.Setting("dataset_text_field", "text", "text"),
                new RunReport.Setting("target_modules", "q_proj,k_proj,v_proj,o_proj,".repeat(12), "all-linear"));
    }

    static RunReport normal() {
        return report(steps(100, s -> false, s -> false), CUDA, Optional.empty());
    }

    static RunReport withEval() {
        return report(steps(100, s -> false, s -> s % 25 == 0), CUDA, Optional.empty());
    }

    /** NaN losses at two places mid-run, on a cpu run. */
    static RunReport nanMidRun() {
        return report(steps(100, s -> s == 30 || s == 60 || s == 65, s -> false), CPU, Optional.empty());
    }

    static RunReport allNaN() {
        return report(allNaN(12), CPU, Optional.empty());
    }

    static RunReport failed() {
        return report(steps(40, s -> s == 40, s -> s == 20), CPU,
                Optional.of("loss is NaN at step 40 <script>alert(1)</script>\n\tat dev.jtune.Trainer.run(Trainer.java:151)"));
    }

    static RunReport noSteps() {
        return report(List.of(), CPU, Optional.of("out of memory before the first step"));
    }
}

package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.GemmaTokenizer;
import dev.jtune.train.args.IntervalStrategy;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.data.TrainingData;
import dev.jtune.train.loop.LrSchedule;
import dev.jtune.train.loop.StepRecord;
import dev.jtune.train.loop.Trainable;
import dev.jtune.train.loop.Trainer;
import dev.jtune.train.loop.TrainerConfig;
import dev.jtune.train.report.Progress;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/** {@code jtune [flags]}: loads the model and data the flags name, and trains. */
final class TrainCommand {
    private TrainCommand() {
    }

    static void run(TrainArgs a, PrintStream out) {
        if (!a.optim().isAdamW()) {
            throw new IllegalArgumentException("--optim " + a.optim().name().toLowerCase(java.util.Locale.ROOT)
                    + ": the trainer has only AdamW (adamw_torch, adamw_torch_fused, adamw_hf) so far; SGD exists in the engine but is not wired into the trainer's checkpoints yet");
        }
        Device device = device(a.device());
        DType dtype = device.kind() == Device.Kind.CUDA && a.bf16() ? DType.BF16 : DType.F32;
        Path modelDir = a.modelPath();
        GemmaTokenizer tokenizer = Files.isRegularFile(modelDir.resolve("tokenizer.json"))
                ? GemmaTokenizer.load(modelDir.resolve("tokenizer.json")) : GemmaTokenizer.bundled();
        TrainingData data = TrainingData.load(a, new ChatTemplate(tokenizer));
        out.println(data.summary());
        try (Scope run = Scope.open("run", MemoryCategory.WEIGHTS)) {
            Gemma3Model model = Gemma3Model.load(modelDir, device, dtype);
            int vocab = model.config().vocabSize();
            for (var e : data.train()) {
                for (int id : e.ids()) {
                    if (id >= vocab) {
                        throw new IllegalArgumentException("the tokenizer (" + tokenizer.source() + ") produced token id " + id
                                + " but the model in " + modelDir + " has a vocabulary of " + vocab + ": they do not belong together");
                    }
                }
            }
            if (a.bits() == 4) {
                model.quantizeLinearWeights(a.doubleQuant());
                out.printf(Locale.ROOT, "base in NF4: %.1f MiB for %d linear weights%n", model.quantizedBytes() / 1048576.0, model.quantizedWeights().size());
            }
            String name = a.modelId() != null ? a.modelId() : modelDir.toString();
            Trainable trainable = a.loraEnable()
                    ? Trainable.lora(model, new LoraConfig(a.loraRank(), a.loraAlpha(), a.loraDropout(), LoraConfig.ALL_LINEAR,
                    a.loraNamespanExclude(), a.numLoraModules()), a.seed(), name)
                    : Trainable.full(model, name);
            out.printf(Locale.ROOT, "training %,d parameters (%s) on %s in %s%n", trainable.parameterCount(),
                    trainable.isLora() ? "LoRA" : "full fine-tuning", device, dtype);
            Trainer trainer = new Trainer(config(a), trainable, data.train(), data.eval(), a.outputDir(), Progress.forOutput(out),
                    a.describe(), tokenizer.padId());
            a.writeJson(ensureDir(a.outputDir()).resolve("jtune_args.json"));
            finish(trainer.run(a.resumeFromCheckpoint().checkpoint(a.outputDir(), a.overwriteOutputDir())), a.outputDir(), out);
        }
    }

    /**
     * The embedded default: QLoRA (NF4 base, LoRA r16) on a small randomly initialised Gemma 3 over the bundled
     * conversations, on the GPU when there is one. On the cpu the vocabulary is compacted to the tokens the data uses (the real
     * 262,144-row embedding would make a one-minute demo take many), which {@link CompactVocabulary} records.
     */
    static void runDefault(Path outputDir, PrintStream out) {
        Device device = CudaBackend.deviceCount() > 0 ? Device.cuda(0) : Device.CPU;
        GemmaTokenizer tokenizer = GemmaTokenizer.bundled();
        var built = new dev.jtune.train.data.DatasetBuilder(new ChatTemplate(tokenizer), dev.jtune.train.data.DataOptions.of(256)).loadBundled();
        out.println(built.stats().summary());
        boolean compact = device.kind() == Device.Kind.CPU;
        CompactVocabulary vocab = compact ? CompactVocabulary.of(built.examples(), tokenizer.padId()) : null;
        var examples = compact ? vocab.remap(built.examples()) : built.examples();
        var config = DefaultModel.config(compact ? vocab.size() : tokenizer.vocabSize(), device.kind() == Device.Kind.CUDA);
        TrainerConfig tc = new TrainerConfig(1, 60, 8, 1, 1e-2, LrSchedule.Type.COSINE, 0.05, 0, 0.0,
                0.9, 0.999, 1e-8, 1.0, Gemma3Model.Checkpointing.NONE, 5, TrainerConfig.SaveStrategy.STEPS, 30, 2, TrainerConfig.SaveStrategy.NO, 0, 42, true, true, 8);
        try (Scope run = Scope.open("default run", MemoryCategory.WEIGHTS)) {
            Gemma3Model model = Gemma3Model.random(config, device, device.kind() == Device.Kind.CUDA ? DType.BF16 : DType.F32, 42);
            // a trained model's embedding rows are far larger than N(0, 0.02): with those, logits cannot leave ~0 and a
            // LoRA on the frozen base could barely lower the loss; give the (tied) embedding a trained-like scale
            dev.jtune.engine.Ops.copyInto(dev.jtune.engine.Tensor.normal(model.embedding().shape(), model.dtype(), device, 43, 0, 0.5),
                    model.embedding());
            model.quantizeLinearWeights(true);
            Trainable trainable = Trainable.lora(model, new LoraConfig(16, 32, 0.05, LoraConfig.ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1),
                    42, "jtune-default (random " + config.numHiddenLayers() + "-layer Gemma 3)");
            out.printf(Locale.ROOT, "jtune's embedded default: QLoRA (NF4 base, LoRA r16, %,d trainable parameters) on a random %d-layer Gemma 3 "
                            + "(vocabulary %,d%s) on %s%n", trainable.parameterCount(), config.numHiddenLayers(), config.vocabSize(),
                    compact ? ", compacted to the data's tokens" : "", device);
            ensureDir(outputDir);
            if (compact) {
                vocab.write(outputDir.resolve("compact_vocabulary.json"));
            }
            Trainer trainer = new Trainer(tc, trainable, examples, List.of(), outputDir, Progress.forOutput(out),
                    "embedded default run\n" + tc, compact ? vocab.padId() : tokenizer.padId());
            finish(trainer.run(Optional.empty()), outputDir, out);
        }
    }

    private static void finish(List<StepRecord> log, Path outputDir, PrintStream out) {
        if (!log.isEmpty()) {
            StepRecord first = log.get(0);
            StepRecord last = log.get(log.size() - 1);
            out.printf(Locale.ROOT, "done: loss %.4f -> %.4f over %d steps, %.0f s; peak memory allocated on the device %.2f GiB%n", first.loss(), last.loss(),
                    last.step(), last.elapsedSeconds(), log.stream().mapToDouble(StepRecord::peakGiB).max().orElse(0));
        }
        out.println("wrote " + outputDir.toAbsolutePath() + " (model or adapter, metrics.jsonl, report.html)");
    }

    static TrainerConfig config(TrainArgs a) {
        return new TrainerConfig(a.numTrainEpochs(), a.maxSteps(), a.perDeviceTrainBatchSize(), a.gradientAccumulationSteps(),
                a.learningRate(), LrSchedule.Type.valueOf(a.lrSchedulerType().name()), a.warmupRatio(), a.warmupSteps(),
                a.weightDecay(), a.adamBeta1(), a.adamBeta2(), a.adamEpsilon(), a.maxGradNorm(), a.checkpointing(),
                a.loggingSteps(), strategy(a.saveStrategy()), a.saveSteps(), a.saveTotalLimit() == null ? 0 : a.saveTotalLimit(),
                strategy(a.evalStrategy()), a.evalSteps() == null ? a.loggingSteps() : a.evalSteps(), a.seed(),
                a.reportTo().contains(dev.jtune.train.args.ReportTarget.JSONL), a.reportTo().contains(dev.jtune.train.args.ReportTarget.HTML),
                a.perDeviceEvalBatchSize());
    }

    private static TrainerConfig.SaveStrategy strategy(IntervalStrategy s) {
        return TrainerConfig.SaveStrategy.valueOf(s.name());
    }

    static Device device(String flag) {
        if (flag == null || flag.equals("auto")) {
            return CudaBackend.deviceCount() > 0 ? Device.cuda(0) : Device.CPU;
        }
        return Device.parse(flag);
    }

    private static Path ensureDir(Path dir) {
        try {
            return Files.createDirectories(dir);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("creating " + dir, e);
        }
    }
}

package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.model.Gemma3Model.Checkpointing;
import dev.jtune.train.args.ArgsException;
import dev.jtune.train.args.CheckpointGranularity;
import dev.jtune.train.args.KeepAttention;
import dev.jtune.train.args.Flag;
import dev.jtune.train.args.GivenFlags;
import dev.jtune.train.args.MemorySize;
import dev.jtune.train.args.OffloadOptimizer;
import dev.jtune.train.args.OffloadParam;
import dev.jtune.train.args.Optim;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.loop.TrainerConfig;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * The memory planner: before any weight is loaded, the fastest configuration of a run whose predicted device memory
 * ({@link MemoryPlanner}: the step's reserved peak plus the per-GPU resident buffers) fits a budget, changing only
 * what the user left open ({@link GivenFlags}), or a refusal that says what would fit.
 *
 * <p>The knobs it may fill: gradient checkpointing (none; {@code --gradient_checkpointing --checkpointing_granularity
 * half}; {@code --gradient_checkpointing}, layer) and, for full fine-tuning with an AdamW the trainer runs on the host,
 * the optimizer's placement (where {@code --optim} puts it; {@code --offload_optimizer cpu}), activation offload with
 * checkpointing, and the tiled MLP ({@code --tiled_mlp}, where a micro-batch makes more than one tile). It never changes the
 * batch, accumulation, sequence length, LoRA rank, bits or optimizer kind; a knob the user set (by any origin) is used
 * as given, even when nothing then fits.
 *
 * <p>The cost rule, fixed, in fractions of a step's time without the knob (H100 measurements in
 * bench/PERFORMANCE.md): half checkpointing +8% (270M QLoRA r16 at 8K: 83.7 ms against 77.6 ms without
 * checkpointing, measured at different commits); layer checkpointing +23% (95.8 ms in the same call as half's 83.7);
 * optimizer offload +10% at 65,536 tokens an optimizer step (in-step host AdamW at 91.1% of the device AdamW's
 * tokens/s, 270M full fine-tuning at 8K x accumulation 8, before gradients were streamed to the host), scaled by
 * 65,536 / the tokens of an optimizer step, since the host update's time goes with the parameters and the step's
 * with the parameters times the tokens; activation offload (the checkpointed inputs in host memory, only with
 * checkpointing) +15%, a guess not yet measured, set above layer checkpointing so that it is chosen only when
 * checkpointing and optimizer offload are not enough; weight offload (the layers' weights in host memory, copied one
 * layer ahead; with checkpointing, and for full fine-tuning with the optimizer offloaded in step) +30%, also a guess,
 * set above the rest so that it comes last; the tiled MLP ({@code --tiled_mlp}, only where it makes more than
 * one tile of a micro-batch) +2% for its tiles (each dequantizes the three NF4 weights again, in smaller GEMMs; not
 * measured: at 4B, 32K tokens and 3 tiles, 18 more dequantizations of 52 MB a layer, about 0.5 ms against a layer's
 * ~65 ms), plus +5% where it adds an MLP forward (the tiles recompute the MLP half, which half checkpointing does
 * anyway; without checkpointing that is a recomputation, with layer checkpointing a third forward of it: most of half
 * checkpointing's measured +8%, which recomputes both halves); recomputing the global layers' attention instead of keeping
 * it ({@code --keep_attention none}, with checkpointing) +2% at 8,192 tokens a sequence, scaled by the sequence over
 * 8,192 (the global layers' attention is quadratic in it, the rest of a step about linear): measured +1.9% at 8K for
 * 270M QLoRA r16 (106.8K against 104.8K tokens/s, one pair); 32K's +8% follows from the rule, not measured; recomputing
 * the sliding layers' attention too ({@code --keep_attention global}, the flag's default, or none) +2% at any length
 * (measured +1.4 to +2.6% at 8K, 270M QLoRA r16, twenty-first session: 60.0-60.7 ms against 61.1-61.8). A combination costs the sum. Candidates are tried
 * cheapest first (ties in the order none, half, layer; device before host; untiled before tiled), and the first that
 * fits is chosen.
 */
final class Planner {
    private Planner() {
    }

    static final double HALF_CHECKPOINTING_COST = 0.08;
    static final double LAYER_CHECKPOINTING_COST = 0.23;
    static final double OFFLOAD_COST_AT_REFERENCE = 0.10;
    static final long OFFLOAD_REFERENCE_TOKENS = 65_536;
    /** Not measured yet (see the class). */
    static final double ACTIVATION_OFFLOAD_COST = 0.15;
    /** Not measured yet (see the class). */
    static final double WEIGHT_OFFLOAD_COST = 0.30;
    /** The tiled MLP's tiles, and the MLP forward it adds unless half checkpointing recomputes it anyway: not measured (see the class). */
    static final double TILED_MLP_COST = 0.02;
    static final double TILED_MLP_RECOMPUTE_COST = 0.05;
    /** Recomputing the global layers' attention instead of keeping it (--keep_attention none), at {@link #RECOMPUTED_ATTENTION_TOKENS} a sequence. */
    static final double RECOMPUTED_ATTENTION_COST = 0.02;
    /**
     * Recomputing the sliding layers' attention instead of keeping it (--keep_attention global or none): measured +1.4
     * to +2.6% a step on 270M QLoRA at 8K (H100, PERFORMANCE.md's twenty-first session); a sliding forward is linear in
     * the sequence, like the rest of the step, so the fraction holds at other lengths.
     */
    static final double RECOMPUTED_WINDOW_ATTENTION_COST = 0.02;
    static final long RECOMPUTED_ATTENTION_TOKENS = 8192;

    /** The knob flags the planner may set, in the order its messages name them. */
    static final List<Flag> KNOBS = List.of(Flag.GRADIENT_CHECKPOINTING, Flag.CHECKPOINTING_GRANULARITY, Flag.OFFLOAD_OPTIMIZER,
            Flag.OFFLOAD_ACTIVATIONS, Flag.OFFLOAD_PARAM, Flag.TILED_MLP, Flag.KEEP_ATTENTION);

    /**
     * A device-memory budget in bytes and how it was decided ({@link #unlimited} when there is none), and the host
     * memory pinned buffers may take ({@code hostBytes}, -1: not checked; a run on a GPU checks it, {@code jtune plan}
     * may be planning for another machine and does not).
     */
    record Budget(long bytes, String description, long hostBytes) {
        Budget {
            Objects.requireNonNull(description, "description");
        }

        Budget(long bytes, String description) {
            this(bytes, description, -1);
        }

        /** This budget with the host's available memory as the limit on pinned host memory. */
        Budget withHost(long available) {
            return new Budget(bytes, description, available);
        }

        /** Whether option {@code o}'s prediction fits: the device's bytes, and the pinned host bytes where checked. */
        boolean fits(Option o) {
            return o.bytes() <= bytes && (hostBytes < 0 || o.hostBytes() <= hostBytes);
        }

        /**
         * What a run on {@code device} is held against: {@code --max_memory}; else, on a GPU, its free memory now (the
         * driver's count, once the backend has started); else none (the cpu: the configuration as given).
         */
        static Budget forRun(TrainArgs a, Device device) {
            if (a.maxMemory() != null && device.kind() != Device.Kind.CUDA) {
                return of(a.maxMemory());
            }
            if (device.kind() == Device.Kind.CUDA) {
                Budget b = a.maxMemory() != null ? of(a.maxMemory()) : freeMemory(CudaBackend.get(device.index()).context().memoryInfo()[0]);
                return b.withHost(HostMemory.available());
            }
            return unlimited("no --max_memory given, and no GPU to read free memory from: nothing to compare with");
        }

        /** {@code --max_memory}. */
        static Budget of(MemorySize max) {
            return new Budget(max.bytes(), "--max_memory " + max.describe());
        }

        /** The device's free memory when the run starts (the default on a GPU). */
        static Budget freeMemory(long bytes) {
            return new Budget(bytes, String.format(Locale.ROOT, "the device's free memory (%s)", gib(bytes)));
        }

        /** No budget ({@code why}: "no --max_memory, and the cpu has no device memory to fill"): nothing is chosen. */
        static Budget unlimited(String why) {
            return new Budget(-1, why);
        }

        boolean limited() {
            return bytes >= 0;
        }
    }

    /**
     * Values of the planner's knobs: what checkpointing keeps, whether the optimizer state is on the host, whether the
     * checkpointed inputs are (activation offload, only with checkpointing), whether the layers' weights are (weight
     * offload, only with checkpointing), and whether the MLP half is tiled.
     */
    record Knobs(Checkpointing checkpointing, boolean offload, boolean activations, boolean weights, boolean tiledMlp,
                 KeepAttention keepAttention) {
        Knobs {
            if ((activations || weights) && checkpointing == Checkpointing.NONE) {
                throw new IllegalArgumentException("activation and weight offload need checkpointing");
            }
            java.util.Objects.requireNonNull(keepAttention, "keepAttention");
        }

        /** Keeping the global layers' attention (the flag's default). */
        Knobs(Checkpointing checkpointing, boolean offload, boolean activations, boolean weights, boolean tiledMlp) {
            this(checkpointing, offload, activations, weights, tiledMlp, KeepAttention.GLOBAL);
        }

        Knobs(Checkpointing checkpointing, boolean offload, boolean activations) {
            this(checkpointing, offload, activations, false, false);
        }

        Knobs(Checkpointing checkpointing, boolean offload) {
            this(checkpointing, offload, false, false, false);
        }

        static Knobs of(TrainArgs a) {
            boolean checkpointed = a.checkpointing() != Checkpointing.NONE;
            return new Knobs(a.checkpointing(), a.offloadOptimizer() == OffloadOptimizer.CPU,
                    a.activationPlacement() == TrainerConfig.ActivationPlacement.HOST && checkpointed,
                    a.offloadParam() == OffloadParam.CPU && checkpointed, a.tiledMlp(), a.keepAttention());
        }

        /** The flag values that say these knobs (the granularity only when checkpointing). */
        Map<Flag, Object> flags() {
            Map<Flag, Object> m = new EnumMap<>(Flag.class);
            m.put(Flag.GRADIENT_CHECKPOINTING, checkpointing != Checkpointing.NONE);
            if (checkpointing != Checkpointing.NONE) {
                m.put(Flag.CHECKPOINTING_GRANULARITY, checkpointing == Checkpointing.HALVES ? CheckpointGranularity.HALF : CheckpointGranularity.LAYER);
            }
            m.put(Flag.OFFLOAD_OPTIMIZER, offload ? OffloadOptimizer.CPU : OffloadOptimizer.NONE);
            if (activations) { // off stays unsaid: the user may have turned it on by --gradient_checkpointing_kwargs
                m.put(Flag.OFFLOAD_ACTIVATIONS, true);
            }
            m.put(Flag.OFFLOAD_PARAM, weights ? OffloadParam.CPU : OffloadParam.NONE);
            m.put(Flag.TILED_MLP, tiledMlp);
            m.put(Flag.KEEP_ATTENTION, keepAttention);
            return m;
        }

        /** The cost rule (see the class): the estimated extra step time, as a fraction, for a run of {@code a}'s shape. */
        double cost(TrainArgs a) {
            double c = switch (checkpointing) {
                case NONE -> 0;
                case HALVES -> HALF_CHECKPOINTING_COST;
                case LAYERS -> LAYER_CHECKPOINTING_COST;
            };
            if (offload) {
                long tokens = (long) a.perDeviceTrainBatchSize() * a.maxSeqLength() * a.gradientAccumulationSteps();
                c += OFFLOAD_COST_AT_REFERENCE * OFFLOAD_REFERENCE_TOKENS / tokens;
            }
            if (activations) {
                c += ACTIVATION_OFFLOAD_COST;
            }
            if (weights) {
                c += WEIGHT_OFFLOAD_COST;
            }
            if (tiledMlp) {
                c += TILED_MLP_COST + (checkpointing == Checkpointing.HALVES ? 0 : TILED_MLP_RECOMPUTE_COST);
            }
            if (checkpointing != Checkpointing.NONE) { // what the recomputation recomputes of attention
                if (keepAttention != KeepAttention.ALL) {
                    c += RECOMPUTED_WINDOW_ATTENTION_COST;
                }
                if (keepAttention == KeepAttention.NONE) {
                    c += RECOMPUTED_ATTENTION_COST * a.maxSeqLength() / RECOMPUTED_ATTENTION_TOKENS;
                }
            }
            return c;
        }
    }

    /** One configuration tried: its knobs, its arguments and its prediction. */
    record Option(Knobs knobs, TrainArgs args, MemoryPlanner.Prediction prediction) {
        long bytes() {
            return prediction.deviceBytes();
        }

        /** The pinned host memory it needs (offloaded state, gradients, activations). */
        long hostBytes() {
            return prediction.report().bytes(dev.jtune.train.report.MemoryReport.PINNED_HOST_PEAK);
        }
    }

    /** The planner's answer: the configuration to run, or a refusal. */
    sealed interface Plan permits Chosen, Refused {
        /** The arguments the plan is for: the chosen ones, or the user's when refused. */
        TrainArgs args();

        MemoryPlanner.Prediction prediction();
    }

    /**
     * The configuration to run: {@code args} (the user's with the planner's {@code changes}), its prediction, and
     * {@code line}, which says what was chosen and why.
     */
    record Chosen(TrainArgs args, MemoryPlanner.Prediction prediction, Map<Flag, Object> changes, String line) implements Plan {
        Chosen {
            changes = Map.copyOf(changes);
        }
    }

    /**
     * Nothing fits: the configuration as given and its prediction, and {@code message}: what was tried, what was kept
     * as given, which single changes would fit.
     */
    record Refused(TrainArgs args, MemoryPlanner.Prediction prediction, String message) implements Plan {
    }

    /**
     * Plans a run of {@code config} with {@code a} on {@code target} against {@code budget}: with no budget, the
     * configuration as given; else the cheapest candidate by the cost rule whose prediction fits, or a refusal.
     */
    static Plan plan(Gemma3Config config, TrainArgs a, GivenFlags given, Budget budget, Device.Kind target) {
        return plan(MemoryPlanner.Model.text(config), a, given, budget, target);
    }

    /** {@link #plan(Gemma3Config, TrainArgs, GivenFlags, Budget, Device.Kind)} of a text or image-text model. */
    static Plan plan(MemoryPlanner.Model model, TrainArgs a, GivenFlags given, Budget budget, Device.Kind target) {
        if (!budget.limited()) {
            return new Chosen(a, MemoryPlanner.predict(model, a, target), Map.of(),
                    "chosen: nothing, the configuration as given (" + budget.description() + ")");
        }
        List<Option> tried = new ArrayList<>();
        for (Knobs k : candidates(model.text(), a, given, target)) {
            TrainArgs args = a.with(k.flags());
            Option o = new Option(k, args, MemoryPlanner.predict(model, args, target));
            tried.add(o);
            if (budget.fits(o)) {
                return chosen(a, o, tried.subList(0, tried.size() - 1), budget);
            }
        }
        return refused(model, a, given, budget, tried, target);
    }

    /** The knob values the planner may try for {@code a} on {@code target}, cheapest first by the cost rule. */
    static List<Knobs> candidates(Gemma3Config config, TrainArgs a, GivenFlags given, Device.Kind target) {
        List<Knobs> all = new ArrayList<>();
        for (Checkpointing c : checkpointings(a, given)) {
            for (boolean offload : offloads(a, given)) {
                for (boolean activations : activationOffloads(a, given, c)) {
                    for (boolean weights : weightOffloads(a, given, c, offload)) {
                        for (boolean tiled : tiledMlps(config, a, given, target)) {
                            for (KeepAttention keep : keptAttentions(a, given, c)) {
                                all.add(new Knobs(c, offload, activations, weights, tiled, keep));
                            }
                        }
                    }
                }
            }
        }
        all.sort(Comparator.comparingDouble(k -> k.cost(a))); // stable: ties keep none, half, layer; device, host; untiled, tiled; all, global, none
        return all;
    }

    /**
     * The tiled MLP: as given when the user set it (or its tiles, which need it); else off, and on where it makes more
     * than one tile of a micro-batch (one tile is only a recomputation of the MLP half, no smaller).
     */
    private static List<Boolean> tiledMlps(Gemma3Config config, TrainArgs a, GivenFlags given, Device.Kind target) {
        if (given.contains(Flag.TILED_MLP) || a.tiledMlpNumShards() > 0) {
            return List.of(a.tiledMlp());
        }
        long tokens = (long) a.perDeviceTrainBatchSize() * a.maxSeqLength();
        long tiles = Gemma3Model.MlpTiling.autoShards(tokens, config, MemoryPlanner.dtype(a, target));
        return tiles > 1 ? List.of(false, true) : List.of(false);
    }

    /**
     * What checkpointing {@code c} keeps of attention: as given when the user set it; without checkpointing nothing to
     * choose (the flag's value stays); else every layer, the global ones, or none (each step recomputing more for
     * less kept).
     */
    private static List<KeepAttention> keptAttentions(TrainArgs a, GivenFlags given, Checkpointing c) {
        if (given.contains(Flag.KEEP_ATTENTION) || c == Checkpointing.NONE) {
            return List.of(a.keepAttention());
        }
        return List.of(KeepAttention.ALL, KeepAttention.GLOBAL, KeepAttention.NONE);
    }

    private static List<Checkpointing> checkpointings(TrainArgs a, GivenFlags given) {
        boolean granularityGiven = given.contains(Flag.CHECKPOINTING_GRANULARITY);
        Checkpointing asGranularity = a.checkpointingGranularity() == CheckpointGranularity.HALF ? Checkpointing.HALVES : Checkpointing.LAYERS;
        if (given.contains(Flag.GRADIENT_CHECKPOINTING)) {
            if (!a.gradientCheckpointing()) {
                return List.of(Checkpointing.NONE);
            }
            return granularityGiven ? List.of(asGranularity) : List.of(Checkpointing.HALVES, Checkpointing.LAYERS);
        }
        return granularityGiven ? List.of(Checkpointing.NONE, asGranularity) : List.of(Checkpointing.NONE, Checkpointing.HALVES, Checkpointing.LAYERS);
    }

    /**
     * Activation offload with checkpointing {@code c}: none without checkpointing; as given when the user set it (either
     * spelling); else off or on, off first.
     */
    private static List<Boolean> activationOffloads(TrainArgs a, GivenFlags given, Checkpointing c) {
        if (c == Checkpointing.NONE) {
            return List.of(false);
        }
        if (given.contains(Flag.OFFLOAD_ACTIVATIONS) || given.contains(Flag.GRADIENT_CHECKPOINTING_KWARGS)) {
            return List.of(a.activationPlacement() == TrainerConfig.ActivationPlacement.HOST);
        }
        return List.of(false, true);
    }

    /**
     * Weight offload with checkpointing {@code c} and optimizer offload {@code offload}: as given when the user set it
     * (any origin); else off, or off then on where it can run (checkpointing; for full fine-tuning the optimizer
     * offloaded in step, which updates the host weights).
     */
    private static List<Boolean> weightOffloads(TrainArgs a, GivenFlags given, Checkpointing c, boolean offload) {
        if (given.contains(Flag.OFFLOAD_PARAM)) {
            return List.of(a.offloadParam() == OffloadParam.CPU && c != Checkpointing.NONE);
        }
        if (c == Checkpointing.NONE || (!a.loraEnable() && (!offload || a.delayedOptimizerStep()))) {
            return List.of(false);
        }
        return List.of(false, true);
    }

    /** Optimizer offload is the planner's to choose for full fine-tuning left open, where the trainer runs it. */
    private static List<Boolean> offloads(TrainArgs a, GivenFlags given) {
        boolean asGiven = a.offloadOptimizer() == OffloadOptimizer.CPU;
        if (given.contains(Flag.OFFLOAD_OPTIMIZER) || a.loraEnable() || asGiven || !offloadRuns(a)) {
            return List.of(asGiven);
        }
        return List.of(false, true);
    }

    /** Whether {@code a} with {@code --offload_optimizer cpu} is valid and run by the trainer. */
    private static boolean offloadRuns(TrainArgs a) {
        try {
            return TrainCommand.notRunYet(a.with(Map.of(Flag.OFFLOAD_OPTIMIZER, OffloadOptimizer.CPU))).isEmpty();
        } catch (ArgsException e) {
            return false; // paged or non-AdamW state: contradicts host offload
        }
    }

    private static Chosen chosen(TrainArgs a, Option o, List<Option> faster, Budget budget) {
        Map<Flag, Object> changes = changes(a, o.args());
        String fits = String.format(Locale.ROOT, "fits %s: it needs %s, %s to spare", budget.description(), gib(o.bytes()),
                gib(budget.bytes() - o.bytes()));
        StringBuilder line = new StringBuilder("chosen: ");
        if (changes.isEmpty()) {
            line.append("nothing to change: the configuration as given ").append(fits);
        } else {
            line.append(spell(changes)).append(String.format(Locale.ROOT, " (about +%.0f%% step time by the cost rule): the fastest"
                    + " configuration that ", 100 * o.knobs().cost(a))).append(fits);
        }
        if (!faster.isEmpty()) {
            line.append("; faster but over the budget: ").append(String.join(", ", faster.stream().map(f -> name(a, f)).toList()));
        }
        return new Chosen(o.args(), o.prediction(), changes, line.toString());
    }

    private static Refused refused(MemoryPlanner.Model model, TrainArgs a, GivenFlags given, Budget budget, List<Option> tried, Device.Kind target) {
        Option asGiven = tried.stream().filter(o -> changes(a, o.args()).isEmpty()).findFirst().orElseThrow();
        StringBuilder m = new StringBuilder(String.format(Locale.ROOT, "the step does not fit %s: as given it needs %s",
                budget.description(), gib(asGiven.bytes())));
        List<Option> others = tried.stream().filter(o -> o != asGiven).toList();
        if (others.isEmpty()) {
            m.append(", and the planner may change nothing");
        } else {
            m.append(", and nothing the planner may choose fits: ").append(String.join(", ", others.stream().map(o -> name(a, o)).toList()));
        }
        List<String> hostBound = tried.stream().filter(o -> o.bytes() <= budget.bytes()).map(o -> name(a, o) + " needs "
                + gib(o.hostBytes()) + " of pinned host memory").toList();
        if (!hostBound.isEmpty()) {
            m.append(". These fit the device but not the host's available memory (").append(gib(budget.hostBytes())).append("): ")
                    .append(String.join(", ", hostBound));
        }
        List<String> kept = new ArrayList<>();
        for (Flag f : KNOBS) {
            if (given.contains(f)) {
                kept.add(f.cli() + " " + f.format(a.get(f)) + " (" + given.origin(f) + ")");
            }
        }
        if (!kept.isEmpty()) {
            m.append(". Kept as given: ").append(String.join(", ", kept));
        }
        Option smallest = tried.stream().min(Comparator.comparingLong(Option::bytes)).orElseThrow();
        List<String> fit = new ArrayList<>();
        List<String> over = new ArrayList<>();
        for (Map.Entry<String, Map<Flag, Object>> c : singleChanges(a, given).entrySet()) {
            TrainArgs changed = null;
            long bytes = Long.MAX_VALUE;
            for (TrainArgs option : withFrugalOpenKnobs(model.text(), a, given, smallest.knobs(), c.getValue(), target)) {
                long b = MemoryPlanner.predict(model, option, target).deviceBytes();
                if (b < bytes) {
                    changed = option;
                    bytes = b;
                }
            }
            if (changed == null) {
                continue;
            }
            Map<Flag, Object> filled = changes(a.with(c.getValue()), changed);
            (bytes <= budget.bytes() ? fit : over).add(c.getKey() + (filled.isEmpty() ? "" : ", the planner adding " + spell(filled))
                    + ": " + gib(bytes));
        }
        if (!fit.isEmpty()) {
            m.append(". What would fit, one change at a time: ").append(String.join("; ", fit));
        }
        if (!over.isEmpty()) {
            m.append(fit.isEmpty() ? ". No single change fits: " : ". Not enough alone: ").append(String.join("; ", over));
        }
        Option leanest = tried.stream().min(Comparator.comparingLong(o -> o.prediction().report().bytes("weights_device"))).orElseThrow();
        long weights = leanest.prediction().report().bytes("weights_device");
        if (weights > budget.bytes()) {
            m.append(". The weights alone need ").append(gib(weights)).append(" on the device").append(leanest.knobs().weights()
                    ? " with the layers' weights offloaded (the embedding, which is also the LM head, stays on the device)" : "");
        }
        return new Refused(a, asGiven.prediction(), m.toString());
    }

    /**
     * The single changes a user could make to lower the peak, each as it would be typed and the flag values it sets:
     * a shorter sequence, a smaller micro-batch, a smaller rank, 4 bits, and the knobs the user set otherwise.
     */
    static Map<String, Map<Flag, Object>> singleChanges(TrainArgs a, GivenFlags given) {
        Map<String, Map<Flag, Object>> c = new LinkedHashMap<>();
        if (a.maxSeqLength() / 2 >= 2) {
            c.put("--max_seq_length " + a.maxSeqLength() / 2, Map.of(Flag.MAX_SEQ_LENGTH, a.maxSeqLength() / 2));
        }
        int batch = a.perDeviceTrainBatchSize();
        if (batch > 1) {
            int smaller = batch % 2 == 0 ? batch / 2 : 1;
            int accumulation = a.gradientAccumulationSteps() * batch / smaller;
            c.put("--per_device_train_batch_size " + smaller + " --gradient_accumulation_steps " + accumulation + " (the same step)",
                    Map.of(Flag.PER_DEVICE_TRAIN_BATCH_SIZE, smaller, Flag.GRADIENT_ACCUMULATION_STEPS, accumulation));
        }
        if (a.loraEnable()) {
            if (a.loraRank() >= 2) {
                c.put("--lora_rank " + a.loraRank() / 2, Map.of(Flag.LORA_RANK, a.loraRank() / 2));
            }
            if (a.bits() != 4) {
                c.put("--bits 4 (QLoRA)", Map.of(Flag.BITS, 4));
            }
        } else {
            c.put("--lora_enable --freeze_llm --bits 4 (QLoRA, rank " + a.loraRank() + ", instead of full fine-tuning)",
                    Map.of(Flag.LORA_ENABLE, true, Flag.FREEZE_LLM, true, Flag.BITS, 4));
        }
        if (given.contains(Flag.GRADIENT_CHECKPOINTING) && !a.gradientCheckpointing()) {
            c.put("--gradient_checkpointing", Map.of(Flag.GRADIENT_CHECKPOINTING, true));
        }
        if (given.contains(Flag.GRADIENT_CHECKPOINTING) && a.gradientCheckpointing() && given.contains(Flag.CHECKPOINTING_GRANULARITY)) {
            CheckpointGranularity other = a.checkpointingGranularity() == CheckpointGranularity.HALF ? CheckpointGranularity.LAYER : CheckpointGranularity.HALF;
            c.put("--checkpointing_granularity " + other.flagValue(), Map.of(Flag.CHECKPOINTING_GRANULARITY, other));
        }
        if (given.contains(Flag.TILED_MLP) && !a.tiledMlp()) {
            c.put(Flag.TILED_MLP.cli(), Map.of(Flag.TILED_MLP, true));
        }
        if (a.offloadOptimizer() == OffloadOptimizer.NONE && (given.contains(Flag.OFFLOAD_OPTIMIZER) || a.loraEnable()) && offloadRuns(a)) {
            c.put("--offload_optimizer cpu", Map.of(Flag.OFFLOAD_OPTIMIZER, OffloadOptimizer.CPU));
        }
        if (a.offloadParam() == OffloadParam.NONE && given.contains(Flag.OFFLOAD_PARAM)) {
            c.put("--offload_param cpu", Map.of(Flag.OFFLOAD_PARAM, OffloadParam.CPU));
        }
        if (a.optimizerStatePlacement() == TrainerConfig.OptimizerStatePlacement.DEVICE) {
            if (a.optim().statePrecision() == TrainerConfig.OptimizerStatePrecision.FP32) {
                c.put("--optim " + Optim.ADAMW_BNB_8BIT.flagValue(), Map.of(Flag.OPTIM, Optim.ADAMW_BNB_8BIT));
            }
            c.put("--optim " + Optim.PAGED_ADAMW_8BIT.flagValue(), Map.of(Flag.OPTIM, Optim.PAGED_ADAMW_8BIT));
        }
        return c;
    }

    /**
     * {@code a} with {@code change}, the knobs left open at the planner's most frugal values for it: the optimizer
     * offloaded where the planner could choose that; checkpointing as in {@code smallest} (the smallest option tried)
     * where the change allows it, else each mode it allows (the caller keeps the smallest). Invalid results and
     * those the trainer does not run are left out.
     */
    private static List<TrainArgs> withFrugalOpenKnobs(Gemma3Config config, TrainArgs a, GivenFlags given, Knobs smallest,
                                                       Map<Flag, Object> change, Device.Kind target) {
        TrainArgs changed;
        try {
            changed = a.with(change);
        } catch (ArgsException e) {
            return List.of();
        }
        List<Checkpointing> allowed = checkpointings(changed, given);
        boolean offload = offloads(changed, given).getLast();
        List<TrainArgs> out = new ArrayList<>();
        for (Checkpointing c : allowed.contains(smallest.checkpointing()) ? List.of(smallest.checkpointing()) : allowed) {
            Map<Flag, Object> values = new EnumMap<>(Flag.class);
            new Knobs(c, offload, activationOffloads(changed, given, c).getLast(), weightOffloads(changed, given, c, offload).getLast(),
                    tiledMlps(config, changed, given, target).getLast(), keptAttentions(changed, given, c).getLast())
                    .flags().forEach((f, v) -> {
                if (!given.contains(f) && !change.containsKey(f)) {
                    values.put(f, v);
                }
            });
            try {
                TrainArgs result = changed.with(values);
                if (TrainCommand.notRunYet(result).isEmpty()) {
                    out.add(result);
                }
            } catch (ArgsException e) {
                // not a valid combination: not a suggestion
            }
        }
        return out;
    }

    /** The knob flags whose value differs between {@code from} and {@code to}. */
    static Map<Flag, Object> changes(TrainArgs from, TrainArgs to) {
        Map<Flag, Object> m = new EnumMap<>(Flag.class);
        for (Flag f : KNOBS) {
            if (!Objects.equals(from.get(f), to.get(f))) {
                m.put(f, to.get(f));
            }
        }
        return m;
    }

    /** Flag values as typed: {@code --gradient_checkpointing --checkpointing_granularity half}. */
    static String spell(Map<Flag, Object> flags) {
        List<String> parts = new ArrayList<>();
        flags.forEach((f, v) -> parts.add(Boolean.TRUE.equals(v) ? f.cli() : f.cli() + " " + f.format(v)));
        return String.join(" ", parts);
    }

    /** An option tried, named by its changes to {@code a}, with its bytes. */
    private static String name(TrainArgs a, Option o) {
        Map<Flag, Object> c = changes(a, o.args());
        return (c.isEmpty() ? "as given" : spell(c)) + " " + gib(o.bytes());
    }

    /** Bytes for messages: GiB with two decimals, MiB with one below a GiB. */
    static String gib(long bytes) {
        return Math.abs(bytes) >= 1L << 30 ? String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30))
                : String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }
}

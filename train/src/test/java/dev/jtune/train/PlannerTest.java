package dev.jtune.train;

import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.model.Gemma3Model.Checkpointing;
import dev.jtune.train.args.CommandLine;
import dev.jtune.train.args.Flag;
import dev.jtune.train.args.KeepAttention;
import dev.jtune.train.args.OffloadOptimizer;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.report.MemoryReport;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The memory planner on a tiny Gemma 3 (4 layers, hidden 512, vocabulary 512; large enough that the candidates'
 * reserved bytes differ by more than the allocator's 2 MiB pages) planned for the GPU on the meta
 * device. Budgets are derived from the candidates' own predictions, so each case holds whatever the bytes are: the
 * cheapest candidate (by the cost rule) that fits is chosen, a knob the user set is never changed, and when nothing
 * fits the refusal names the single changes that would.
 */
class PlannerTest {
    private static final Gemma3Config TINY = CliFixtures.tiny(4, 512);

    /** A plan's command line: the tiny model's flags for a full fine-tune of 2 x 512 tokens in bf16, then {@code extra}. */
    private static CommandLine.Train parse(String... extra) {
        List<String> a = new ArrayList<>(List.of("--bf16", "True", "--max_seq_length", "512", "--per_device_train_batch_size", "2"));
        a.addAll(List.of(extra));
        return (CommandLine.Train) CommandLine.parse(a.toArray(String[]::new), Map.of(), CommandLine.Purpose.PLAN);
    }

    /** The planner's candidates for the tiny model on a GPU. */
    private static List<Planner.Knobs> candidates(TrainArgs a, dev.jtune.train.args.GivenFlags given) {
        return Planner.candidates(TINY, a, given, Device.Kind.CUDA);
    }

    private static Planner.Plan plan(CommandLine.Train t, long budget) {
        return Planner.plan(TINY, t.args(), t.given(), new Planner.Budget(budget, "a test budget of " + budget + " bytes"), Device.Kind.CUDA);
    }

    /**
     * A run's data bounds its steps: planned for its longest sequence (512 tokens under --max_seq_length 1024) the step
     * is the one planned at 512, and less than at 1024; a longer record than the limit is cut to it.
     */
    @Test
    void aPlanForTheDataIsThePlanAtItsLongestSequence() {
        TrainArgs at1024 = parse("--max_seq_length", "1024").args();
        TrainArgs at512 = parse("--max_seq_length", "512").args();
        long data = MemoryPlanner.predict(new MemoryPlanner.Model(TINY, java.util.Optional.empty(), 0, 512), at1024, Device.Kind.CUDA).deviceBytes();
        long short512 = MemoryPlanner.predict(TINY, at512, Device.Kind.CUDA).deviceBytes();
        long full = MemoryPlanner.predict(TINY, at1024, Device.Kind.CUDA).deviceBytes();
        assertEquals(short512, data, "the data's 512 tokens plan as --max_seq_length 512");
        assertTrue(data < full, data + " vs " + full);
        assertEquals(full, MemoryPlanner.predict(new MemoryPlanner.Model(TINY, java.util.Optional.empty(), 0, 5000), at1024, Device.Kind.CUDA)
                .deviceBytes(), "records longer than the limit are cut to it");
    }

    /**
     * A rank of a data-parallel world with ZeRO stage 1 is planned with its shard of AdamW's state: on the meta device as
     * rank 0 of a world that moves nothing, its moments and master copy are half of one process's at two ranks (up to each
     * group's shard rounded to the flat layout's alignment), the rest of the step unchanged.
     */
    @Test
    void aZeroStageOneRankIsPlannedWithItsShardOfTheState() {
        TrainArgs a = parse("--deepspeed", "{\"gradient_clipping\": \"auto\", \"zero_optimization\": {\"stage\": 1}}").args();
        MemoryPlanner.Model one = new MemoryPlanner.Model(TINY, java.util.Optional.empty(), 0, 512);
        MemoryReport whole = MemoryPlanner.predict(one, a, Device.Kind.CUDA).report();
        MemoryReport shard = MemoryPlanner.predict(one.inWorldOf(2), a, Device.Kind.CUDA).report();
        long wholeState = state(whole);
        long shardState = state(shard);
        System.out.printf(java.util.Locale.ROOT, "optimizer state planned: one process %,d bytes, a rank of two %,d%n", wholeState, shardState);
        long slack = 3L * 2 * 256 * Float.BYTES; // m, v, master: each group's shard rounded up by at most an alignment
        assertTrue(shardState <= wholeState / 2 + slack && shardState >= wholeState / 2 - slack, shardState + " vs " + wholeState);
        assertEquals(whole.bytes(MemoryReport.deviceKey(MemoryCategory.ACTIVATIONS)), shard.bytes(MemoryReport.deviceKey(MemoryCategory.ACTIVATIONS)));
        assertTrue(shard.bytes(MemoryReport.DEVICE_PEAK) < whole.bytes(MemoryReport.DEVICE_PEAK));
    }

    private static long state(MemoryReport r) {
        return r.bytes(MemoryReport.deviceKey(MemoryCategory.OPTIMIZER)) + r.bytes(MemoryReport.deviceKey(MemoryCategory.MASTER_WEIGHTS));
    }

    /**
     * The host's memory bounds what may be pinned: with a device budget every candidate fits, a host budget below what
     * optimizer offload pins leaves only the candidates that pin nothing (or less), and one below every candidate's
     * pinned bytes refuses, naming the host.
     */
    @Test
    void aPlanMustFitTheHostsMemoryToo() {
        CommandLine.Train t = parse();
        TrainArgs a = t.args();
        long roomy = Long.MAX_VALUE / 4;
        Planner.Plan free = Planner.plan(TINY, a, t.given(), new Planner.Budget(roomy, "all", 0), Device.Kind.CUDA);
        Planner.Chosen chosen = assertInstanceOf(Planner.Chosen.class, free, "nothing pinned: fits a host with no memory to spare");
        assertEquals(a.offloadOptimizer(), chosen.args().offloadOptimizer());
        assertEquals(0, Planner.Knobs.of(chosen.args()).checkpointing().ordinal(), "the cheapest: no checkpointing");
        // the device budget of the smallest offloaded candidate, a host of 1 KiB: the first candidate in cost order that
        // fits both is chosen (one that pins nothing), or, when none does, the refusal names the host
        List<Planner.Option> options = new ArrayList<>();
        for (Planner.Knobs k : candidates(a, t.given())) {
            TrainArgs args = a.with(k.flags());
            options.add(new Planner.Option(k, args, MemoryPlanner.predict(TINY, args, Device.Kind.CUDA)));
        }
        long device = options.stream().filter(o -> o.knobs().offload()).mapToLong(Planner.Option::bytes).min().orElseThrow();
        assertTrue(options.stream().filter(o -> o.knobs().offload()).allMatch(o -> o.hostBytes() > 1024), "offload pins the state");
        Planner.Budget small = new Planner.Budget(device, "a small device", 1024);
        Planner.Plan hostBound = Planner.plan(TINY, a, t.given(), small, Device.Kind.CUDA);
        java.util.Optional<Planner.Option> expected = options.stream().filter(small::fits).findFirst();
        System.out.println("host-bound plan: " + (hostBound instanceof Planner.Chosen c ? c.line() : ((Planner.Refused) hostBound).message()));
        if (expected.isPresent()) {
            Planner.Chosen c = assertInstanceOf(Planner.Chosen.class, hostBound);
            assertEquals(expected.get().knobs(), Planner.Knobs.of(c.args()), c.line());
            assertFalse(expected.get().knobs().offload());
        } else {
            Planner.Refused r = assertInstanceOf(Planner.Refused.class, hostBound);
            assertTrue(r.message().contains("not the host's available memory"), r.message());
        }
    }

    /** Every candidate's predicted device bytes, in the planner's order (cheapest first). */
    private static LinkedHashMap<Planner.Knobs, Long> predictions(CommandLine.Train t) {
        LinkedHashMap<Planner.Knobs, Long> m = new LinkedHashMap<>();
        for (Planner.Knobs k : candidates(t.args(), t.given())) {
            m.put(k, MemoryPlanner.predict(TINY, t.args().with(k.flags()), Device.Kind.CUDA).deviceBytes());
        }
        m.forEach((k, b) -> System.out.printf(Locale.ROOT, "  %-8s offload %-5s cost %.3f  %,d bytes%n", k.checkpointing(), k.offload(),
                k.cost(t.args()), b));
        return m;
    }

    @Test
    void candidatesAreOrderedByTheCostRuleAndVaryOnlyWhatWasLeftOpen() {
        TrainArgs full = parse().args();
        List<Planner.Knobs> all = candidates(full, parse().given());
        // {none, half and half with activation offload, layer and layer with it} x {device, host}, and with the optimizer
        // on the host (in step), each checkpointed one with weight offload too: 14; each of the 12 checkpointed ones
        // keeping every layer's attention, the global layers', or none
        assertEquals(38, all.size(), all.toString());
        assertTrue(all.stream().filter(Planner.Knobs::weights).allMatch(k -> k.offload() && k.checkpointing() != Checkpointing.NONE), all.toString());
        assertEquals(new Planner.Knobs(Checkpointing.NONE, false), all.getFirst(), "nothing to recompute, state on the device: first");
        for (int i = 1; i < all.size(); i++) {
            assertTrue(all.get(i - 1).cost(full) <= all.get(i).cost(full), all.toString());
        }
        // the cost rule's numbers: half 8%, layer 23%, offload 10% at 65,536 tokens a step (here 2 x 512 x 1 = 1024 tokens),
        // the sliding layers' attention recomputed (keeping only the global layers', the flag's default) 2%
        assertEquals(0.10 * 65_536 / 1024 + 0.08 + 0.02, new Planner.Knobs(Checkpointing.HALVES, true).cost(full), 1e-12);
        assertEquals(0.10 + 0.23 + 0.02, new Planner.Knobs(Checkpointing.LAYERS, true).cost(parse("--gradient_accumulation_steps", "64").args()), 1e-12);
        assertEquals(0.23, new Planner.Knobs(Checkpointing.LAYERS, false, false, false, false, KeepAttention.ALL).cost(full), 1e-12);

        // LoRA: the optimizer's placement is not the planner's to choose
        assertEquals(List.of(Checkpointing.NONE, Checkpointing.HALVES, Checkpointing.LAYERS),
                candidates(parse("--lora_enable", "--freeze_llm").args(), parse("--lora_enable", "--freeze_llm").given()).stream()
                        .peek(k -> assertFalse(k.offload())).map(Planner.Knobs::checkpointing).distinct().toList());
        // set by the user: used as given
        var off = parse("--gradient_checkpointing", "False");
        assertTrue(candidates(off.args(), off.given()).stream().allMatch(k -> k.checkpointing() == Checkpointing.NONE));
        var on = parse("--gradient_checkpointing");
        assertEquals(List.of(Checkpointing.HALVES, Checkpointing.LAYERS),
                candidates(on.args(), on.given()).stream().map(Planner.Knobs::checkpointing).distinct().toList(),
                "checkpointing on, its granularity open");
        var layer = parse("--checkpointing_granularity", "layer", "--offload_optimizer", "none");
        assertEquals(List.of(new Planner.Knobs(Checkpointing.NONE, false),
                        new Planner.Knobs(Checkpointing.LAYERS, false, false, false, false, KeepAttention.ALL),
                        new Planner.Knobs(Checkpointing.LAYERS, false),
                        new Planner.Knobs(Checkpointing.LAYERS, false, false, false, false, KeepAttention.NONE),
                        new Planner.Knobs(Checkpointing.LAYERS, false, true, false, false, KeepAttention.ALL),
                        new Planner.Knobs(Checkpointing.LAYERS, false, true),
                        new Planner.Knobs(Checkpointing.LAYERS, false, true, false, false, KeepAttention.NONE)),
                candidates(layer.args(), layer.given()));
        // recomputing the global layers' attention: 2% at 8,192 tokens a sequence, in proportion to the sequence (here
        // 512), on the sliding layers' 2%, only with checkpointing, as given when set
        assertEquals(0.23 + 0.02 + 0.02 * 512 / 8192, new Planner.Knobs(Checkpointing.LAYERS, false, false, false, false, KeepAttention.NONE).cost(full), 1e-12);
        assertEquals(0.23 + 0.02 + 0.08, new Planner.Knobs(Checkpointing.LAYERS, false, false, false, false, KeepAttention.NONE)
                .cost(parse("--max_seq_length", "32768").args()), 1e-12);
        assertEquals(0, new Planner.Knobs(Checkpointing.NONE, false, false, false, false, KeepAttention.NONE).cost(full), 1e-12);
        var keepAll = parse("--gradient_checkpointing", "--keep_attention", "all");
        assertTrue(candidates(keepAll.args(), keepAll.given()).stream().allMatch(k -> k.keepAttention() == KeepAttention.ALL));
        // weight offload: 30% by the (unmeasured) rule; for LoRA with any optimizer, as given when set
        assertEquals(0.23 + 0.30 + 0.02, new Planner.Knobs(Checkpointing.LAYERS, false, false, true, false).cost(full), 1e-12);
        var lora = parse("--lora_enable", "--freeze_llm", "--gradient_checkpointing");
        assertTrue(candidates(lora.args(), lora.given()).stream().anyMatch(k -> k.weights() && !k.offload()));
        var weightsKept = parse("--lora_enable", "--freeze_llm", "--gradient_checkpointing", "--offload_param", "none");
        assertTrue(candidates(weightsKept.args(), weightsKept.given()).stream().noneMatch(Planner.Knobs::weights));
        // activation offload: 15% by the (unmeasured) rule, never without checkpointing, as given when set
        assertEquals(0.23 + 0.15 + 0.02, new Planner.Knobs(Checkpointing.LAYERS, false, true).cost(full), 1e-12);
        var kept = parse("--gradient_checkpointing", "--offload_activations", "False");
        assertTrue(candidates(kept.args(), kept.given()).stream().noneMatch(Planner.Knobs::activations));
        var kwargs = parse("--gradient_checkpointing", "--gradient_checkpointing_kwargs", "{\"offload\": true}");
        assertTrue(candidates(kwargs.args(), kwargs.given()).stream().allMatch(Planner.Knobs::activations));
        // paged state on the host cannot be offloaded as well; 8-bit state can (then kept in 8 bits on the host)
        var paged = parse("--optim", "paged_adamw_8bit");
        assertTrue(candidates(paged.args(), paged.given()).stream().noneMatch(Planner.Knobs::offload));
        var eight = parse("--optim", "adamw_bnb_8bit");
        assertTrue(candidates(eight.args(), eight.given()).stream().anyMatch(Planner.Knobs::offload));
    }

    /**
     * The tiled MLP is a knob where it makes more than one tile of a micro-batch: the tiny model's intermediate of
     * {@code I} bf16 values a token fills the 256 MiB of one tile at 2^27 / I tokens, so 2 x 512 tokens make one tile
     * (not offered) and 2 x 2^26 / I + 2 tokens two. Its cost: +2%, and +5% more where half checkpointing does not
     * recompute the MLP half anyway.
     */
    @Test
    void theTiledMlpIsTriedWhereItMakesTilesAndCostsByTheRule() {
        assertTrue(candidates(parse().args(), parse().given()).stream().noneMatch(Planner.Knobs::tiledMlp), "one tile: not a knob");
        long oneTile = Gemma3Model.MlpTiling.AUTO_TILE_BYTES / (TINY.intermediateSize() * 2L);
        var longer = parse("--max_seq_length", Long.toString(oneTile / 2 + 1), "--lora_enable", "--freeze_llm");
        List<Planner.Knobs> all = candidates(longer.args(), longer.given());
        assertEquals(all.size() / 2, all.stream().filter(Planner.Knobs::tiledMlp).count(), "each candidate untiled and tiled: " + all);
        for (int i = 1; i < all.size(); i++) {
            assertTrue(all.get(i - 1).cost(longer.args()) <= all.get(i).cost(longer.args()), all.toString());
        }
        TrainArgs a = longer.args();
        // (the checkpointed ones keep the global layers' attention: +2% for the sliding layers' recomputed)
        assertEquals(0.08 + 0.02 + 0.02, new Planner.Knobs(Checkpointing.HALVES, false, false, false, true).cost(a), 1e-12);
        assertEquals(0.02 + 0.05, new Planner.Knobs(Checkpointing.NONE, false, false, false, true).cost(a), 1e-12);
        assertEquals(0.23 + 0.02 + 0.05 + 0.02, new Planner.Knobs(Checkpointing.LAYERS, false, false, false, true).cost(a), 1e-12);
        // as given: set either way, or implied by its tiles
        var off = parse("--max_seq_length", Long.toString(oneTile / 2 + 1), "--tiled_mlp", "False");
        assertTrue(candidates(off.args(), off.given()).stream().noneMatch(Planner.Knobs::tiledMlp));
        var on = parse("--tiled_mlp");
        assertTrue(candidates(on.args(), on.given()).stream().allMatch(Planner.Knobs::tiledMlp), "set even where one tile");
        var shards = parse("--tiled_mlp", "--tiled_mlp_num_shards", "4");
        assertTrue(candidates(shards.args(), shards.given()).stream().allMatch(Planner.Knobs::tiledMlp));
        assertEquals(Gemma3Model.MlpTiling.shards(4), shards.args().mlpTiling());
        assertEquals(Gemma3Model.MlpTiling.AUTO, on.args().mlpTiling());
        assertEquals(Gemma3Model.MlpTiling.NONE, off.args().mlpTiling());
    }

    @Test
    void theCheapestCandidateThatFitsIsChosenForEveryBudget() {
        var t = parse();
        LinkedHashMap<Planner.Knobs, Long> bytes = predictions(t);
        List<Planner.Knobs> order = new ArrayList<>(bytes.keySet());
        // a budget at each candidate's bytes: the first in the cost order that fits it is chosen
        for (long budget : bytes.values()) {
            Planner.Knobs expected = order.stream().filter(k -> bytes.get(k) <= budget).findFirst().orElseThrow();
            Planner.Chosen c = assertInstanceOf(Planner.Chosen.class, plan(t, budget));
            assertEquals(expected, Planner.Knobs.of(c.args()), "budget " + budget + ": " + c.line());
            assertEquals(bytes.get(expected), c.prediction().deviceBytes());
            assertTrue(c.line().startsWith("chosen: "), c.line());
        }
        // at the smallest bytes (several knob sets may tie there) the cheapest of those is chosen, which is not the
        // cheapest of all, so the planner had to look past the fast ones
        long min = bytes.values().stream().mapToLong(Long::longValue).min().orElseThrow();
        Planner.Knobs smallest = order.stream().filter(k -> bytes.get(k) == min).findFirst().orElseThrow();
        assertTrue(order.indexOf(smallest) > 0, "the smallest is not the cheapest: " + bytes);
        Planner.Chosen c = assertInstanceOf(Planner.Chosen.class, plan(t, min));
        assertEquals(smallest, Planner.Knobs.of(c.args()));
        System.out.println(c.line());
        assertTrue(c.line().contains(Planner.spell(Planner.changes(t.args(), c.args()))), c.line());
        assertTrue(c.line().contains("faster but over the budget: as given "), c.line());
        // the fastest of all fits a budget of its own bytes: nothing to change
        Planner.Chosen first = assertInstanceOf(Planner.Chosen.class, plan(t, bytes.get(order.getFirst())));
        assertEquals(Map.of(), first.changes());
        assertEquals(t.args(), first.args());
        assertTrue(first.line().startsWith("chosen: nothing to change: the configuration as given fits a test budget"), first.line());
    }

    @Test
    void aKnobTheUserSetIsNeverChanged() {
        var open = parse();
        LinkedHashMap<Planner.Knobs, Long> bytes = predictions(open);
        long smallest = bytes.values().stream().mapToLong(Long::longValue).min().orElseThrow();
        // with everything open, the smallest budget is met by changing knobs; each knob set by the user stays as given
        for (String[] set : List.of(new String[] {"--gradient_checkpointing", "False"}, new String[] {"--offload_optimizer", "none"},
                new String[] {"--checkpointing_granularity", "layer"}, new String[] {"--gradient_checkpointing", "--checkpointing_granularity", "half"})) {
            var t = parse(set);
            for (long budget : bytes.values()) {
                Planner.Plan p = plan(t, budget);
                for (Flag f : t.given().flags()) {
                    if (Planner.KNOBS.contains(f)) {
                        assertEquals(t.args().get(f), p.args().get(f), String.join(" ", set) + ", budget " + budget);
                    }
                }
                if (p instanceof Planner.Chosen c) {
                    assertTrue(c.prediction().deviceBytes() <= budget);
                    assertTrue(c.changes().keySet().stream().noneMatch(t.given()::contains), c.changes().toString());
                }
            }
        }
        // checkpointing off as given: a budget only checkpointing meets is refused, naming the flag kept and the change that fits
        var off = parse("--gradient_checkpointing", "False");
        Planner.Refused r = assertInstanceOf(Planner.Refused.class, plan(off, smallest));
        System.out.println(r.message());
        assertTrue(r.message().contains("Kept as given: --gradient_checkpointing False (command line)"), r.message());
        assertTrue(r.message().contains("What would fit, one change at a time: "), r.message());
        String fits = r.message().substring(r.message().indexOf("What would fit"));
        assertTrue(fits.contains("--gradient_checkpointing"), r.message());
        assertFalse(r.args().gradientCheckpointing());
    }

    @Test
    void nothingFitsRefusesNamingTheSingleChangesThatWould() {
        var t = parse();
        LinkedHashMap<Planner.Knobs, Long> bytes = predictions(t);
        Map.Entry<Planner.Knobs, Long> smallest = bytes.entrySet().stream().min(Map.Entry.comparingByValue()).orElseThrow();
        // half the sequence with the smallest candidate's knobs: under every candidate, so a budget there leaves the
        // planner nothing, but that one change fits
        long halved = MemoryPlanner.predict(TINY, t.args().with(smallest.getKey().flags()).with(Map.of(Flag.MAX_SEQ_LENGTH, 256)),
                Device.Kind.CUDA).deviceBytes();
        assertTrue(halved < smallest.getValue(), halved + " vs " + smallest);
        Planner.Refused r = assertInstanceOf(Planner.Refused.class, plan(t, halved));
        System.out.println(r.message());
        long asGiven = bytes.get(new Planner.Knobs(Checkpointing.NONE, false));
        assertEquals(asGiven, r.prediction().deviceBytes(), "the refusal's table is the configuration as given");
        assertEquals(t.args(), r.args());
        String m = r.message();
        assertTrue(m.startsWith("the step does not fit a test budget of " + halved + " bytes: as given it needs " + Planner.gib(asGiven)
                + ", and nothing the planner may choose fits: "), m);
        // the planner fills the open knobs at their most frugal (the smallest's checkpointing, every offload it may use)
        assertTrue(m.contains("What would fit, one change at a time: --max_seq_length 256, the planner adding "
                + Planner.spell(Planner.changes(t.args(), t.args().with(new Planner.Knobs(smallest.getKey().checkpointing(), true, true, true, smallest.getKey().tiledMlp(),
                        KeepAttention.NONE).flags())))
                + ": "), m);
        // the other single changes are predicted and named, fitting or not
        for (String change : List.of("--per_device_train_batch_size 1 --gradient_accumulation_steps 2", "--lora_enable --freeze_llm --bits 4",
                "--optim adamw_bnb_8bit", "--optim paged_adamw_8bit")) {
            assertTrue(m.contains(change), change + " not named: " + m);
        }
        assertFalse(m.contains("The weights alone"), "the weights fit: " + m);

        // a budget under the weights themselves, even with the layers offloaded, says so
        Planner.Refused tiny = assertInstanceOf(Planner.Refused.class, plan(t, 1000));
        assertTrue(tiny.message().contains("No single change fits: "), tiny.message());
        assertTrue(tiny.message().endsWith("on the device with the layers' weights offloaded (the embedding, which is also the LM head, stays on the device)"),
                tiny.message());
    }

    @Test
    void withoutABudgetTheConfigurationAsGivenIsPlanned() {
        var t = parse("--offload_optimizer", "cpu");
        Planner.Chosen c = assertInstanceOf(Planner.Chosen.class, Planner.plan(TINY, t.args(), t.given(),
                Planner.Budget.unlimited("no budget here"), Device.Kind.CPU));
        assertEquals(t.args(), c.args());
        assertEquals(OffloadOptimizer.CPU, c.args().offloadOptimizer());
        assertEquals("chosen: nothing, the configuration as given (no budget here)", c.line());
        assertTrue(c.prediction().report().bytes("master_weights_host") > 0, "the plan is of the offloaded step");
        // the cpu runs in fp32, without the GPU's resident buffers
        assertEquals(0, c.prediction().report().bytes("resident"));
    }
}

package dev.jtune.train;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.dist.ShardedWeights;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.lora.Lora;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.testing.Steps;
import dev.jtune.testing.Seeds;
import dev.jtune.train.loop.TrainerTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ZeRO stage 3's weights over in-process ranks ({@link Gemma3Model#shardLayerWeights}, {@link ShardedWeights}): a QLoRA
 * step over layers whose frozen weights (the NF4 base and the norms) each rank holds a part of, gathered layer by layer,
 * gives every rank the loss and adapter gradients of one device, bit for bit, with each rank holding 1/N of those
 * weights; gathering them whole gives back the very bytes; a full fine-tune has nothing frozen to shard; training
 * without recomputation is refused, and a sharded weight outside a forward is a meta-device placeholder; ranks whose
 * models differ stop at sharding with what differs.
 */
class ShardedWeightsRanksTest {
    private static Gemma3Config config() {
        try {
            return TrainerTest.tinyConfig();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Ids and labels of one batch [2, 12], in the current scope. */
    private static Tensor[] batch(Gemma3Config config, long seed) {
        int[] ids = new Random(seed).ints(2 * 12, 0, config.vocabSize()).toArray();
        Tensor t = Tensor.fromArray(ids, Shape.of(2, 12), DType.I32, Device.CPU);
        return new Tensor[] {t, t};
    }

    /** The QLoRA model every rank builds alike: NF4 base, adapters with B moved off zero (so every gradient is non-zero). */
    private static Gemma3Model qlora(Gemma3Config config, long seed, List<Tensor> trained) {
        Gemma3Model m = Gemma3Model.random(config, Device.CPU, DType.F32, seed);
        m.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
        trained.addAll(Lora.parameters(Lora.attach(m, LoraConfig.of(4, 8), DType.F32, seed + 1)));
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Tensor t : trained) {
                Ops.copyInto(Tensor.normal(t.shape(), t.dtype(), Device.CPU, seed + 2, 0, 0.05), t);
            }
        }
        return m;
    }

    /** The loss, then each trained tensor's gradient, of one forward and backward with layer checkpointing. */
    private static List<float[]> step(Gemma3Model m, List<Tensor> trained, Tensor[] batch) {
        return Steps.lossAndGradients(m, trained, Gemma3Model.Options.defaults().withCheckpointing(Gemma3Model.Checkpointing.LAYERS), batch);
    }

    /** Every layer weight's bytes by name (an NF4 weight's parts one after another), as doubles. */
    private static Map<String, double[]> layerBytes(Gemma3Model m) {
        Map<String, double[]> out = new java.util.TreeMap<>();
        m.namedParameters().forEach((name, p) -> {
            if (name.contains(".layers.") && !name.contains("lora_")) {
                Tensor[] parts = p.isQuantized() ? p.quantized().parts() : new Tensor[] {p.tensor()};
                for (int i = 0; i < parts.length; i++) {
                    out.put(name + "#" + i, parts[i].toDoubleArray());
                }
            }
        });
        return out;
    }

    private static void assertSame(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), what + ": result " + i + " (the loss, then the adapter gradients)");
        }
    }

    @ParameterizedTest(name = "{0} ranks")
    @ValueSource(ints = {2, 3})
    void qloraOverShardedLayersEqualsOneDeviceBitForBit(int ranks) throws Exception {
        long seed = Seeds.seed();
        Gemma3Config config = config();
        List<float[]> expected;
        Map<String, double[]> wholeBytes;
        long frozenBytes = 0;
        try (Scope s = Scope.open("one device", MemoryCategory.WEIGHTS)) {
            List<Tensor> trained = new ArrayList<>();
            Gemma3Model m = qlora(config, seed, trained);
            expected = step(m, trained, batch(config, seed));
            wholeBytes = layerBytes(m);
            for (var l : m.layers()) {
                for (Parameter p : l.namedParameters().values()) {
                    frozenBytes += p.isQuantized() || !p.tensor().requiresGrad() ? p.bytes() : 0;
                }
            }
        }
        long frozen = frozenBytes;
        List<String> problems = new InProcessWorld(ranks, Duration.ofSeconds(60)).run(world -> {
            try (Scope s = Scope.open("rank " + world.rank(), MemoryCategory.WEIGHTS)) {
                List<Tensor> trained = new ArrayList<>();
                Gemma3Model m = qlora(config, seed, trained);
                Tensor[] batch = batch(config, seed);
                ShardedWeights w = m.shardLayerWeights(world).orElseThrow();
                long held = w.partBytes().values().stream().mapToLong(Long::longValue).sum();
                // a rank's part: 1/N of the frozen bytes, plus at most the alignment padding of each piece and layer
                long slack = (long) config.numHiddenLayers() * 16 * 2 * ShardedWeights.ALIGN;
                assertTrue(held >= frozen / ranks && held <= frozen / ranks + slack,
                        "rank " + world.rank() + " holds " + held + " bytes of " + frozen + " frozen");
                assertEquals(Device.META, m.linear("model.layers.1.mlp.up_proj").quantizedWeight().codes().device(),
                        "a sharded weight outside a forward is a placeholder");
                assertSame(expected, step(m, trained, batch), "rank " + world.rank() + " of " + ranks + ", first step");
                assertSame(expected, step(m, trained, batch), "rank " + world.rank() + " of " + ranks + ", second step");
                w.gatherWhole();
                Map<String, double[]> gathered = layerBytes(m);
                assertEquals(wholeBytes.keySet(), gathered.keySet());
                wholeBytes.forEach((k, v) -> assertArrayEquals(v, gathered.get(k), "rank " + world.rank() + ": " + k + " gathered whole"));
                assertSame(expected, step(m, trained, batch), "rank " + world.rank() + " of " + ranks + ", whole again");
                return "";
            }
        });
        assertEquals(ranks, problems.size());
    }

    @Test
    void aFullFineTuneHasNothingFrozenToShard() throws Exception {
        Gemma3Config config = config();
        List<Boolean> sharded = new InProcessWorld(2, Duration.ofSeconds(60)).run(world -> {
            try (Scope s = Scope.open("full", MemoryCategory.WEIGHTS)) {
                Gemma3Model m = Gemma3Model.random(config, Device.CPU, DType.F32, 3);
                m.namedParameters().values().forEach(p -> p.tensor().requiresGrad(true));
                return m.shardLayerWeights(world).isPresent();
            }
        });
        assertEquals(List.of(false, false), sharded);
    }

    /**
     * A model loaded into host memory (weight offload, as {@code --offload_param cpu} loads it) gives its layers to ZeRO
     * stage 3 with the parts in pinned host memory: each rank keeps 1/N of the frozen bytes there (and nothing whole),
     * every gather reads its part through the device staging, and the step equals one device's bit for bit.
     */
    @Test
    void anOffloadedModelShardsIntoHostMemoryAndStepsAsOneDevice() throws Exception {
        long seed = Seeds.seed();
        Gemma3Config config = config();
        List<float[]> expected;
        try (Scope s = Scope.open("one device", MemoryCategory.WEIGHTS)) {
            List<Tensor> trained = new ArrayList<>();
            Gemma3Model m = qlora(config, seed, trained);
            expected = step(m, trained, batch(config, seed));
        }
        new InProcessWorld(2, Duration.ofSeconds(60)).run(world -> {
            try (Scope s = Scope.open("rank " + world.rank(), MemoryCategory.WEIGHTS)) {
                List<Tensor> trained = new ArrayList<>();
                Gemma3Model m = qlora(config, seed, trained);
                m.offloadLayerWeights();
                ShardedWeights w = m.shardLayerWeights(world, List.of(), dev.jtune.engine.Placement.HOST_MAPPED).orElseThrow();
                assertTrue(m.offloadedWeights().isEmpty(), "the host store gave its layers over");
                assertEquals(Device.META, m.linear("model.layers.0.mlp.up_proj").quantizedWeight().codes().device(),
                        "a sharded weight outside a forward is a placeholder, not the host value");
                assertEquals(dev.jtune.engine.Placement.HOST_MAPPED, w.partsAt());
                assertSame(expected, step(m, trained, batch(config, seed)), "rank " + world.rank() + ", parts in host memory");
                return null;
            }
        });
    }

    /** A rank whose base is not quantized (the other's is) stops both at sharding, naming the unit and category that differ. */
    @Test
    void ranksWithDifferentModelsFailAtShardingSayingWhatDiffers() throws Exception {
        Gemma3Config config = config();
        List<String> messages = new InProcessWorld(2, Duration.ofSeconds(60)).run(world -> {
            try (Scope s = Scope.open("rank " + world.rank(), MemoryCategory.WEIGHTS)) {
                Gemma3Model m = Gemma3Model.random(config, Device.CPU, DType.F32, 9);
                if (world.rank() == 0) {
                    m.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
                }
                return assertThrows(dev.jtune.engine.dist.CollectiveException.class, () -> m.shardLayerWeights(world)).getMessage();
            }
        });
        for (String m : messages) {
            System.out.println(m);
            assertTrue(m.contains("the ranks' models differ") && m.contains("unit 0"), m);
        }
    }

    @Test
    void trainingWithoutRecomputationIsRefused() throws Exception {
        Gemma3Config config = config();
        new InProcessWorld(2, Duration.ofSeconds(60)).run(world -> {
            try (Scope s = Scope.open("refuse", MemoryCategory.WEIGHTS)) {
                List<Tensor> trained = new ArrayList<>();
                Gemma3Model m = qlora(config, 5, trained);
                m.shardLayerWeights(world).orElseThrow();
                Tensor[] batch = batch(config, 5);
                UnsupportedOpException e = assertThrows(UnsupportedOpException.class,
                        () -> m.loss(batch[0], batch[1], Gemma3Model.Options.defaults()));
                assertTrue(e.getMessage().contains("sharded") && e.getMessage().contains("gradient checkpointing"), e.getMessage());
                return null;
            }
        });
    }
}

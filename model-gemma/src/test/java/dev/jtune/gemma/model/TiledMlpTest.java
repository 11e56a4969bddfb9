package dev.jtune.gemma.model;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.gemma.lora.DropoutState;
import dev.jtune.gemma.lora.Lora;
import dev.jtune.gemma.lora.LoraAdapter;
import dev.jtune.gemma.lora.LoraConfig;
import dev.jtune.gemma.model.Gemma3Model.Checkpointing;
import dev.jtune.gemma.model.Gemma3Model.MlpTiling;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tiled MLP half against the untiled one on gemma3-tiny in fp32 on the cpu (2 sequences of 9 tokens, 18 rows in
 * tiles of 5, 5, 5 and 3), LoRA r4 with dropout 0.3 on every projection, and full fine-tuning, under each
 * checkpointing mode. Every row is computed by the same ops either way, so the loss and the gradient of everything
 * outside the MLP halves (attention, norms before them, the embedding) are the same bits; the MLP halves' own
 * parameters (gate, up, down and their adapters, the pre- and post-FFN norms) are summed over rows tile by tile.
 *
 * <p>Their bound, per element (the error analysis of {@code TiledCheckpointTest}): the untiled gradient is one sum
 * of per-row terms in double rounded once to fp32; tiled, k contributions each rounded to fp32 and added in fp32 (the
 * first copied). With u = 2^-24, C = sum of |contribution| over the k tiles and A = sum over rows of |term| (each
 * double sum off by at most n 2^-53 A): |tiled - untiled| <= (k - 1) u (1 + u)^k C + 2u C / (1 - u) + 3 n 2^-53 A,
 * within (k + 2) u C + 4 n 2^-53 (1 + u) A. A is measured with one-row tiles, where each contribution of a weight, an
 * adapter factor or a norm weight is one row's single term rounded once.
 */
class TiledMlpTest {
    private static final int B = 2;
    private static final int T = 9;
    private static final int TILES = 4;

    private final Random rnd = Seeds.random();

    private enum Training { LORA, FULL }

    /** One run's loss, each trained parameter's gradient, and (with sinks) each MLP parameter's sum of |contribution|. */
    private record Run(double loss, Map<String, double[]> gradients, Map<String, double[]> sumAbs) {
    }

    @Test
    void loraAndFullFineTuningMatchTheUntiledMlpInEveryCheckpointingMode() {
        long seed = rnd.nextLong();
        for (Training training : Training.values()) {
            Run untiled = run(training, seed, Checkpointing.NONE, MlpTiling.NONE, false);
            Run contributions = run(training, seed, Checkpointing.NONE, MlpTiling.shards(TILES), true);
            Run rows = run(training, seed, Checkpointing.NONE, MlpTiling.shards(B * T), true);
            int mlp = 0;
            for (Checkpointing c : Checkpointing.values()) {
                Run tiled = run(training, seed, c, MlpTiling.shards(TILES), false);
                String what = training + ", " + c + " checkpointing (seed " + seed + ")";
                assertEquals(Double.doubleToRawLongBits(untiled.loss()), Double.doubleToRawLongBits(tiled.loss()), "loss, " + what);
                assertEquals(untiled.gradients().keySet(), tiled.gradients().keySet());
                mlp = 0;
                for (String name : untiled.gradients().keySet()) {
                    double[] a = untiled.gradients().get(name);
                    double[] b = tiled.gradients().get(name);
                    if (!isMlpHalf(name)) {
                        for (int i = 0; i < a.length; i++) {
                            assertEquals(Double.doubleToRawLongBits(a[i]), Double.doubleToRawLongBits(b[i]),
                                    name + "[" + i + "]: " + a[i] + " vs " + b[i] + ", " + what);
                        }
                        continue;
                    }
                    mlp++;
                    double[] sum = contributions.sumAbs().get(name);
                    double[] terms = rows.sumAbs().get(name);
                    double u = 0x1p-24;
                    for (int i = 0; i < a.length; i++) {
                        double bound = (TILES + 2) * u * sum[i] + 4 * B * T * 0x1p-53 * (1 + u) * terms[i];
                        assertTrue(Math.abs(a[i] - b[i]) <= bound, name + "[" + i + "]: |" + a[i] + " - " + b[i] + "| > " + bound + ", " + what);
                    }
                }
            }
            assertEquals(training == Training.LORA ? 6 * 6 : 6 * 5, mlp, training + ": the MLP halves' parameters were compared");
        }
    }

    /** Whether a parameter (HF or adapter name) belongs to a layer's MLP half. */
    private static boolean isMlpHalf(String name) {
        return name.contains(".mlp.") || name.contains("feedforward_layernorm");
    }

    /**
     * gemma3-tiny's loss and backward on fixed random tokens; LoRA (adapters' B random so every path carries gradient,
     * dropout on) or every weight trained. With {@code sinks}, the MLP halves' contributions are summed in absolute
     * value instead of accumulated.
     */
    private static Run run(Training training, long seed, Checkpointing checkpointing, MlpTiling tiling, boolean sinks) {
        try (Scope scope = Scope.open("tiled mlp")) {
            Gemma3Model model = Gemma3Model.load(fixture(), Device.CPU, DType.F32);
            Map<String, Tensor> trained = new LinkedHashMap<>();
            if (training == Training.LORA) {
                DropoutState dropout = new DropoutState(0.3);
                Map<String, LoraAdapter> adapters = Lora.attach(model, new LoraConfig(4, 8, 0.3, LoraConfig.ALL_LINEAR, java.util.List.of(), -1),
                        DType.F32, 3, dropout);
                long s = seed;
                for (LoraAdapter a : adapters.values()) {
                    Ops.copyInto(Tensor.randn(a.b().shape(), DType.F32, Device.CPU, s++), a.b());
                    trained.put(a.module() + ".lora_A", a.a());
                    trained.put(a.module() + ".lora_B", a.b());
                }
                dropout.train(seed);
            } else {
                for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
                    trained.put(e.getKey(), e.getValue().tensor().requiresGrad(true));
                }
            }
            Map<String, double[]> sumAbs = new LinkedHashMap<>();
            if (sinks) {
                trained.forEach((name, p) -> {
                    if (isMlpHalf(name)) {
                        double[] acc = new double[(int) p.numel()];
                        sumAbs.put(name, acc);
                        Autograd.streamGradient(p, (c, owned) -> {
                            double[] v = c.toDoubleArray();
                            for (int i = 0; i < v.length; i++) {
                                acc[i] += Math.abs(v[i]);
                            }
                        });
                    }
                });
            }
            Random tokens = new Random(seed);
            int[] ids = new int[B * T];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = 1 + tokens.nextInt(511);
            }
            Tensor t = Tensor.fromArray(ids, Shape.of(B, T), DType.I32, Device.CPU);
            Tensor loss = model.loss(t, t, Gemma3Model.Options.defaults().withCheckpointing(checkpointing).withMlpTiling(tiling));
            double value = loss.item();
            loss.backward();
            Map<String, double[]> gradients = new LinkedHashMap<>();
            if (!sinks) {
                trained.forEach((name, p) -> gradients.put(name, p.grad().toDoubleArray()));
            }
            return new Run(value, gradients, sumAbs);
        }
    }

    private static Path fixture() {
        try {
            return Path.of(TiledMlpTest.class.getResource("/gemma3-tiny").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }
}

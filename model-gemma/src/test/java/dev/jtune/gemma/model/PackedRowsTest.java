package dev.jtune.gemma.model;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.gemma.model.Gemma3Model.Checkpointing;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Packing on gemma3-tiny (6 layers, 5 of them sliding with a window of 16, one global) in fp32 on the cpu, full
 * fine-tuning: two rows of 40 tokens, the first filled with random-length samples, the second with some and then
 * padding, laid out by a {@link TokenLayout} (positions restarting at 0, each sample's first label ignored). The
 * summed token loss and every parameter's gradient equal the sums over the samples run alone, each a batch of one at
 * positions 0..n-1; with and without checkpointing (the mask and positions ride in the recomputation).
 *
 * <p>Error analysis. The cpu computes every op in double and rounds each output once to fp32. Per token the packed
 * and the separate forward and backward are the same computation: row-wise ops see the same row, attention sees the
 * same visible keys (a key of another sample or of padding is masked, contributing an exact 0 that leaves a double
 * sum unchanged), RoPE the same positions; padding's loss gradient is 0 and so is everything it sends back. They
 * differ only where an op sums over tokens into a parameter's gradient (a linear weight's dW = dY^T X, a norm's
 * weight, the embedding's scatter and the tied LM head): packed, one double sum over all tokens rounded once to
 * fp32; separately, one per sample, each rounded once, which the test adds in double. Each gradient contribution
 * (one per use of a parameter, taken with a gradient sink and summed in double here) is therefore off by at most
 * u |c| (u = 2^-24) from its double sum on either side, plus the double sums' own n 2^-53 A (n <= 80 tokens, A the
 * sum of the per-token terms' magnitudes), which stays below u |c| unless the terms cancel by more than 2^29 / n;
 * so per element |packed - sum of separate| <= 2u (C_packed + C_separate), with C the sums of |contribution|. The
 * loss is a sum of positive token losses (no cancellation): |packed - sum| <= 2u (|packed| + sum |separate|).
 */
class PackedRowsTest {
    private static final int B = 2;
    private static final int T = 40;
    private static final double U = 0x1p-24;

    /** A run's summed loss, and per parameter its summed gradient contributions and their summed magnitudes. */
    private record Run(double loss, Map<String, double[]> gradient, Map<String, double[]> magnitude) {
        void add(Run o) {
            o.gradient.forEach((name, g) -> {
                double[] mine = gradient.computeIfAbsent(name, n -> new double[g.length]);
                double[] abs = magnitude.computeIfAbsent(name, n -> new double[g.length]);
                double[] theirs = o.magnitude.get(name);
                for (int i = 0; i < g.length; i++) {
                    mine[i] += g[i];
                    abs[i] += theirs[i];
                }
            });
        }
    }

    @Test
    void aPackedRowHasTheLossAndGradientsOfItsSamplesRunAlone() {
        long seed = Seeds.seed();
        System.out.println("PackedRowsTest seed " + seed);
        Random rnd = new Random(seed);
        List<List<int[][]>> rows = new ArrayList<>(); // per row, its samples as {ids, labels}
        for (int r = 0; r < B; r++) {
            int room = r == 0 ? T : T - 1 - rnd.nextInt(8);
            List<int[][]> samples = new ArrayList<>();
            while (room >= 2) {
                int n = Math.min(room, 2 + rnd.nextInt(23)); // some samples longer than the window of 16
                samples.add(sample(rnd, n));
                room -= n;
            }
            rows.add(samples);
        }
        for (Checkpointing c : new Checkpointing[] {Checkpointing.NONE, Checkpointing.HALVES}) {
            Run packed = packed(rows, c);
            Run separate = new Run(0, new LinkedHashMap<>(), new LinkedHashMap<>());
            double lossMagnitude = Math.abs(packed.loss());
            double lossSum = 0;
            for (List<int[][]> row : rows) {
                for (int[][] s : row) {
                    Run alone = alone(s, c);
                    separate.add(alone);
                    lossSum += alone.loss();
                    lossMagnitude += Math.abs(alone.loss());
                }
            }
            String what = c + " checkpointing, rows " + describe(rows) + " (seed " + seed + ")";
            assertTrue(Math.abs(packed.loss() - lossSum) <= 2 * U * lossMagnitude,
                    "loss " + packed.loss() + " vs " + lossSum + ", " + what);
            assertEquals(separate.gradient().keySet(), packed.gradient().keySet());
            int compared = 0;
            double worst = 0;
            for (String name : packed.gradient().keySet()) {
                double[] p = packed.gradient().get(name);
                double[] s = separate.gradient().get(name);
                double[] cp = packed.magnitude().get(name);
                double[] cs = separate.magnitude().get(name);
                for (int i = 0; i < p.length; i++) {
                    double bound = 2 * U * (cp[i] + cs[i]);
                    assertTrue(Math.abs(p[i] - s[i]) <= bound, name + "[" + i + "]: " + p[i] + " vs " + s[i] + " (bound " + bound + "), " + what);
                    worst = Math.max(worst, bound > 0 ? Math.abs(p[i] - s[i]) / bound : 0);
                }
                compared++;
            }
            System.out.printf("PackedRowsTest %s: loss %.6f vs %.6f; worst gradient difference %.3g of its bound%n", c, packed.loss(),
                    lossSum, worst);
            assertEquals(6 * 13 + 2, compared, "every parameter: 13 per layer, the embedding and the final norm");
        }
    }

    /** A sample of n random tokens with random labels, about a fifth ignored. */
    private static int[][] sample(Random rnd, int n) {
        int[] ids = new int[n];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = 1 + rnd.nextInt(511);
            labels[i] = rnd.nextInt(5) == 0 ? -100 : 1 + rnd.nextInt(511);
        }
        return new int[][] {ids, labels};
    }

    /** The rows packed: each sample's first label ignored, positions from 0, padding (id 0, segment -1) to T. */
    private static Run packed(List<List<int[][]>> rows, Checkpointing c) {
        int[] ids = new int[B * T];
        int[] labels = new int[B * T];
        int[] segments = new int[B * T];
        int[] positions = new int[B * T];
        Arrays.fill(labels, -100);
        Arrays.fill(segments, -1);
        for (int r = 0; r < B; r++) {
            int at = r * T;
            for (int s = 0; s < rows.get(r).size(); s++) {
                int[][] sample = rows.get(r).get(s);
                int n = sample[0].length;
                System.arraycopy(sample[0], 0, ids, at, n);
                System.arraycopy(sample[1], 0, labels, at, n);
                labels[at] = -100; // the previous sample's last token predicts nothing
                Arrays.fill(segments, at, at + n, s);
                for (int i = 0; i < n; i++) {
                    positions[at + i] = i;
                }
                at += n;
            }
        }
        return run(ids, labels, Shape.of(B, T), new int[][] {segments, positions}, c);
    }

    private static Run alone(int[][] sample, Checkpointing c) {
        return run(sample[0], sample[1], Shape.of(1, sample[0].length), null, c);
    }

    /**
     * The summed token loss (normaliser 1) and each parameter's gradient contributions, full fine-tuning; packed by
     * {@code layout} = {segments, positions} when not null.
     */
    private static Run run(int[] ids, int[] labels, Shape shape, int[][] layout, Checkpointing c) {
        try (Scope scope = Scope.open("packed rows")) {
            Gemma3Model model = Gemma3Model.load(fixture(), Device.CPU, DType.F32);
            Map<String, double[]> gradient = new LinkedHashMap<>();
            Map<String, double[]> magnitude = new LinkedHashMap<>();
            for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
                Tensor p = e.getValue().tensor().requiresGrad(true);
                double[] sum = new double[(int) p.numel()];
                double[] abs = new double[(int) p.numel()];
                gradient.put(e.getKey(), sum);
                magnitude.put(e.getKey(), abs);
                Autograd.streamGradient(p, (contribution, owned) -> {
                    double[] v = contribution.toDoubleArray();
                    for (int i = 0; i < v.length; i++) {
                        sum[i] += v[i];
                        abs[i] += Math.abs(v[i]);
                    }
                });
            }
            TokenLayout packing = layout == null ? null : TokenLayout.packed(Tensor.fromArray(layout[0], shape, DType.I32, Device.CPU),
                    Tensor.fromArray(layout[1], shape, DType.I32, Device.CPU));
            Tensor loss = model.loss(Tensor.fromArray(ids, shape, DType.I32, Device.CPU), Tensor.fromArray(labels, shape, DType.I32, Device.CPU),
                    packing, Gemma3Model.Options.defaults().withCheckpointing(c), 1);
            double value = loss.item();
            loss.backward();
            return new Run(value, gradient, magnitude);
        }
    }

    private static String describe(List<List<int[][]>> rows) {
        return rows.stream().map(r -> r.stream().map(s -> Integer.toString(s[0].length)).toList().toString()).toList().toString();
    }

    private static Path fixture() {
        try {
            return Path.of(PackedRowsTest.class.getResource("/gemma3-tiny").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }
}

package dev.jtune.engine.optim;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Random;
import java.util.SequencedMap;

import static dev.jtune.engine.optim.HostOffloadAdamWTest.CONFIG;
import static dev.jtune.engine.optim.HostOffloadAdamWTest.bits;
import static dev.jtune.engine.optim.HostOffloadAdamWTest.params;
import static dev.jtune.engine.optim.HostOffloadAdamWTest.randomValues;
import static dev.jtune.engine.optim.HostOffloadAdamWTest.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The host-offloaded AdamW with its gradients streamed to the host ({@link HostOffloadAdamW.Gradients#STREAMED}) on
 * the cpu backend, against the same optimizer with a device gradient buffer: over steps of several micro-batches and a
 * parameter used twice per backward, sums of fp32 contributions are the same fp32 additions in the same order, so the
 * two agree bit for bit; a parameter with no gradient in a step is updated with zero, not last step's; clipping and
 * the norm run on the host; on meta no gradient memory is left on the device.
 */
class StreamedGradientsTest {
    private static final long BUCKET = 200;

    private static HostOffloadAdamW offload(SequencedMap<String, Tensor> params, HostOffloadAdamW.Gradients gradients) {
        return HostOffloadAdamW.builder(params, CONFIG).bucketElements(BUCKET).gradients(gradients).build();
    }

    /**
     * One micro-batch: grad(p_i) += g_i + h_i for the parameters in {@code used}, from one backward in which each is used
     * twice (sum(p * g) + sum(p * h)): two contributions per parameter.
     */
    private static void microBatch(SequencedMap<String, Tensor> params, double[][] g, double[][] h, List<Integer> used) {
        try (Scope s = Scope.open("micro-batch")) {
            Tensor loss = null;
            int i = 0;
            for (Tensor p : params.values()) {
                if (used.contains(i)) {
                    Tensor a = p.mul(Tensor.fromArray(g[i], p.shape(), p.dtype(), p.device())).reshape(-1).sum(0);
                    Tensor b = p.mul(Tensor.fromArray(h[i], p.shape(), p.dtype(), p.device())).reshape(-1).sum(0);
                    Tensor both = a.add(b);
                    loss = loss == null ? both : loss.add(both);
                }
                i++;
            }
            loss.backward();
        }
    }

    /** Steps and clears both optimizers; the streamed one's state and weights must equal the buffered one's bit for bit. */
    private static void stepBothAndCompare(HostOffloadAdamW buffered, HostOffloadAdamW streamed, SequencedMap<String, Tensor> a,
                                           SequencedMap<String, Tensor> b, int t) {
        try (Scope s = Scope.open("step")) {
            buffered.step();
            streamed.step();
            buffered.zeroGrad();
            streamed.zeroGrad();
        }
        assertEquals(bits(buffered.state()), bits(streamed.state()), "the state after step " + t);
        HostOffloadAdamWTest.assertWeightsEqual(values(a), values(b), "the weights after step " + t);
    }

    @Test
    void f32AccumulationEqualsTheDeviceBufferBitForBit() {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        try (Scope scope = Scope.open("streamed")) {
            SequencedMap<String, Tensor> a = params(init, DType.F32, Device.CPU);
            SequencedMap<String, Tensor> b = params(init, DType.F32, Device.CPU);
            try (HostOffloadAdamW buffered = offload(a, HostOffloadAdamW.Gradients.DEVICE_BUFFER);
                 HostOffloadAdamW streamed = offload(b, HostOffloadAdamW.Gradients.STREAMED)) {
                assertTrue(streamed.gradientBuffers().isEmpty(), "no gradient buffer");
                for (int t = 1; t <= 4; t++) {
                    // step 3 leaves parameter 1 without a gradient: it must be updated with zero, not step 2's
                    List<Integer> used = t == 3 ? List.of(0, 2, 3) : List.of(0, 1, 2, 3);
                    for (int micro = 0; micro < 3; micro++) {
                        double[][] g = randomValues(rnd, 1.0);
                        double[][] h = randomValues(rnd, 1.0);
                        microBatch(a, g, h, used);
                        microBatch(b, g, h, used);
                    }
                    for (Tensor p : b.values()) {
                        assertEquals(null, p.grad(), "a streamed parameter holds no gradient on the device");
                    }
                    try (Scope s = Scope.open("step")) {
                        double expected = GradClip.flatNorm(buffered.gradientBuffers()).value();
                        double norm = streamed.clipHeldGradients(0).orElseThrow().value();
                        // both sum the same fp32 squares, in double here and in the flat kernel's order there
                        assertEquals(expected, norm, 1e-6 * expected, "the global norm, step " + t);
                    }
                    stepBothAndCompare(buffered, streamed, a, b, t);
                }
            }
        }
    }

    /** One contribution per parameter and step: bf16 gradients widen exactly, so bf16 runs agree bit for bit too. */
    @Test
    void bf16SingleContributionsEqualTheDeviceBuffer() {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        try (Scope scope = Scope.open("streamed bf16")) {
            SequencedMap<String, Tensor> a = params(init, DType.BF16, Device.CPU);
            SequencedMap<String, Tensor> b = params(init, DType.BF16, Device.CPU);
            try (HostOffloadAdamW buffered = offload(a, HostOffloadAdamW.Gradients.DEVICE_BUFFER);
                 HostOffloadAdamW streamed = offload(b, HostOffloadAdamW.Gradients.STREAMED)) {
                for (int t = 1; t <= 3; t++) {
                    double[][] g = randomValues(rnd, 1.0);
                    for (SequencedMap<String, Tensor> p : List.of(a, b)) {
                        try (Scope s = Scope.open("backward")) {
                            int i = 0;
                            for (Tensor x : p.values()) {
                                x.mul(Tensor.fromArray(g[i++], x.shape(), x.dtype(), x.device())).reshape(-1).sum(0).backward();
                            }
                        }
                    }
                    stepBothAndCompare(buffered, streamed, a, b, t);
                }
            }
        }
    }

    /**
     * Clipping on the host: the factor min(1, max / (norm + 1e-6)) scales the gradients in the update, as clipping the
     * device buffer does before it. The two round differently (the buffer's gradients are scaled and rounded to fp32
     * first, the host multiplies inside the update; the factor's last bit may differ), so they agree within a few fp32
     * ulps of the state's magnitude after one step.
     */
    @Test
    void clippingOnTheHostMatchesClippingTheDeviceBuffer() {
        Random rnd = Seeds.random();
        double[][] init = randomValues(rnd, 0.1);
        try (Scope scope = Scope.open("clipped")) {
            SequencedMap<String, Tensor> a = params(init, DType.F32, Device.CPU);
            SequencedMap<String, Tensor> b = params(init, DType.F32, Device.CPU);
            try (HostOffloadAdamW buffered = offload(a, HostOffloadAdamW.Gradients.DEVICE_BUFFER);
                 HostOffloadAdamW streamed = offload(b, HostOffloadAdamW.Gradients.STREAMED)) {
                double[][] g = randomValues(rnd, 1.0);
                double[][] h = randomValues(rnd, 1.0);
                microBatch(a, g, h, List.of(0, 1, 2, 3));
                microBatch(b, g, h, List.of(0, 1, 2, 3));
                try (Scope s = Scope.open("step")) {
                    double max = 0.5;
                    double expected = GradClip.clipFlatGradNorm(buffered.gradientBuffers(), max).value();
                    double norm = streamed.clipHeldGradients(max).orElseThrow().value();
                    assertTrue(norm > 10 * max, "the gradients are clipped: norm " + norm);
                    assertEquals(expected, norm, 1e-6 * expected, "the norm before clipping");
                    buffered.step();
                    streamed.step();
                }
                var x = buffered.state();
                var y = streamed.state();
                for (String name : x.keySet()) {
                    float[] u = x.get(name).toFloatArray();
                    float[] w = y.get(name).toFloatArray();
                    for (int i = 0; i < u.length; i++) {
                        double tolerance = 8 * Math.ulp(Math.max(Math.abs(u[i]), Math.abs(w[i]))) + 1e-6 * CONFIG.lr();
                        if (!(Math.abs(u[i] - w[i]) <= tolerance)) {
                            fail(name + "[" + i + "]: " + u[i] + " against " + w[i] + " (tolerance " + tolerance + ")");
                        }
                    }
                }
            }
        }
    }

    /**
     * A tied embedding (looked up, then used densely as an output projection, as Gemma's LM head uses it): the lookup's
     * contribution streams as rows ({@link Autograd.RowGradientSink}), and over steps of several micro-batches the
     * optimizer equals the device buffer's bit for bit (distinct ids: each row's value is the one the dense scatter
     * writes, and adding the dense form's zeros elsewhere changes nothing). The other parameter streams densely.
     */
    @Test
    void aTiedEmbeddingsLookupStreamsAsRowsAndEqualsTheDeviceBuffer() {
        Random rnd = Seeds.random();
        int vocab = 50;
        int dim = 8;
        List<long[]> shapes = List.of(new long[] {vocab, dim}, new long[] {dim, dim});
        double[][] init = randomValues(shapes, rnd, 0.1);
        try (Scope scope = Scope.open("tied")) {
            SequencedMap<String, Tensor> a = params(shapes, init, DType.F32, Device.CPU);
            SequencedMap<String, Tensor> b = params(shapes, init, DType.F32, Device.CPU);
            try (HostOffloadAdamW buffered = offload(a, HostOffloadAdamW.Gradients.DEVICE_BUFFER);
                 HostOffloadAdamW streamed = offload(b, HostOffloadAdamW.Gradients.STREAMED)) {
                for (int t = 1; t <= 3; t++) {
                    for (int micro = 0; micro < 2; micro++) {
                        List<Integer> order = new java.util.ArrayList<>(java.util.stream.IntStream.range(0, vocab).boxed().toList());
                        java.util.Collections.shuffle(order, rnd);
                        int[] ids = order.subList(0, 12).stream().mapToInt(Integer::intValue).toArray();
                        double[][] weights = {rnd.doubles(12L * vocab).toArray()};
                        for (SequencedMap<String, Tensor> p : List.of(a, b)) {
                            try (Scope s = Scope.open("micro-batch")) {
                                Tensor table = p.firstEntry().getValue();
                                Tensor w = p.lastEntry().getValue();
                                Tensor h = dev.jtune.engine.ops.Embedding.lookup(table, Tensor.fromArray(ids, Shape.of(12), DType.I32, Device.CPU));
                                Tensor logits = h.matmul(w).matmul(table.transpose(0, 1));
                                logits.mul(Tensor.fromArray(weights[0], Shape.of(12, vocab), DType.F32, Device.CPU)).reshape(-1).sum(0).backward();
                            }
                        }
                    }
                    try (Scope s = Scope.open("step")) {
                        streamed.clipHeldGradients(0);
                    }
                    stepBothAndCompare(buffered, streamed, a, b, t);
                }
            }
        }
    }

    /**
     * On meta, with a table far larger than a batch's rows: the lookup's backward never allocates the dense [V, D]
     * gradient (the peak stays below it); the device holds only copies of the rows.
     */
    @Test
    void aStreamedLookupNeverMakesTheDenseTableGradient() {
        MetaBackend meta = MetaBackend.instance();
        try (Scope scope = Scope.open("meta", MemoryCategory.WEIGHTS)) {
            SequencedMap<String, Tensor> p = new LinkedHashMap<>();
            Tensor table = Tensor.zeros(Shape.of(262_144, 640), DType.BF16, Device.META).requiresGrad(true);
            p.put("embed", table);
            try (HostOffloadAdamW opt = HostOffloadAdamW.builder(p, CONFIG).gradients(HostOffloadAdamW.Gradients.STREAMED).build();
                 Scope step = Scope.open("step")) {
                Tensor ids = Tensor.zeros(Shape.of(8192), DType.I32, Device.META);
                Tensor h = dev.jtune.engine.ops.Embedding.lookup(table, ids);
                long before = meta.memoryStats().allocated();
                meta.resetPeaks();
                h.reshape(-1).sum(0).backward();
                long peak = meta.memoryStats().peakAllocated() - before;
                assertTrue(peak < table.numel() * 2 / 4, "the backward's device peak above the forward's memory: " + peak
                        + " bytes, against the dense gradient's " + table.numel() * 2);
                assertEquals(null, table.grad());
                opt.clipHeldGradients(1.0);
                opt.step();
            }
        }
    }

    /** The delayed step reads one step's gradients while backward streams the next's: refused with streaming, for now. */
    @Test
    void theDelayedStepKeepsTheDeviceBuffer() {
        try (Scope scope = Scope.open("refused")) {
            SequencedMap<String, Tensor> p = params(randomValues(new Random(1), 0.1), DType.F32, Device.CPU);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HostOffloadAdamW.builder(p, CONFIG)
                    .gradients(HostOffloadAdamW.Gradients.STREAMED).schedule(HostOffloadAdamW.Schedule.DELAYED).build());
            assertTrue(e.getMessage().contains("delayed"), e.getMessage());
        }
    }

    /** On meta: streaming leaves no gradient memory on the device; the host holds the staging copy and the fp32 sums. */
    @Test
    void noGradientMemoryStaysOnTheDevice() {
        MetaBackend meta = MetaBackend.instance();
        try (Scope scope = Scope.open("meta", MemoryCategory.WEIGHTS)) {
            SequencedMap<String, Tensor> p = new LinkedHashMap<>();
            p.put("w", Tensor.zeros(Shape.of(1000, 300), DType.BF16, Device.META).requiresGrad(true));
            p.put("b", Tensor.zeros(Shape.of(1000), DType.BF16, Device.META).requiresGrad(true));
            MemoryStats before = meta.memoryStats();
            try (HostOffloadAdamW opt = HostOffloadAdamW.builder(p, CONFIG).gradients(HostOffloadAdamW.Gradients.STREAMED).build()) {
                MemoryStats after = meta.memoryStats();
                long flat = 300_032 + 1024;
                assertEquals(before.allocated(MemoryCategory.GRADIENTS), after.allocated(MemoryCategory.GRADIENTS), "no device gradient buffer");
                assertEquals(before.host().allocated(MemoryCategory.GRADIENTS) + 2 * flat + 4 * flat, after.host().allocated(MemoryCategory.GRADIENTS),
                        "the bf16 staging copy and the fp32 sums on the host");
                try (Scope step = Scope.open("step")) {
                    Tensor w = p.get("w");
                    w.mul(Tensor.zeros(w.shape(), DType.BF16, Device.META)).reshape(-1).sum(0).backward();
                    assertEquals(null, w.grad());
                    assertEquals(before.allocated(MemoryCategory.GRADIENTS), meta.memoryStats().allocated(MemoryCategory.GRADIENTS));
                    opt.clipHeldGradients(1.0);
                    opt.step();
                    opt.zeroGrad();
                }
                assertEquals(1, opt.steps());
            }
        }
    }

    /**
     * The engine's side: a streamed leaf's contributions reach its sink, one per use, summing to the gradient backward
     * would have accumulated, each owned by the sink (fresh gradients nothing else refers to).
     */
    @Test
    void aSinkReceivesEveryContributionOfALeaf() {
        Random rnd = Seeds.random();
        try (Scope scope = Scope.open("sink")) {
            double[] x = rnd.doubles(12).toArray();
            double[] u = rnd.doubles(12).toArray();
            double[] v = rnd.doubles(12).toArray();
            Tensor plain = Tensor.fromArray(x, Shape.of(3, 4), DType.F32, Device.CPU).requiresGrad(true);
            Tensor streamed = Tensor.fromArray(x, Shape.of(3, 4), DType.F32, Device.CPU).requiresGrad(true);
            java.util.List<float[]> received = new java.util.ArrayList<>();
            java.util.List<Boolean> owned = new java.util.ArrayList<>();
            Autograd.streamGradient(streamed, (c, own) -> {
                received.add(c.toFloatArray());
                owned.add(own);
                if (own) {
                    c.close();
                }
            });
            for (Tensor p : List.of(plain, streamed)) {
                Tensor cu = Tensor.fromArray(u, Shape.of(3, 4), DType.F32, Device.CPU);
                Tensor cv = Tensor.fromArray(v, Shape.of(3, 4), DType.F32, Device.CPU);
                p.mul(cu).sum(1).sum(0).add(p.mul(p).mul(cv).sum(1).sum(0)).backward();
            }
            assertEquals(null, streamed.grad());
            assertEquals(3, received.size(), "one contribution per use: p * u once, p * p twice");
            assertEquals(List.of(true, true, true), owned);
            float[] expected = plain.grad().toFloatArray();
            for (int i = 0; i < expected.length; i++) {
                // backward accumulated the same contributions with the same fp32 additions, in the same order
                float sum = received.get(0)[i] + received.get(1)[i] + received.get(2)[i];
                assertEquals(expected[i], sum, "element " + i);
            }
        }
    }
}

package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.Linear;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.testing.SystemProperties;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * QLoRA: a base held in NF4 and dequantized before every product computes exactly what a dense model holding the
 * dequantized weights computes — loss and LoRA gradients — with or without checkpointing.
 */
class QloraTest {
    private static List<double[]> run(boolean quantized, Gemma3Model.Checkpointing checkpoint, double[] lossOut) {
        return run(quantized, checkpoint, lossOut, false);
    }

    /** {@code fused}: with -Djtune.fusedProjections=true (q/k/v and gate/up as one product each) from loading to backward. */
    private static List<double[]> run(boolean quantized, Gemma3Model.Checkpointing checkpoint, double[] lossOut, boolean fused) {
        return SystemProperties.with("jtune.fusedProjections", Boolean.toString(fused), () -> runAsSet(quantized, checkpoint, lossOut, fused));
    }

    private static List<double[]> runAsSet(boolean quantized, Gemma3Model.Checkpointing checkpoint, double[] lossOut, boolean fused) {
        try (Scope scope = Scope.open("qlora")) {
            Gemma3Model model = Gemma3Model.load(LoraGoldenTest.fixture("gemma3-tiny"), Device.CPU, DType.F32);
            if (quantized) {
                model.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
                assertEquals(42, model.quantizedLinears().size());
                double bits = model.quantizedLinears().stream().mapToDouble(l -> l.quantizedWeight().bitsPerWeight()).max().orElseThrow();
                assertTrue(bits <= 4.5, "bits per weight " + bits);
            } else {
                for (Linear l : model.linears().values()) { // the weights the NF4 model effectively uses
                    Tensor w = l.weight();
                    try (Scope tmp = Scope.open("q")) {
                        Ops.copyInto(Nf4.dequantize(Nf4.quantize(w, Nf4Scales.DOUBLE_QUANTIZED), DType.F32), w);
                    }
                }
            }
            PeftAdapter.Loaded loaded = PeftAdapter.load(LoraGoldenTest.fixture("gemma3-tiny-lora"), model, DType.F32);
            for (var group : List.of(model.layers().get(0).mlp().gateUp(), model.layers().get(0).selfAttn().qkv())) {
                assertEquals(fused && quantized, group.fused(Tensor.zeros(Shape.of(1, group.parts().get(0).inFeatures()), DType.F32, Device.CPU)),
                        "whether " + group + " runs as one product");
            }
            int[] ids = {2, 40, 41, 42, 43, 300, 301, 7, 8, 9, 10, 11};
            Tensor t = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
            Tensor loss = model.loss(t, t, Gemma3Model.Options.defaults().withCheckpointing(checkpoint));
            lossOut[0] = loss.item();
            loss.backward();
            List<double[]> grads = new ArrayList<>();
            for (Tensor p : Lora.parameters(loaded.adapters())) {
                grads.add(p.grad().toDoubleArray());
            }
            return grads;
        }
    }

    /**
     * q, k and v as one product (LinearGroup, the heads split off its output as views) and gate and up as one (GeGLU over
     * its halves) compute what the projections compute apart: loss and every LoRA gradient within fp32's reordering of
     * the same sums, plain and checkpointed.
     */
    @Test
    void fusedProjectionsComputeWhatTheProjectionsApartCompute() {
        for (Gemma3Model.Checkpointing c : new Gemma3Model.Checkpointing[] {Gemma3Model.Checkpointing.NONE, Gemma3Model.Checkpointing.LAYERS}) {
            double[] apart = new double[1];
            double[] fused = new double[1];
            List<double[]> a = run(true, c, apart, false);
            List<double[]> b = run(true, c, fused, true);
            assertEquals(apart[0], fused[0], 1e-6 * Math.abs(apart[0]), c + " loss");
            for (int i = 0; i < a.size(); i++) {
                assertArrayEquals(a.get(i), b.get(i), 1e-6, c + " LoRA gradient " + i);
            }
        }
    }

    @Test
    void nf4BaseComputesWhatItsDequantizedWeightsCompute() {
        double[] dense = new double[1];
        double[] nf4 = new double[1];
        double[] nf4Checkpointed = new double[1];
        double[] nf4Halves = new double[1];
        List<double[]> a = run(false, Gemma3Model.Checkpointing.NONE, dense);
        List<double[]> b = run(true, Gemma3Model.Checkpointing.NONE, nf4);
        List<double[]> c = run(true, Gemma3Model.Checkpointing.LAYERS, nf4Checkpointed);
        List<double[]> d = run(true, Gemma3Model.Checkpointing.HALVES, nf4Halves);
        assertEquals(dense[0], nf4[0], 1e-6 * Math.abs(dense[0]));
        assertEquals(nf4[0], nf4Checkpointed[0], 0.0);
        assertEquals(nf4[0], nf4Halves[0], 0.0);
        for (int i = 0; i < a.size(); i++) {
            assertArrayEquals(a.get(i), b.get(i), 1e-6, "LoRA gradient " + i);
            assertArrayEquals(b.get(i), c.get(i), 0.0, "LoRA gradient " + i + " with checkpointing");
            assertArrayEquals(b.get(i), d.get(i), 0.0, "LoRA gradient " + i + " with checkpointed halves");
        }
    }

    /** Attaching adapters to an NF4 base allocates the adapters and nothing else (no dequantized copies stay behind). */
    @Test
    void attachingAdaptersToAnNf4BaseAllocatesOnlyTheAdapters() {
        dev.jtune.engine.backend.Backend cpu = dev.jtune.engine.backend.Backends.get(Device.CPU);
        try (Scope scope = Scope.open("attach", dev.jtune.engine.MemoryCategory.WEIGHTS)) {
            Gemma3Model model = Gemma3Model.load(LoraGoldenTest.fixture("gemma3-tiny"), Device.CPU, DType.F32);
            model.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
            long before = cpu.memoryStats().allocated();
            var adapters = Lora.attach(model, LoraConfig.of(4, 8), DType.F32, 3);
            long adapterBytes = 0;
            for (Tensor p : Lora.parameters(adapters)) {
                adapterBytes += p.numel() * 4;
            }
            assertEquals(adapterBytes, cpu.memoryStats().allocated() - before, "bytes allocated by attaching " + adapters.size() + " adapters");
        }
    }
}

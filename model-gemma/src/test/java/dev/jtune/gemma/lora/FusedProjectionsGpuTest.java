package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.model.Gemma3Model;
import org.junit.jupiter.api.Tag;
import dev.jtune.testing.SystemProperties;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Gate and up, and q, k and v, as one product each on the GPU (QLoRA in bf16, the adapters computing in bf16 as under
 * --bf16): the loss and every LoRA gradient stay as close to the cpu's fp32 run of the same NF4 model as the projections
 * apart do (within twice their error, per tensor), checkpointed by layer as the trainer runs.
 */
@Tag("gpu")
class FusedProjectionsGpuTest {
    private record Run(double loss, List<double[]> grads) {
    }

    private static Run run(Device device, DType dtype, boolean fused) {
        return SystemProperties.with("jtune.fusedProjections", Boolean.toString(fused), () -> runWith(device, dtype, fused));
    }

    private static Run runWith(Device device, DType dtype, boolean fused) {
        try (Scope scope = Scope.open("fused projections")) {
            Gemma3Model model = Gemma3Model.load(LoraGoldenTest.fixture("gemma3-tiny"), device, dtype);
            model.quantizeLinearWeights(Nf4Scales.DOUBLE_QUANTIZED);
            PeftAdapter.Loaded loaded = PeftAdapter.load(LoraGoldenTest.fixture("gemma3-tiny-lora"), model, DType.F32);
            loaded.adapters().forEach((m, a) -> model.linear(m).attach(a.computingIn(dtype)));
            for (var group : List.of(model.layers().get(0).mlp().gateUp(), model.layers().get(0).selfAttn().qkv())) {
                assertEquals(fused, group.fused(Tensor.zeros(Shape.of(1, group.parts().get(0).inFeatures()), dtype, device)),
                        "whether " + group + " runs as one product on " + device);
            }
            int[] ids = {2, 40, 41, 42, 43, 300, 301, 7, 8, 9, 10, 11, 12, 13, 14, 15};
            Tensor t = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, device);
            Tensor loss = model.loss(t, t, Gemma3Model.Options.defaults().withCheckpointing(Gemma3Model.Checkpointing.LAYERS));
            double value = loss.item();
            loss.backward();
            List<double[]> grads = new ArrayList<>();
            for (Tensor p : Lora.parameters(loaded.adapters())) {
                grads.add(p.grad().toDoubleArray());
            }
            return new Run(value, grads);
        }
    }

    private static double maxDiff(double[] a, double[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    @Test
    void fusedProjectionsStayAsCloseToTheFp32RunAsTheProjectionsApart() {
        Run reference = run(Device.CPU, DType.F32, false);
        Run apart = run(Device.cuda(0), DType.BF16, false);
        Run fused = run(Device.cuda(0), DType.BF16, true);
        double lossApart = Math.abs(apart.loss() - reference.loss());
        double lossFused = Math.abs(fused.loss() - reference.loss());
        System.out.printf("fused projections: loss %.6f (fp32 cpu %.6f), error apart %.3g, fused %.3g%n", fused.loss(), reference.loss(),
                lossApart, lossFused);
        // a floor of bf16's half ulp at the loss (~12): both may round to the reference's neighbour
        assertTrue(lossFused <= 2 * lossApart + 0.03, "loss error fused " + lossFused + " against apart " + lossApart);
        for (int i = 0; i < reference.grads().size(); i++) {
            double eApart = maxDiff(apart.grads().get(i), reference.grads().get(i));
            double eFused = maxDiff(fused.grads().get(i), reference.grads().get(i));
            double scale = maxDiff(reference.grads().get(i), new double[reference.grads().get(i).length]);
            System.out.printf("  LoRA gradient %d: max |g| %.3g, error apart %.3g, fused %.3g%n", i, scale, eApart, eFused);
            assertTrue(eFused <= 2 * eApart + 1e-3 * scale, "LoRA gradient " + i + ": error fused " + eFused + " against apart " + eApart);
        }
    }
}

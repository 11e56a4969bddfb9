package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.testing.SystemProperties;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Gemma's q/k/v and gate/up adapters sharing their down products ({@code -Djtune.sharedLoraDown=true},
 * engine.nn.LowRankGroup) train as the adapters apart: the loss and every adapter gradient of gemma3-tiny in F32 on the
 * cpu, with every layer checkpointed (the shared product recomputed) and without.
 */
class SharedLoraDownTest {
    private static final String PROPERTY = "jtune.sharedLoraDown";

    /** The loss, then every adapter parameter's gradient. */
    private static List<double[]> run(boolean shared, Gemma3Model.Checkpointing checkpointing) {
        return SystemProperties.with(PROPERTY, Boolean.toString(shared), () -> {
            try (Scope scope = Scope.open("shared lora down")) {
                Gemma3Model model = Gemma3Model.load(LoraGoldenTest.fixture("gemma3-tiny"), Device.CPU, DType.F32);
                Map<String, LoraAdapter> adapters = Lora.attach(model, new LoraConfig(4, 8, 0.0, LoraConfig.ALL_LINEAR, List.of(), -1), DType.F32, 3,
                        new DropoutState(0.0));
                long s = 90;
                for (LoraAdapter a : adapters.values()) { // B is zero when attached: give the updates values
                    Ops.copyInto(Tensor.randn(a.b().shape(), DType.F32, Device.CPU, s++), a.b());
                }
                int[] ids = {2, 11, 22, 33, 44, 55, 66, 77, 88, 99};
                Tensor t = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
                Tensor loss = model.loss(t, t, Gemma3Model.Options.defaults().withCheckpointing(checkpointing));
                List<double[]> out = new ArrayList<>();
                out.add(loss.toDoubleArray());
                loss.backward();
                for (Tensor p : Lora.parameters(adapters)) {
                    out.add(p.grad().toDoubleArray());
                }
                return out;
            }
        });
    }

    @Test
    void sharedDownProductsTrainAsTheAdaptersApart() {
        for (Gemma3Model.Checkpointing c : new Gemma3Model.Checkpointing[] {Gemma3Model.Checkpointing.NONE, Gemma3Model.Checkpointing.LAYERS}) {
            List<double[]> apart = run(false, c);
            List<double[]> shared = run(true, c);
            assertEquals(apart.size(), shared.size());
            boolean anyDiffers = false; // the shared path ran: x's gradient summed in another order moves some bits
            for (int i = 0; i < apart.size(); i++) {
                anyDiffers |= !java.util.Arrays.equals(apart.get(i), shared.get(i));
            }
            assertTrue(anyDiffers, c + ": the shared down products were not taken");
            // F32 on the cpu: the same products but x's gradient, one sum over the group's ranks against one per adapter
            assertArrayEquals(apart.get(0), shared.get(0), 1e-6 * Math.abs(apart.get(0)[0]), c + ": loss");
            for (int i = 1; i < apart.size(); i++) {
                double[] e = apart.get(i);
                double scale = 0;
                for (double v : e) {
                    scale = Math.max(scale, Math.abs(v));
                }
                assertArrayEquals(e, shared.get(i), 1e-5 * scale, c + ": adapter parameter " + (i - 1));
            }
        }
    }
}

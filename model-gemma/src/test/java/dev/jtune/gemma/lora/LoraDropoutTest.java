package dev.jtune.gemma.lora;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.Gemma3Model;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/** LoRA dropout is seeded per micro-batch: checkpointed recomputation drops the same elements as the first forward. */
class LoraDropoutTest {
    private static List<double[]> gradients(Gemma3Model.Checkpointing checkpoint, long seed, boolean training) {
        try (Scope scope = Scope.open("dropout")) {
            Gemma3Model model = Gemma3Model.load(LoraGoldenTest.fixture("gemma3-tiny"), Device.CPU, DType.F32);
            DropoutState dropout = new DropoutState(0.3);
            Map<String, LoraAdapter> adapters = Lora.attach(model, new LoraConfig(4, 8, 0.3, LoraConfig.ALL_LINEAR, List.of(), -1), DType.F32, 3, dropout);
            long s = 50;
            for (LoraAdapter a : adapters.values()) {
                Ops.copyInto(Tensor.randn(a.b().shape(), DType.F32, Device.CPU, s++), a.b());
            }
            if (training) {
                dropout.train(seed);
            }
            int[] ids = {2, 11, 22, 33, 44, 55, 66, 77, 88, 99};
            Tensor t = Tensor.fromArray(ids, Shape.of(1, ids.length), DType.I32, Device.CPU);
            model.loss(t, t, Gemma3Model.Options.defaults().withCheckpointing(checkpoint)).backward();
            List<double[]> out = new ArrayList<>();
            for (Tensor p : Lora.parameters(adapters)) {
                out.add(p.grad().toDoubleArray());
            }
            return out;
        }
    }

    @Test
    void checkpointingReproducesTheDropoutMasks() {
        List<double[]> plain = gradients(Gemma3Model.Checkpointing.NONE, 77, true);
        List<double[]> checkpointed = gradients(Gemma3Model.Checkpointing.LAYERS, 77, true);
        for (int i = 0; i < plain.size(); i++) {
            assertArrayEquals(plain.get(i), checkpointed.get(i), 0.0, "parameter " + i);
        }
        List<double[]> otherSeed = gradients(Gemma3Model.Checkpointing.NONE, 78, true);
        List<double[]> noDropout = gradients(Gemma3Model.Checkpointing.NONE, 77, false);
        assertNotEquals(plain.get(0)[0], otherSeed.get(0)[0], "another micro-batch seed drops other elements");
        assertNotEquals(plain.get(0)[0], noDropout.get(0)[0], "dropout is off outside training");
    }

    /**
     * The adapter's dropped-input product (drop(x) not kept, drawn again in backward) against the same model written
     * with plain ops, dropout then cast then products: output and the gradients of x, A and B bit for bit, in fp32 and
     * with fp32 weights computed in bf16.
     */
    @Test
    void theDroppedProductIsDropoutThenTheProductsBitForBit() {
        checkDroppedProduct(Device.CPU);
    }

    /** On {@code device}: the adapter against the plain ops, both there (the GPU test runs it on the device). */
    static void checkDroppedProduct(Device device) {
        for (DType compute : new DType[] {DType.F32, DType.BF16}) {
            for (long[] xShape : new long[][] {{10, 24}, {2, 5, 24}}) { // rows, and a batch of them (the vision tower's)
                double[][] fused = adapterGradients(device, compute, xShape, false);
                double[][] plain = adapterGradients(device, compute, xShape, true);
                String[] names = {"output", "x", "A", "B"};
                for (int i = 0; i < names.length; i++) {
                    assertArrayEquals(plain[i], fused[i], 0.0, device + " " + compute + " x " + Shape.of(xShape) + ": " + names[i]);
                }
            }
        }
    }

    private static double[][] adapterGradients(Device device, DType compute, long[] xShape, boolean plainOps) {
        try (Scope scope = Scope.open("dropped product")) {
            DropoutState dropout = new DropoutState(0.25);
            dropout.train(91);
            Tensor a = Tensor.randn(Shape.of(4, 24), DType.F32, device, 5).requiresGrad(true);
            Tensor b = Tensor.randn(Shape.of(16, 4), DType.F32, device, 6).requiresGrad(true);
            Tensor leaf = Tensor.randn(Shape.of(xShape), DType.F32, device, 7).requiresGrad(true);
            Tensor x = leaf.scale(1.5).cast(compute);
            LoraAdapter adapter = new LoraAdapter("m", a, b, 0.5, dropout, 3, compute);
            Tensor y = plainOps
                    ? Ops.matmul(Ops.matmul(dev.jtune.engine.ops.Dropout.apply(x, 0.25, dropout.seedFor(3)).cast(compute), a.cast(compute),
                            dev.jtune.engine.Transpose.B, 0.5), b.cast(compute), dev.jtune.engine.Transpose.B)
                    : adapter.apply(x);
            Tensor seed = Tensor.randn(y.shape(), DType.F32, device, 8).cast(y.dtype());
            y.backward(seed);
            return new double[][] {y.toDoubleArray(), leaf.grad().toDoubleArray(), a.grad().toDoubleArray(), b.grad().toDoubleArray()};
        }
    }
}

package dev.jtune.engine.nn;

import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.engine.quant.Nf4Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Linear on the cpu: its forward is the op composition it replaces (bit for bit), dense or NF4, with bias and adapter;
 * quantizing frees the dense weight and reserves the shared workspace once; merging into an NF4 weight leaves a dense
 * weight the Linear keeps using after the caller's scopes close.
 */
class LinearTest {
    private final long seed = System.nanoTime();

    private String seeded(String what) {
        return what + " (seed " + seed + ")";
    }

    private static Linear linear(long in, long out, Linear.Bias bias, DequantWorkspace ws, long seed) {
        Linear l = new Linear(in, out, bias, ws);
        l.weightParameter().set(Tensor.normal(l.shape(), DType.F32, Device.CPU, seed, 0, 0.5));
        if (bias == Linear.Bias.WITH) {
            l.biasParameter().set(Tensor.normal(Shape.of(out), DType.F32, Device.CPU, seed + 1, 0, 0.5));
        }
        return l;
    }

    @Test
    void denseForwardIsTheProductPlusBias() {
        try (Scope s = Scope.open("dense")) {
            Linear l = linear(6, 5, Linear.Bias.WITH, new DequantWorkspace(DType.F32, Device.CPU), seed);
            Tensor x = Tensor.normal(Shape.of(3, 6), DType.F32, Device.CPU, seed + 2, 0, 1);
            Tensor expected = x.matmul(l.weight().transpose(0, 1)).add(l.biasParameter().tensor());
            assertArrayEquals(expected.toFloatArray(), l.forward(x).toFloatArray(), 0f, seeded("x W^T + b"));
            Linear noBias = linear(6, 5, Linear.Bias.NONE, new DequantWorkspace(DType.F32, Device.CPU), seed);
            assertNull(noBias.biasParameter());
            assertEquals(List.of("weight"), List.copyOf(noBias.namedParameters().keySet()));
            assertArrayEquals(x.matmul(noBias.weight().transpose(0, 1)).toFloatArray(), noBias.forward(x).toFloatArray(), 0f, seeded("x W^T"));
        }
    }

    /** An NF4 Linear computes exactly what the dense product with its dequantized weight computes, forward and backward. */
    @Test
    void nf4ForwardAndBackwardUseTheDequantizedWeight() {
        try (Scope s = Scope.open("nf4")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear l = linear(128, 3, Linear.Bias.WITH, ws, seed);
            Tensor dense = l.weight();
            l.quantize(Nf4Scales.DOUBLE_QUANTIZED);
            assertTrue(l.isQuantized() && l.quantizedWeight().doubleQuant());
            assertTrue(dense.isClosed(), "the dense weight is freed");
            assertEquals(128 * 3, ws.capacity(), "the workspace holds the weight");
            Tensor w = l.weight(); // dequantized into this scope
            assertArrayEquals(Nf4.dequantize(l.quantizedWeight(), DType.F32).toFloatArray(), w.toFloatArray(), 0f);

            Tensor x = Tensor.normal(Shape.of(4, 128), DType.F32, Device.CPU, seed + 3, 0, 1).requiresGrad(true);
            Tensor g = Tensor.normal(Shape.of(4, 3), DType.F32, Device.CPU, seed + 4, 0, 1);
            Tensor y = l.forward(x);
            assertArrayEquals(x.detach().matmul(w.transpose(0, 1)).add(l.biasParameter().tensor()).toFloatArray(), y.toFloatArray(), 0f, seeded("forward"));
            y.backward(g);
            assertArrayEquals(g.matmul(w).toFloatArray(), x.grad().toFloatArray(), 0f, seeded("dX = dY W"));
        }
    }

    /** Quantizing several Linears reserves their shared workspace once, for the largest weight, after the weights. */
    @Test
    void quantizingAListReservesTheSharedWorkspaceOnce() {
        try (Scope s = Scope.open("list")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            List<Linear> ls = List.of(linear(64, 2, Linear.Bias.NONE, ws, seed), linear(64, 5, Linear.Bias.NONE, ws, seed + 7),
                    linear(128, 1, Linear.Bias.NONE, ws, seed + 9));
            int before = s.ownedCount();
            Linear.quantize(ls, Nf4Scales.FP32);
            assertEquals(64 * 5, ws.capacity());
            assertEquals(before - 3 + 3 * 2 + 1, s.ownedCount(), "dense weights freed, codes + absmax each, one workspace");
            Linear.quantize(ls, Nf4Scales.FP32); // already quantized: nothing changes
            assertEquals(before - 3 + 3 * 2 + 1, s.ownedCount());
        }
    }

    /** A trainable weight is refused, before any Linear of the list is changed. */
    @Test
    void aTrainableWeightIsNotQuantized() {
        try (Scope s = Scope.open("grad")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear frozen = linear(64, 2, Linear.Bias.NONE, ws, seed);
            Linear l = linear(64, 2, Linear.Bias.NONE, ws, seed);
            l.weight().requiresGrad(true);
            assertThrows(UnsupportedOpException.class, () -> Linear.quantize(List.of(frozen, l), Nf4Scales.FP32));
            assertFalse(l.isQuantized() || frozen.isQuantized());
            assertEquals(0, ws.capacity());
        }
    }

    /** An adapter's update is added to the product; detaching restores the base. */
    @Test
    void adapterAddsItsUpdate() {
        try (Scope s = Scope.open("adapter")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear l = linear(64, 4, Linear.Bias.WITH, ws, seed);
            Tensor m = Tensor.normal(Shape.of(64, 4), DType.F32, Device.CPU, seed + 5, 0, 1);
            Adapter a = x -> x.matmul(m);
            Tensor x = Tensor.normal(Shape.of(2, 64), DType.F32, Device.CPU, seed + 6, 0, 1);
            Tensor base = l.forward(x);
            assertSame(l, l.attach(a));
            assertSame(a, l.adapter());
            assertArrayEquals(base.add(x.matmul(m)).toFloatArray(), l.forward(x).toFloatArray(), 0f, seeded("base + adapter"));
            l.quantize(Nf4Scales.FP32);
            Tensor nf4Base = x.matmul(l.weight().transpose(0, 1)).add(l.biasParameter().tensor());
            assertArrayEquals(nf4Base.add(x.matmul(m)).toFloatArray(), l.forward(x).toFloatArray(), 0f, seeded("NF4 base + adapter"));
            assertSame(a, l.detach());
            assertNull(l.adapter());
            assertArrayEquals(nf4Base.toFloatArray(), l.forward(x).toFloatArray(), 0f, seeded("detached"));
        }
    }

    /** W += delta: in place for a dense weight; an NF4 weight becomes dense, and outlives the scope merging happened in. */
    @Test
    void addingToTheWeightMergesDenseInPlaceAndNf4IntoADenseWeight() {
        try (Scope model = Scope.open("model")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear dense = linear(64, 3, Linear.Bias.NONE, ws, seed);
            Linear nf4 = linear(64, 3, Linear.Bias.NONE, ws, seed);
            nf4.quantize(Nf4Scales.DOUBLE_QUANTIZED);
            Nf4Tensor q = nf4.quantizedWeight();
            Tensor w = dense.weight();
            float[] before = w.toFloatArray();
            float[] nf4Before = nf4.weight().toFloatArray();
            Tensor x = Tensor.normal(Shape.of(2, 64), DType.F32, Device.CPU, seed + 8, 0, 1);
            float[] d;
            try (Scope merge = Scope.open("caller's scope")) {
                Tensor delta = Tensor.normal(Shape.of(3, 64), DType.F32, Device.CPU, seed + 9, 0, 1);
                d = delta.toFloatArray();
                dense.addToWeight(delta);
                nf4.addToWeight(delta);
            }
            assertSame(w, dense.weight(), "a dense weight is merged in place");
            assertFalse(nf4.isQuantized());
            assertTrue(q.isClosed(), "the NF4 weight is freed");
            float[] merged = nf4.weight().toFloatArray();
            float[] inPlace = w.toFloatArray();
            for (int i = 0; i < d.length; i++) {
                assertEquals(before[i] + d[i], inPlace[i], 0f, seeded("dense element " + i));
                assertEquals(nf4Before[i] + d[i], merged[i], 0f, seeded("NF4 element " + i));
            }
            assertArrayEquals(x.matmul(nf4.weight().transpose(0, 1)).toFloatArray(), nf4.forward(x).toFloatArray(), 0f,
                    seeded("the merged weight serves the forward"));
            assertSame(model, TensorInternals.storage(nf4.weight()).owner(), "owned by the scope that owned the NF4 weight");
        }
    }

    @Test
    void replacingAnNf4WeightFreesIt() {
        try (Scope s = Scope.open("replace")) {
            Linear l = linear(64, 2, Linear.Bias.NONE, new DequantWorkspace(DType.F32, Device.CPU), seed);
            l.quantize(Nf4Scales.FP32);
            Nf4Tensor q = l.quantizedWeight();
            Tensor dense = Tensor.zeros(Shape.of(2, 64), DType.F32, Device.CPU);
            l.replaceWeight(dense);
            assertTrue(q.isClosed());
            assertSame(dense, l.weight());
            try (Autograd.GradMode off = Autograd.noGrad()) {
                assertArrayEquals(new float[2], l.forward(Tensor.full(Shape.of(1, 64), 1, DType.F32, Device.CPU)).toFloatArray(), 0f);
            }
            assertThrows(dev.jtune.engine.ShapeException.class, () -> l.replaceWeight(Tensor.zeros(Shape.of(64, 2), DType.F32, Device.CPU)));
            Ops.copyInto(Tensor.full(Shape.of(2, 64), 1, DType.F32, Device.CPU), dense);
            assertArrayEquals(new float[] {64, 64}, l.forward(Tensor.full(Shape.of(1, 64), 1, DType.F32, Device.CPU)).toFloatArray(), 0f);
        }
    }
}

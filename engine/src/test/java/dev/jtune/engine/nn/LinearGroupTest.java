package dev.jtune.engine.nn;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.Transpose;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A {@link LinearGroup} of NF4 parts with adapters computes, as one product, what its parts compute apart and
 * concatenated: the output and every gradient (x's, the adapters'), on the cpu in F32; it falls back to the parts
 * where it cannot fuse.
 */
class LinearGroupTest {
    private final long seed = Seeds.seed();
    private String previous;

    @BeforeEach
    void switchOn() {
        previous = System.setProperty(LinearGroup.PROPERTY, "true");
    }

    @AfterEach
    void restore() {
        if (previous == null) {
            System.clearProperty(LinearGroup.PROPERTY);
        } else {
            System.setProperty(LinearGroup.PROPERTY, previous);
        }
    }

    /** A LoRA-like update {@code x A^T B^T} that adds into columns. */
    private record LowRank(Tensor a, Tensor b) implements Adapter {
        @Override
        public Tensor apply(Tensor x) {
            return x.matmul(a.transpose(0, 1)).matmul(b.transpose(0, 1));
        }

        @Override
        public boolean addsIntoColumns(DType outputType) {
            return outputType == a.dtype();
        }

        @Override
        public Tensor addTo(Tensor y, long column, Tensor x) {
            return Ops.addMatmulInto(y, column, x.matmul(a.transpose(0, 1)), b, Transpose.B);
        }
    }

    private Linear part(long in, long out, DequantWorkspace ws, long s) {
        Linear l = new Linear(in, out, Linear.Bias.NONE, ws);
        l.weightParameter().set(Tensor.normal(l.shape(), DType.F32, Device.CPU, s, 0, 0.5));
        return l;
    }

    private LowRank lowRank(long in, long out, long s) {
        return new LowRank(Tensor.normal(Shape.of(3, in), DType.F32, Device.CPU, s, 0, 0.3).requiresGrad(true),
                Tensor.normal(Shape.of(out, 3), DType.F32, Device.CPU, s + 1, 0, 0.3).requiresGrad(true));
    }

    @Test
    void oneProductEqualsThePartsApartForwardAndBackward() {
        String what = " (seed " + seed + ")";
        try (Scope s = Scope.open("group")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear gate = part(128, 5, ws, seed);
            Linear up = part(128, 7, ws, seed + 1);
            Linear third = part(128, 2, ws, seed + 2); // no adapter
            LinearGroup group = new LinearGroup(gate, up, third);
            Linear.quantize(List.of(gate, up, third), Nf4Scales.DOUBLE_QUANTIZED);
            assertEquals(14 * 128, ws.capacity(), "the workspace holds the group's weights together");
            LowRank la = lowRank(128, 5, seed + 3);
            LowRank lb = lowRank(128, 7, seed + 4);
            gate.attach(la);
            up.attach(lb);

            Tensor x = Tensor.normal(Shape.of(6, 128), DType.F32, Device.CPU, seed + 5, 0, 1).requiresGrad(true);
            Tensor g = Tensor.normal(Shape.of(6, 14), DType.F32, Device.CPU, seed + 6, 0, 1);
            assertTrue(group.fused(x));
            Tensor y = group.forward(x);
            y.backward(g);
            float[] fusedY = y.toFloatArray();
            float[] gx = x.grad().toFloatArray();
            float[][] adapterGrads = {la.a().grad().toFloatArray(), la.b().grad().toFloatArray(), lb.a().grad().toFloatArray(), lb.b().grad().toFloatArray()};
            for (Tensor t : new Tensor[] {x, la.a(), la.b(), lb.a(), lb.b()}) {
                t.zeroGrad();
            }

            Tensor apart = Ops.concat(-1, gate.forward(x), up.forward(x), third.forward(x));
            apart.backward(g);
            // fp32 sums of 128 products (|x| ~ 1, |w| ~ 0.5) blocked differently for another width: ~1e-6 apart
            assertArrayEquals(apart.toFloatArray(), fusedY, 1e-5f, "output" + what);
            // x's gradient: one fp32 sum over 14 products against three summed in turn
            assertArrayEquals(x.grad().toFloatArray(), gx, 1e-5f, "x's gradient" + what);
            Tensor[] apartGrads = {la.a().grad(), la.b().grad(), lb.a().grad(), lb.b().grad()};
            for (int i = 0; i < apartGrads.length; i++) {
                assertArrayEquals(apartGrads[i].toFloatArray(), adapterGrads[i], 1e-5f, "adapter gradient " + i + what);
            }
        }
    }

    @Test
    void fallsBackToThePartsWhereItCannotFuse() {
        try (Scope s = Scope.open("fallback")) {
            DequantWorkspace ws = new DequantWorkspace(DType.F32, Device.CPU);
            Linear a = part(64, 2, ws, seed);
            Linear b = part(64, 3, ws, seed + 1);
            LinearGroup group = new LinearGroup(a, b);
            Tensor x = Tensor.normal(Shape.of(4, 64), DType.F32, Device.CPU, seed + 2, 0, 1);
            assertFalse(group.fused(x), "dense weights run apart");
            float[] expected = Ops.concat(-1, a.forward(x), b.forward(x)).toFloatArray();
            assertArrayEquals(expected, group.forward(x).toFloatArray(), 0f, "the parts concatenated");

            Linear.quantize(List.of(a, b), Nf4Scales.FP32);
            assertTrue(group.fused(x));
            assertFalse(group.fused(x.reshape(2, 2, 64)), "a batched input runs apart");
            b.attach(x1 -> x1.matmul(Tensor.zeros(Shape.of(64, 3), DType.F32, Device.CPU)));
            assertFalse(group.fused(x), "an adapter that cannot add into columns runs apart");
            b.detach();
            System.setProperty(LinearGroup.PROPERTY, "false");
            assertFalse(group.fused(x), "switched off");
        }
    }
}

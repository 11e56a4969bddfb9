package dev.jtune.engine.optim;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GradientBufferTest {

    @Test
    void layoutAlignsEveryEntryAndRoundsTheEnd() {
        SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
        shapes.put("a", Shape.of(3, 5));
        shapes.put("b", Shape.of(256));
        shapes.put("c", Shape.of(1));
        FlatLayout l = FlatLayout.of(shapes);
        assertEquals(0, l.entries().get(0).offset());
        assertEquals(256, l.entries().get(1).offset());
        assertEquals(512, l.entries().get(2).offset());
        assertEquals(768, l.numel());
        assertEquals(15 + 256 + 1, l.parameterElements());
        assertEquals(2, l.indexOf("c"));
        assertThrows(IllegalArgumentException.class, () -> new FlatLayout(java.util.List.of(new FlatLayout.Entry("x", Shape.of(4), 3)), 256));
    }

    @Test
    void backwardAccumulatesIntoTheFlatBufferAndZeroKeepsItAttached() {
        try (Scope s = Scope.open("t")) {
            Tensor w1 = Tensor.fromArray(new float[] {1, 2, 3}, Shape.of(3), DType.F32, Device.CPU).requiresGrad(true);
            Tensor w2 = Tensor.fromArray(new float[] {4, 5}, Shape.of(2), DType.F32, Device.CPU).requiresGrad(true);
            SequencedMap<String, Tensor> named = new LinkedHashMap<>();
            named.put("w1", w1);
            named.put("w2", w2);
            GradientBuffer buf = GradientBuffer.attach(named);
            Tensor g1 = w1.grad();
            for (int round = 0; round < 2; round++) {
                Ops.add(Ops.mul(w1, w1).sum(0), Ops.scale(w2, 3).sum(0)).backward();
            }
            assertSame(g1, w1.grad(), "the same view, accumulated in place");
            assertTrue(w1.hasAttachedGrad());
            assertArrayEquals(new float[] {4, 8, 12}, w1.grad().toFloatArray());
            assertArrayEquals(new float[] {6, 6}, w2.grad().toFloatArray());
            float[] flat = buf.flat().toFloatArray();
            assertEquals(512, flat.length);
            assertEquals(6f, flat[256]);
            assertEquals(0f, flat[3], "the gaps stay zero");
            buf.zero();
            assertArrayEquals(new float[] {0, 0, 0}, w1.grad().toFloatArray());
            w2.zeroGrad();
            assertSame(buf.flat().dtype(), w2.grad().dtype(), "zeroGrad of an attached gradient zeroes, it does not free");
        }
    }

    @Test
    void mixedDtypesAreRefused() {
        try (Scope s = Scope.open("t")) {
            SequencedMap<String, Tensor> named = new LinkedHashMap<>();
            named.put("a", Tensor.zeros(Shape.of(2), DType.F32, Device.CPU).requiresGrad(true));
            named.put("b", Tensor.zeros(Shape.of(2), DType.BF16, Device.CPU).requiresGrad(true));
            assertThrows(IllegalArgumentException.class, () -> GradientBuffer.attach(named));
        }
    }
}

package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.backend.Distribution;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.cpu.CpuStorage;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The backend's contract where Ops never exercises it today: contiguous destinations that start at an offset
 * into their storage (a slice along the first axis), which other callers of the SPI may pass.
 */
class CpuBackendTest extends ScopedTest {
    private final CpuBackend cpu = CpuBackend.instance();

    /** Rows [1, 3) of a 4 x 5 tensor holding 0..19: contiguous, at element offset 5. */
    private static Tensor middleRows(DType dtype, Tensor[] whole) {
        double[] v = new double[20];
        for (int i = 0; i < v.length; i++) {
            v[i] = i;
        }
        whole[0] = Tensor.fromArray(v, Shape.of(4, 5), dtype, Device.CPU);
        return whole[0].slice(0, 1, 3);
    }

    /** Elements outside rows 1..2 still hold their index; those inside hold {@code inside.apply(i)}. */
    private static void assertOnlyMiddleChanged(Tensor whole, java.util.function.IntToDoubleFunction inside) {
        double[] got = whole.toDoubleArray();
        for (int i = 0; i < got.length; i++) {
            double expected = i >= 5 && i < 15 ? inside.applyAsDouble(i - 5) : i;
            assertEquals(expected, got[i], "element " + i);
        }
    }

    @Test
    void fillWritesOnlyTheView() {
        for (DType d : TestTensors.NUMERIC) {
            Tensor[] whole = new Tensor[1];
            Tensor view = middleRows(d, whole);
            cpu.fill(view, 7.75);
            double value = d.isFloating() ? ReferenceRounding.toFloating(d, 7.75) : ReferenceRounding.toInteger(d, 7.75);
            assertOnlyMiddleChanged(whole[0], i -> value);
        }
    }

    @Test
    void fillRandomCountsFromTheViewsFirstElement() {
        Tensor[] whole = new Tensor[1];
        Tensor view = middleRows(DType.F64, whole);
        cpu.fillRandom(view, Distribution.UNIFORM, 99, -1, 1);
        assertOnlyMiddleChanged(whole[0], i -> CounterRng.uniform(99, i, -1, 1));
    }

    @Test
    void copyFromHostWritesAtTheOffset() {
        Tensor[] whole = new Tensor[1];
        Tensor view = middleRows(DType.I32, whole);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(ValueLayout.JAVA_INT, 10);
            for (int i = 0; i < 10; i++) {
                host.setAtIndex(ValueLayout.JAVA_INT, i, 100 + i);
            }
            cpu.copyFromHost(host, view);
        }
        assertOnlyMiddleChanged(whole[0], i -> 100 + i);
    }

    @Test
    void nf4CodesCopyAsBytesFromAWholeByte() {
        Random rnd = Seeds.random(41);
        byte[] bytes = new byte[8];
        rnd.nextBytes(bytes);
        Tensor codes = Tensor.fromBytes(bytes, Shape.of(4, 4), DType.NF4, Device.CPU);
        Tensor rows = codes.slice(0, 2, 4); // element offset 8: byte 4
        byte[] expected = new byte[4];
        System.arraycopy(bytes, 4, expected, 0, 4);
        assertArrayEquals(expected, rows.copy().toByteArray());
        Tensor odd = Tensor.fromBytes(bytes, Shape.of(16), DType.NF4, Device.CPU).slice(0, 1, 5);
        assertThrows(UnsupportedOpException.class, odd::copy, "a view starting mid-byte");
    }

    @Test
    void storagesExposeTheirSegment() {
        Tensor t = Tensor.zeros(Shape.of(3), DType.F32, Device.CPU);
        CpuStorage s = (CpuStorage) t.storage();
        assertEquals(12, s.segment().byteSize());
        assertEquals(s.address(), s.segment().address());
        t.close();
        assertThrows(ClosedException.class, s::segment);
    }
}

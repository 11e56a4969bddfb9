package dev.jtune.engine;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.TestTensors.Layout;
import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.cpu.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.Isolated;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

import static dev.jtune.engine.TestTensors.FLOATING;
import static dev.jtune.engine.TestTensors.NUMERIC;
import static dev.jtune.engine.TestTensors.assertSameValues;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Tensors on the cpu backend: creation, views, copies and casts, element access, random fills. */
@Isolated // some tests read the cpu backend's process-wide allocation counters
class TensorCpuTest extends ScopedTest {

    // ---------------------------------------------------------------- creation

    @Test
    void zerosAreZeroInEveryDtype() {
        Random rnd = Seeds.random(1);
        for (DType d : NUMERIC) {
            Tensor t = Tensor.zeros(Shape.of(RandomShapes.shape(rnd, 1, 4)), d, Device.CPU);
            for (double v : t.toDoubleArray()) {
                assertEquals(0.0, v, d + " zeros"); // also rules out -0.0
            }
        }
    }

    @Test
    void fullStoresTheValueRoundedToTheDtype() {
        Random rnd = Seeds.random(2);
        for (DType d : NUMERIC) {
            for (int trial = 0; trial < 5; trial++) {
                double value = rnd.nextGaussian() * Math.pow(10, rnd.nextInt(7));
                Tensor t = Tensor.full(Shape.of(RandomShapes.shape(rnd, 0, 3)), value, d, Device.CPU);
                String what = d + " full(" + value + ")";
                if (d.isFloating()) {
                    double expected = ReferenceRounding.toFloating(d, value);
                    for (double v : t.toDoubleArray()) {
                        assertEquals(expected, v, what);
                    }
                } else {
                    long expected = ReferenceRounding.toInteger(d, value);
                    for (long v : t.toLongArray()) {
                        assertEquals(expected, v, what);
                    }
                }
            }
        }
    }

    @Test
    void fromArrayConvertsEachSourceToEachDtype() {
        Random rnd = Seeds.random(3);
        int n = 64;
        double[] doubles = new double[n];
        float[] floats = new float[n];
        int[] ints = new int[n];
        long[] longs = new long[n];
        for (int i = 0; i < n; i++) {
            doubles[i] = rnd.nextGaussian() * Math.pow(10, rnd.nextInt(12) - 2);
            floats[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(8) - 2));
            ints[i] = rnd.nextInt() >> rnd.nextInt(32);
            longs[i] = rnd.nextLong() >> rnd.nextInt(63);
        }
        Shape shape = Shape.of(4, 16);
        for (DType d : NUMERIC) {
            Tensor fromDoubles = Tensor.fromArray(doubles, shape, d, Device.CPU);
            Tensor fromFloats = Tensor.fromArray(floats, shape, d, Device.CPU);
            Tensor fromInts = Tensor.fromArray(ints, shape, d, Device.CPU);
            Tensor fromLongs = Tensor.fromArray(longs, shape, d, Device.CPU);
            if (d.isFloating()) {
                double[] gotDoubles = fromDoubles.toDoubleArray();
                double[] gotFloats = fromFloats.toDoubleArray();
                double[] gotInts = fromInts.toDoubleArray();
                double[] gotLongs = fromLongs.toDoubleArray();
                for (int i = 0; i < n; i++) {
                    assertEquals(ReferenceRounding.toFloating(d, doubles[i]), gotDoubles[i], d + " from double " + doubles[i]);
                    assertEquals(ReferenceRounding.toFloating(d, floats[i]), gotFloats[i], d + " from float " + floats[i]);
                    assertEquals(ReferenceRounding.toFloating(d, (long) ints[i]), gotInts[i], d + " from int " + ints[i]);
                    assertEquals(ReferenceRounding.toFloating(d, longs[i]), gotLongs[i], d + " from long " + longs[i]);
                }
            } else {
                long[] gotDoubles = fromDoubles.toLongArray();
                long[] gotFloats = fromFloats.toLongArray();
                long[] gotInts = fromInts.toLongArray();
                long[] gotLongs = fromLongs.toLongArray();
                for (int i = 0; i < n; i++) {
                    assertEquals(ReferenceRounding.toInteger(d, doubles[i]), gotDoubles[i], d + " from double " + doubles[i]);
                    assertEquals(ReferenceRounding.toInteger(d, floats[i]), gotFloats[i], d + " from float " + floats[i]);
                    assertEquals(ReferenceRounding.toInteger(d, (long) ints[i]), gotInts[i], d + " from int " + ints[i]);
                    assertEquals(ReferenceRounding.toInteger(d, longs[i]), gotLongs[i], d + " from long " + longs[i]);
                }
            }
        }
    }

    @Test
    void fromBytesKeepsTheBytesOfEveryDtype() {
        Random rnd = Seeds.random(4);
        for (DType d : DType.values()) {
            long[] dims = {3, 1 + 2 * rnd.nextInt(4)}; // an odd count: NF4's last byte is half used
            byte[] bytes = new byte[Math.toIntExact(d.bytesFor(dims[0] * dims[1]))];
            rnd.nextBytes(bytes);
            Tensor t = Tensor.fromBytes(bytes, Shape.of(dims), d, Device.CPU);
            assertArrayEquals(bytes, t.toByteArray(), d.toString());
        }
    }

    @Test
    void fromBytesIsLittleEndian() {
        Random rnd = Seeds.random(5);
        byte[] bytes = new byte[4 * 10];
        rnd.nextBytes(bytes);
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        double[] f32 = Tensor.fromBytes(bytes, Shape.of(10), DType.F32, Device.CPU).toDoubleArray();
        long[] i32 = Tensor.fromBytes(bytes, Shape.of(10), DType.I32, Device.CPU).toLongArray();
        for (int i = 0; i < 10; i++) {
            assertEquals(buf.getFloat(4 * i), f32[i], "F32 element " + i);
            assertEquals(buf.getInt(4 * i), i32[i], "I32 element " + i);
        }
    }

    @Test
    void storageIsAlignedAndCounted() {
        CpuBackend cpu = CpuBackend.instance();
        long before = cpu.memoryStats().allocated();
        Tensor t = Tensor.zeros(Shape.of(3, 5), DType.BF16, Device.CPU);
        Tensor u = t.slice(1, 1, 3);
        assertEquals(0, t.storage().address() % 64, "64-byte aligned");
        assertEquals(t.address() + 2, u.address(), "a view's address includes its offset");
        assertEquals(before + 30, cpu.memoryStats().allocated());
        assertEquals(cpu.memoryStats().allocated(), cpu.memoryStats().reserved());
    }

    // ---------------------------------------------------------------- views

    @Test
    void reshapeInfersMinusOneAndSharesStorage() {
        Random rnd = Seeds.random(6);
        for (int trial = 0; trial < 10; trial++) {
            long[] dims = RandomShapes.shape(rnd, 3);
            HostArray h = HostArray.random(rnd, dims, -1, 1);
            Tensor t = h.toTensor(DType.F64);
            Tensor r = t.reshape(-1, dims[2]);
            assertArrayEquals(new long[]{dims[0] * dims[1], dims[2]}, r.shape().toArray());
            assertSame(t.storage(), r.storage(), "a contiguous reshape is a view");
            assertArrayEquals(h.data(), r.toDoubleArray());
            assertArrayEquals(new long[]{dims[0], dims[1] * dims[2]}, t.view(dims[0], -1).shape().toArray());
        }
    }

    @Test
    void viewRefusesNonContiguousWhileReshapeCopies() {
        Random rnd = Seeds.random(7);
        HostArray h = HostArray.random(rnd, new long[]{3, 4}, -1, 1);
        Tensor tt = h.toTensor(DType.F32).transpose(0, 1);
        assertThrows(ShapeException.class, () -> tt.view(-1));
        Tensor r = tt.reshape(-1);
        assertNotSame(tt.storage(), r.storage());
        HostArray expected = HostArray.generate(new long[]{12}, i -> h.at(i[0] % 3, i[0] / 3));
        assertSameValues(TestTensors.rounded(expected, DType.F32), r, "reshape of a transpose");
    }

    @Test
    void transposeSwapsTwoAxes() {
        Random rnd = Seeds.random(8);
        for (int trial = 0; trial < 10; trial++) {
            HostArray h = HostArray.random(rnd, RandomShapes.shape(rnd, 2, 4), -1, 1);
            int x = rnd.nextInt(h.rank());
            int y = rnd.nextInt(h.rank());
            Tensor t = h.toTensor(DType.F64).transpose(x, y - h.rank()); // the second axis counted from the end
            long[] dims = h.shape().clone();
            dims[x] = h.shape()[y];
            dims[y] = h.shape()[x];
            HostArray expected = HostArray.generate(dims, idx -> {
                long[] src = idx.clone();
                src[x] = idx[y];
                src[y] = idx[x];
                return h.at(src);
            });
            assertSameValues(expected, t, "transpose(" + x + ", " + y + ")");
        }
    }

    @Test
    void permuteReordersAxes() {
        Random rnd = Seeds.random(9);
        for (int trial = 0; trial < 10; trial++) {
            HostArray h = HostArray.random(rnd, RandomShapes.shape(rnd, 1, 5), -1, 1);
            int[] order = RandomShapes.permutation(rnd, h.rank());
            long[] dims = new long[h.rank()];
            for (int i = 0; i < dims.length; i++) {
                dims[i] = h.shape()[order[i]];
            }
            HostArray expected = HostArray.generate(dims, idx -> {
                long[] src = new long[idx.length];
                for (int i = 0; i < idx.length; i++) {
                    src[order[i]] = idx[i];
                }
                return h.at(src);
            });
            assertSameValues(expected, h.toTensor(DType.F64).permute(order), "permute");
        }
    }

    @Test
    void sliceSelectsARangeWithNegativeBounds() {
        Random rnd = Seeds.random(10);
        for (int trial = 0; trial < 20; trial++) {
            HostArray h = HostArray.random(rnd, RandomShapes.shape(rnd, 1, 4), -1, 1);
            int axis = rnd.nextInt(h.rank());
            long n = h.shape()[axis];
            long start = rnd.nextInt((int) n + 1);
            long end = start + rnd.nextInt((int) (n - start) + 1);
            // express either bound from the end half of the time
            long startArg = rnd.nextBoolean() && start < n ? start - n : start;
            long endArg = rnd.nextBoolean() && end < n ? end - n : end;
            long[] dims = h.shape().clone();
            dims[axis] = end - start;
            HostArray expected = HostArray.generate(dims, idx -> {
                long[] src = idx.clone();
                src[axis] += start;
                return h.at(src);
            });
            Tensor s = h.toTensor(DType.F64).slice(axis - (rnd.nextBoolean() ? h.rank() : 0), startArg, endArg);
            assertSameValues(expected, s, "slice axis " + axis + " [" + startArg + ", " + endArg + ")");
        }
    }

    @Test
    void unsqueezeAndSqueezeAddAndRemoveUnitAxes() {
        Random rnd = Seeds.random(11);
        for (int trial = 0; trial < 10; trial++) {
            HostArray h = HostArray.random(rnd, RandomShapes.shape(rnd, 0, 4), -1, 1);
            Tensor t = h.toTensor(DType.F32);
            int at = rnd.nextInt(h.rank() + 1);
            Tensor u = t.unsqueeze(rnd.nextBoolean() ? at : at - h.rank() - 1);
            long[] dims = new long[h.rank() + 1];
            for (int i = 0, j = 0; i < dims.length; i++) {
                dims[i] = i == at ? 1 : h.shape()[j++];
            }
            assertArrayEquals(dims, u.shape().toArray());
            assertSameValues(TestTensors.rounded(new HostArray(dims, h.data()), DType.F32), u, "unsqueeze");
            Tensor s = u.squeeze(at);
            assertEquals(t.shape(), s.shape());
            assertSameValues(TestTensors.rounded(h, DType.F32), s, "squeeze");
        }
        assertThrows(ShapeException.class, () -> Tensor.zeros(Shape.of(2, 3), DType.F32, Device.CPU).squeeze(0));
    }

    @Test
    void expandBroadcastsWithoutCopying() {
        Random rnd = Seeds.random(12);
        for (int trial = 0; trial < 15; trial++) {
            long[] target = RandomShapes.shape(rnd, 1, 4);
            HostArray h = HostArray.random(rnd, RandomShapes.broadcastable(rnd, target), -1, 1);
            Tensor t = h.toTensor(DType.F64);
            Tensor e = t.expand(Shape.of(target));
            assertSame(t.storage(), e.storage());
            assertSameValues(HostArray.generate(target, h::broadcastAt), e, "expand " + Shape.of(h.shape()) + " to " + Shape.of(target));
        }
    }

    @Test
    void contiguousOfViewsMatchesTheReference() {
        Random rnd = Seeds.random(13);
        for (Layout layout : Layout.values()) {
            for (int trial = 0; trial < 8; trial++) {
                HostArray h = TestTensors.rounded(HostArray.random(rnd, RandomShapes.shape(rnd, 2, 4), -3, 3), DType.BF16);
                Tensor view = TestTensors.withLayout(h, DType.BF16, layout, rnd);
                Tensor c = view.contiguous();
                assertTrue(c.isContiguous());
                assertEquals(view.isContiguous(), c == view, "contiguous() copies exactly when needed");
                assertSameValues(h, c, layout + " contiguous()");
            }
        }
        long[] target = {3, 4, 5};
        HostArray small = HostArray.random(rnd, new long[]{4, 1}, -1, 1);
        Tensor expanded = small.toTensor(DType.F64).expand(Shape.of(target));
        assertFalse(expanded.isContiguous());
        assertSameValues(HostArray.generate(target, small::broadcastAt), expanded.contiguous(), "expanded contiguous()");
    }

    // ---------------------------------------------------------------- casts and element access

    @Test
    void castBetweenEveryPairOfDtypes() {
        Random rnd = Seeds.random(14);
        for (DType from : NUMERIC) {
            Tensor src = castSource(rnd, from);
            for (DType to : NUMERIC) {
                Tensor dst = src.cast(to);
                String what = from + " -> " + to + " (" + (src.isContiguous() ? "contiguous" : "strided") + ")";
                assertEquals(to, dst.dtype());
                assertEquals(src.shape(), dst.shape());
                if (from == to) {
                    assertSame(src, dst, what);
                    continue;
                }
                assertTrue(dst.isContiguous());
                double[] srcDoubles = src.toDoubleArray();
                long[] srcLongs = src.toLongArray(); // exact for I64 beyond 2^53
                double[] gotDoubles = dst.toDoubleArray();
                long[] gotLongs = dst.toLongArray();
                for (int i = 0; i < gotDoubles.length; i++) {
                    if (to.isFloating()) {
                        double expected = from.isFloating() ? ReferenceRounding.toFloating(to, srcDoubles[i])
                                : ReferenceRounding.toFloating(to, srcLongs[i]);
                        assertEquals(expected, gotDoubles[i], what + " element " + i);
                    } else {
                        long expected = from.isFloating() ? ReferenceRounding.toInteger(to, srcDoubles[i])
                                : ReferenceRounding.toInteger(to, srcLongs[i]);
                        assertEquals(expected, gotLongs[i], what + " element " + i);
                    }
                }
            }
        }
    }

    /**
     * Values that exercise rounding, truncation and saturation: fractions of both signs, magnitudes past U8, I32,
     * f16 and 2^53, and for floats the specials; every other source is a strided (transposed) view.
     */
    private static Tensor castSource(Random rnd, DType dtype) {
        int n = 48;
        Shape shape = Shape.of(6, 8);
        Tensor t;
        if (dtype.isFloating()) {
            double[] v = new double[n];
            double[] specials = {Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, -0.0, 255.5, 256, -1.5, 1e10, -3e9, 70000};
            for (int i = 0; i < n; i++) {
                v[i] = i < specials.length ? specials[i] : rnd.nextGaussian() * Math.pow(10, rnd.nextInt(11));
            }
            t = Tensor.fromArray(v, shape, dtype, Device.CPU);
        } else {
            long[] v = new long[n];
            long[] specials = {0, -1, 255, 256, Integer.MAX_VALUE + 1L, Integer.MIN_VALUE - 1L, (1L << 53) + 1, Long.MAX_VALUE, Long.MIN_VALUE, 65520,
                    // just above a tie of BF16 / F32 where a detour through double lands on the tie itself
                    (1L << 60) + (1L << 52) + 1, -((1L << 60) + (1L << 36) + 1)};
            for (int i = 0; i < n; i++) {
                v[i] = i < specials.length ? specials[i] : rnd.nextLong() >> rnd.nextInt(64);
            }
            t = Tensor.fromArray(v, shape, dtype, Device.CPU);
        }
        return rnd.nextBoolean() ? t : t.reshape(8, 6).transpose(0, 1);
    }

    @Test
    void stridedCopyOfLongsIsExact() {
        Random rnd = Seeds.random(17);
        long[] v = new long[12];
        for (int i = 0; i < v.length; i++) {
            v[i] = (1L << 62) + rnd.nextInt(1000); // beyond 2^53, where doubles would merge neighbours
        }
        Tensor t = Tensor.fromArray(v, Shape.of(3, 4), DType.I64, Device.CPU).transpose(0, 1);
        long[] got = t.contiguous().toLongArray();
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 3; j++) {
                assertEquals(v[j * 4 + i], got[i * 3 + j]);
            }
        }
    }

    @Test
    void itemReadsTheOnlyElement() {
        Random rnd = Seeds.random(15);
        HostArray h = HostArray.random(rnd, new long[]{4, 5}, -10, 10);
        Tensor t = h.toTensor(DType.F64);
        for (int trial = 0; trial < 5; trial++) {
            int i = rnd.nextInt(4);
            int j = rnd.nextInt(5);
            assertEquals(h.at(i, j), t.slice(0, i, i + 1).slice(1, j, j + 1).item());
        }
        double v = rnd.nextDouble();
        assertEquals(v, Tensor.full(Shape.scalar(), v, DType.F64, Device.CPU).item());
        assertThrows(ShapeException.class, t::item);
    }

    @Test
    void toTheSameDeviceIsIdentity() {
        Tensor t = Tensor.zeros(Shape.of(2, 2), DType.F32, Device.CPU);
        assertSame(t, t.to(Device.CPU));
    }

    // ---------------------------------------------------------------- random

    @Test
    void randomFillsFollowTheCounterFormulas() {
        Random rnd = Seeds.random(16);
        for (DType d : FLOATING) {
            long seed = rnd.nextLong();
            Shape shape = Shape.of(RandomShapes.shape(rnd, 1, 3));
            double[] normal = Tensor.normal(shape, d, Device.CPU, seed, 0.5, 2).toDoubleArray();
            double[] uniform = Tensor.uniform(shape, d, Device.CPU, seed, -1, 3).toDoubleArray();
            for (int i = 0; i < normal.length; i++) {
                assertEquals(ReferenceRounding.toFloating(d, CounterRng.normal(seed, i, 0.5, 2)), normal[i], d + " normal " + i);
                assertEquals(ReferenceRounding.toFloating(d, CounterRng.uniform(seed, i, -1, 3)), uniform[i], d + " uniform " + i);
            }
        }
    }

    @Test
    void sameSeedSameValuesOtherSeedOtherValues() {
        Shape shape = Shape.of(50, 40);
        for (DType d : FLOATING) {
            double[] a = Tensor.randn(shape, d, Device.CPU, 42).toDoubleArray();
            double[] b = Tensor.randn(shape, d, Device.CPU, 42).toDoubleArray();
            double[] c = Tensor.randn(shape, d, Device.CPU, 43).toDoubleArray();
            assertArrayEquals(a, b, d + " same seed");
            int same = 0;
            for (int i = 0; i < a.length; i++) {
                same += a[i] == c[i] ? 1 : 0;
            }
            // low-precision values coincide by chance now and then, never wholesale
            assertTrue(same < a.length / 10, d + ": " + same + " of " + a.length + " equal across seeds");
        }
    }

    private static final int SAMPLES = 100_000;

    @Test
    void normalHasTheRequestedMeanAndStd() {
        double mean = 1.5;
        double std = 2.0;
        for (DType d : FLOATING) {
            double[] v = Tensor.normal(Shape.of(SAMPLES), d, Device.CPU, 7, mean, std).toDoubleArray();
            double m = mean(v);
            double s = Math.sqrt(variance(v, m));
            // 5 standard errors: the mean's is std/sqrt(n), the standard deviation's about std/sqrt(2n)
            assertEquals(mean, m, 5 * std / Math.sqrt(SAMPLES), d + " mean");
            assertEquals(std, s, 5 * std / Math.sqrt(2.0 * SAMPLES) + TestTensors.ulp(d, std), d + " std");
        }
    }

    @Test
    void uniformStaysInRangeWithTheRightMoments() {
        double lo = -2;
        double hi = 5;
        for (DType d : FLOATING) {
            double[] v = Tensor.uniform(Shape.of(SAMPLES), d, Device.CPU, 9, lo, hi).toDoubleArray();
            for (double x : v) {
                // rounding to a short dtype may land on hi itself; F64 never does
                assertTrue(x >= lo && (d == DType.F64 ? x < hi : x <= hi), d + " value " + x);
            }
            double sd = (hi - lo) / Math.sqrt(12);
            double m = mean(v);
            assertEquals((lo + hi) / 2, m, 5 * sd / Math.sqrt(SAMPLES), d + " mean");
            assertEquals(sd, Math.sqrt(variance(v, m)), 5 * sd / Math.sqrt(SAMPLES) + TestTensors.ulp(d, hi), d + " std");
        }
    }

    private static double mean(double[] v) {
        double s = 0;
        for (double x : v) {
            s += x;
        }
        return s / v.length;
    }


    /**
     * emptyTransposed: the shape asked for, laid out with the two axes swapped (its transpose is contiguous), and it
     * owns its storage: closing it frees it, so a view taken of it is closed too (a transposed view of a contiguous
     * allocation would leave the storage to its unreachable owner until the scope closes).
     */
    @Test
    void emptyTransposedOwnsItsTransposedStorage() {
        Tensor t = Tensor.emptyTransposed(Shape.of(2, 3, 5, 4), 1, 2, DType.F32, Device.CPU);
        assertEquals(Shape.of(2, 3, 5, 4), t.shape());
        assertArrayEquals(new long[] {60, 4, 12, 1}, t.strides());
        assertFalse(t.isContiguous());
        assertTrue(t.transpose(1, 2).isContiguous());
        Tensor view = t.transpose(1, 2);
        t.close();
        assertTrue(t.isClosed());
        assertTrue(view.isClosed(), "closing it freed the storage its views read");
    }
    private static double variance(double[] v, double mean) {
        double s = 0;
        for (double x : v) {
            s += (x - mean) * (x - mean);
        }
        return s / (v.length - 1);
    }
}

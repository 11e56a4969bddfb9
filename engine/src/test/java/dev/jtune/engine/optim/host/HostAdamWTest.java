package dev.jtune.engine.optim.host;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Numerics;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The host AdamW: the Vector API path equals the fp32 scalar reference bit for bit (any length and start, so every
 * tail; bf16 and fp32 gradients; scaled gradients; both lerp branches; the bf16 weights), and the fp32 update is
 * within fp32 rounding of the double reference {@link AdamWKernel.Cpu}.
 */
class HostAdamWTest {

    /** Random master, moments and gradient for n elements, in native memory. */
    private record Data(MemorySegment master, MemorySegment m, MemorySegment v, MemorySegment grad, DType gradType, MemorySegment out) {
        static Data random(Arena arena, Random rnd, int n, DType gradType) {
            Data d = new Data(arena.allocate(4L * n, 64), arena.allocate(4L * n, 64), arena.allocate(4L * n, 64),
                    arena.allocate(gradType.bytesFor(n), 64), gradType, arena.allocate(2L * n, 64));
            for (int i = 0; i < n; i++) {
                d.master.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rnd.nextGaussian() * 0.05));
                d.m.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rnd.nextGaussian() * 1e-3));
                d.v.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) Math.abs(rnd.nextGaussian() * 1e-6));
                float g = (float) (rnd.nextGaussian() * Math.pow(10, -rnd.nextInt(6)));
                if (i % 97 == 5) {
                    g = 0; // v and m may stay at zero: denom = eps
                }
                if (gradType == DType.BF16) {
                    d.grad.setAtIndex(ValueLayout.JAVA_SHORT, i, Numerics.floatToBf16(g));
                } else {
                    d.grad.setAtIndex(ValueLayout.JAVA_FLOAT, i, g);
                }
            }
            d.out.fill((byte) 0x55);
            return d;
        }

        Data copy(Arena arena) {
            return new Data(dup(arena, master), dup(arena, m), dup(arena, v), dup(arena, grad), gradType, dup(arena, out));
        }

        HostAdamW.Buffers buffers(boolean weights16) {
            return new HostAdamW.Buffers(master, m, v, grad, gradType, weights16 ? out : null);
        }

        private static MemorySegment dup(Arena arena, MemorySegment s) {
            return arena.allocate(s.byteSize(), 64).copyFrom(s);
        }
    }

    private static AdamWStep randomStep(Random rnd) {
        double beta1 = rnd.nextInt(4) == 0 ? 0.3 : 0.9; // beta1 < 0.5 takes the other lerp branch
        return new AdamWStep(Math.pow(10, -2 - rnd.nextInt(3)), beta1, 0.999, 1e-8, rnd.nextBoolean() ? 0.01 : 0.0, 1 + rnd.nextInt(50));
    }

    @Test
    void theVectorPathIsBitForBitTheScalarReferenceForEveryLengthAndStart() {
        assertTrue(HostAdamW.vectorized(), "the tests run with --add-modules jdk.incubator.vector (surefire's argLine): "
                + "without it this test would compare the scalar path with itself");
        Random rnd = Seeds.random();
        for (int trial = 0; trial < 60; trial++) {
            int n = trial < 40 ? trial + 1 : 1 + rnd.nextInt(5000);
            DType gradType = rnd.nextBoolean() ? DType.BF16 : DType.F32;
            boolean weights16 = rnd.nextBoolean();
            double gradScale = rnd.nextBoolean() ? 1.0 : 0.37;
            AdamWStep step = randomStep(rnd);
            HostAdamW.Scalars s = HostAdamW.Scalars.of(step, gradScale);
            int from = rnd.nextInt(Math.min(n, 19));
            try (Arena arena = Arena.ofShared()) {
                Data a = Data.random(arena, rnd, n, gradType);
                Data b = a.copy(arena);
                HostAdamW.stepScalar(a.buffers(weights16), from, n, s);
                HostAdamW.step(b.buffers(weights16), from, n, s);
                String what = "n " + n + " from " + from + " " + gradType + " weights16 " + weights16 + " scale " + gradScale + " " + step;
                assertSameBytes(a.master, b.master, "master, " + what);
                assertSameBytes(a.m, b.m, "m, " + what);
                assertSameBytes(a.v, b.v, "v, " + what);
                assertSameBytes(a.out, b.out, "bf16 weights, " + what);
                assertSameBytes(a.grad, b.grad, "the gradient is only read, " + what);
            }
        }
    }

    @Test
    void aRangeSplitOverEveryCoreEqualsTheScalarReference() {
        Random rnd = Seeds.random();
        int n = (1 << 20) + 37;
        AdamWStep step = new AdamWStep(1e-3, 0.9, 0.999, 1e-8, 0.01, 3);
        try (Arena arena = Arena.ofShared()) {
            Data a = Data.random(arena, rnd, n, DType.BF16);
            Data b = a.copy(arena);
            HostAdamW.stepScalar(a.buffers(true), 0, n, HostAdamW.Scalars.of(step, 1));
            HostAdamW.step(b.buffers(true), 0, n, HostAdamW.Scalars.of(step, 1));
            assertSameBytes(a.master, b.master, "master");
            assertSameBytes(a.out, b.out, "bf16 weights");
            assertSameBytes(a.v, b.v, "v");
        }
    }

    @Test
    void bf16WeightsRoundToNearestEvenLikeNumerics() {
        // ties and NaN: the weights written are exactly Numerics.floatToBf16 of the new master
        Random rnd = Seeds.random();
        int n = 1000;
        try (Arena arena = Arena.ofShared()) {
            Data d = Data.random(arena, rnd, n, DType.F32);
            for (int i = 0; i < n; i += 7) {
                d.master.setAtIndex(ValueLayout.JAVA_FLOAT, i, Float.intBitsToFloat(0x3F808000 | (rnd.nextInt(2) << 16))); // ties
            }
            d.master.setAtIndex(ValueLayout.JAVA_FLOAT, 3, Float.NaN);
            HostAdamW.Scalars zero = HostAdamW.Scalars.of(new AdamWStep(0, 0.9, 0.999, 1e-8, 0, 1), 1); // lr 0: master unchanged
            HostAdamW.step(d.buffers(true), 0, n, zero);
            for (int i = 0; i < n; i++) {
                float p = d.master.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                assertEquals(Numerics.floatToBf16(p), d.out.getAtIndex(ValueLayout.JAVA_SHORT, i), "element " + i + " = " + p);
            }
            assertTrue(Float.isNaN(Numerics.bf16ToFloat(d.out.getAtIndex(ValueLayout.JAVA_SHORT, 3))));
        }
    }

    /** One step from the same state: fp32 host update against the double reference, within a few fp32 roundings. */
    @Test
    void theFp32UpdateIsWithinFp32RoundingOfTheDoubleReference() {
        Random rnd = Seeds.random();
        for (int trial = 0; trial < 12; trial++) {
            int n = 1 + rnd.nextInt(3000);
            DType gradType = trial % 2 == 0 ? DType.BF16 : DType.F32;
            AdamWStep step = randomStep(rnd);
            try (Arena arena = Arena.ofShared(); Scope scope = Scope.open("reference")) {
                Data d = Data.random(arena, rnd, n, gradType);
                Tensor p = Tensor.fromSegment(d.master, Shape.of(n), DType.F32, Device.CPU);
                Tensor m = Tensor.fromSegment(d.m, Shape.of(n), DType.F32, Device.CPU);
                Tensor v = Tensor.fromSegment(d.v, Shape.of(n), DType.F32, Device.CPU);
                Tensor g = Tensor.fromSegment(d.grad, Shape.of(n), gradType, Device.CPU);
                float[] p0 = p.toFloatArray();
                float[] m0 = m.toFloatArray();
                float[] v0 = v.toFloatArray();
                AdamWKernel.on(p).step(p, g, m, v, step, null);
                HostAdamW.step(d.buffers(true), 0, n, HostAdamW.Scalars.of(step, 1));
                float[] g0 = g.toFloatArray();
                float[] pr = p.toFloatArray();
                float[] mr = m.toFloatArray();
                float[] vr = v.toFloatArray();
                for (int i = 0; i < n; i++) {
                    float mh = d.m.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    float vh = d.v.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    float ph = d.master.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    String at = "element " + i + " of " + n + " " + gradType + " " + step + " from p " + p0[i] + " m " + m0[i] + " v " + v0[i];
                    // m's lerp rounds a difference, a product and a sum of operands up to max(|m|, |g|)
                    float mTolerance = 2 * Math.ulp(Math.max(Math.max(Math.abs(mr[i]), Math.abs(m0[i])), Math.abs(g0[i])));
                    within(mr[i], mh, mTolerance, "m, " + at);
                    // v = v * beta2 + w2 * g * g in fp32: beta2's and w2's casts, g * g, the product and the sum round once
                    // each (five half-ulps); the new term can sit in the binade above v's, where an ulp is twice v's
                    // (3 ulps seen at v 2.435e-4, just under 2^-12, seed 19810097263948)
                    within(vr[i], vh, 4 * Math.ulp(Math.max(Math.abs(vr[i]), Math.abs(v0[i]))), "v, " + at);
                    // p * decay and the final add round once each; the update term (a product, a quotient, a root, a
                    // sum, the scalars' casts) a few times more relative to its own size, plus what m's rounding moves it
                    double denom = Math.sqrt(vr[i]) / Math.sqrt(step.biasCorrection2()) + step.eps();
                    double stepSize = step.lr() / step.biasCorrection1();
                    double update = Math.abs(stepSize * mr[i] / denom);
                    double tolerance = 2 * Math.ulp(Math.abs(p0[i])) + 2 * Math.ulp(Math.abs(pr[i])) + 8 * Math.ulp((float) update)
                            + stepSize * mTolerance / denom;
                    within(pr[i], ph, tolerance, "p, " + at);
                }
            }
        }
    }

    @Test
    void rangesOutsideTheBuffersAreRefused() {
        try (Arena arena = Arena.ofShared()) {
            Data d = Data.random(arena, Seeds.random(1), 10, DType.BF16);
            HostAdamW.Scalars s = HostAdamW.Scalars.of(new AdamWStep(1e-3, 0.9, 0.999, 1e-8, 0, 1), 1);
            assertThrows(IndexOutOfBoundsException.class, () -> HostAdamW.step(d.buffers(true), 0, 11, s));
            assertThrows(IndexOutOfBoundsException.class, () -> HostAdamW.step(d.buffers(true), 5, 4, s));
            assertThrows(IllegalArgumentException.class, () -> new HostAdamW.Buffers(d.master, d.m, d.v, d.grad, DType.F16, null));
        }
    }

    private static void within(float expected, float actual, double tolerance, String what) {
        if (!(Math.abs(expected - actual) <= tolerance)) {
            fail(what + ": reference " + expected + ", host " + actual + ", difference " + Math.abs(expected - actual) + " > " + tolerance);
        }
    }

    private static void assertSameBytes(MemorySegment expected, MemorySegment actual, String what) {
        long at = expected.mismatch(actual);
        if (at >= 0) {
            fail(what + ": first differing byte " + at + " of " + expected.byteSize());
        }
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Ops;
import dev.jtune.engine.ReducedAxis;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.BinaryOp;
import dev.jtune.engine.ReduceOp;
import dev.jtune.engine.Transpose;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every cuda op against the cpu op on fresh random shapes and values. Allocations are poisoned (all bytes 0xFF:
 * NaN for floats) so an element a kernel forgets to write fails the comparison.
 */
@Tag("gpu")
class CudaParityTest {
    private static final Device GPU = Device.cuda(0);
    private static final DType[] FLOATS = {DType.F64, DType.F32, DType.BF16, DType.F16};

    private Scope scope;
    private Random rnd;

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @BeforeEach
    void open(TestInfo info) {
        scope = Scope.open(info.getDisplayName());
        rnd = Seeds.random();
    }

    @AfterEach
    void close() {
        scope.close();
    }

    /** Relative tolerance of one op's output in {@code dtype} (its rounding plus accumulation-order effects). */
    static double tolerance(DType dtype) {
        return switch (dtype) {
            case F64 -> 1e-12;
            case F32 -> 2e-6;
            case BF16 -> 1e-2;
            case F16 -> 2e-3;
            default -> 0;
        };
    }

    /** ||x - ref|| / ||ref||, failing on any NaN in x that ref does not have. */
    static void assertClose(Tensor ref, Tensor x, double tol, String what) {
        assertEquals(ref.shape(), x.shape(), what + ": shape");
        double[] r = ref.toDoubleArray();
        double[] v = x.toDoubleArray();
        double num = 0;
        double den = 0;
        for (int i = 0; i < r.length; i++) {
            if (Double.isNaN(r[i]) != Double.isNaN(v[i])) {
                throw new AssertionError(what + ": element " + i + " is " + v[i] + ", reference " + r[i] + " (unwritten?)");
            }
            if (Double.isNaN(r[i]) || (Double.isInfinite(r[i]) && r[i] == v[i])) {
                continue;
            }
            num += (v[i] - r[i]) * (v[i] - r[i]);
            den += r[i] * r[i];
        }
        double rel = Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
        assertTrue(rel <= tol, what + ": relative error " + rel + " > " + tol);
    }

    private Shape randomShape(int rank, int maxDim) {
        long[] d = new long[rank];
        for (int i = 0; i < rank; i++) {
            d[i] = 1 + rnd.nextInt(maxDim);
        }
        return Shape.of(d);
    }

    private Tensor cpuRandom(Shape shape, DType dtype) {
        return Tensor.uniform(shape, dtype, Device.CPU, rnd.nextLong(), -2, 2);
    }

    @Test
    void poisonedAllocationsReadAsNaN() {
        // the premise of every comparison below: an element no kernel wrote is NaN, not a stale value
        for (DType t : FLOATS) {
            for (double v : Tensor.empty(randomShape(2, 50), t, GPU).toDoubleArray()) {
                assertTrue(Double.isNaN(v), t + " poison reads as " + v);
            }
        }
    }

    @Test
    void fillAndRandomMatchTheCpuGenerator() {
        for (DType t : DType.values()) {
            if (t == DType.NF4) {
                continue;
            }
            Shape s = randomShape(2, 300);
            double v = t.isFloating() ? rnd.nextGaussian() * 100 : rnd.nextInt(200);
            assertClose(Tensor.full(s, v, t, Device.CPU), Tensor.full(s, v, t, GPU), 0, "fill " + t);
        }
        for (DType t : FLOATS) {
            Shape s = randomShape(3, 60);
            long seed = rnd.nextLong();
            assertClose(Tensor.normal(s, t, Device.CPU, seed, 0.5, 2), Tensor.normal(s, t, GPU, seed, 0.5, 2), tolerance(t), "normal " + t);
            assertClose(Tensor.uniform(s, t, Device.CPU, seed, -3, 1), Tensor.uniform(s, t, GPU, seed, -3, 1), tolerance(t), "uniform " + t);
        }
    }

    @Test
    void transfersRoundTripIncludingChunkedOnes() {
        for (Shape s : new Shape[] {Shape.of(7), Shape.of(3, 1000, 4321)}) { // the second spans several 16 MiB chunks
            Tensor c = cpuRandom(s, DType.F32);
            Tensor back = c.to(GPU).to(Device.CPU);
            assertClose(c, back, 0, "round trip " + s);
        }
    }

    @Test
    void castsBetweenEveryPairOfDtypesOnStridedViews() {
        for (DType from : DType.values()) {
            for (DType to : DType.values()) {
                if (from == DType.NF4 || to == DType.NF4) {
                    continue;
                }
                Shape s = randomShape(3, 20);
                // values beyond the integer ranges check truncation and saturation
                Tensor src = Tensor.uniform(s, DType.F64, Device.CPU, rnd.nextLong(), -400, 400).cast(from);
                Tensor view = src.transpose(0, 2).slice(1, 0, Math.max(1, s.dim(1) / 2 + 1));
                Tensor ref = view.cast(to);
                Tensor got = view.to(GPU).cast(to);
                Tensor gotStrided = src.to(GPU).transpose(0, 2).slice(1, 0, Math.max(1, s.dim(1) / 2 + 1)).cast(to);
                assertClose(ref, got, 0, "cast " + from + " -> " + to);
                assertClose(ref, gotStrided, 0, "strided cast " + from + " -> " + to);
            }
        }
    }

    /**
     * accumulateInto (a 16-bit gradient into an fp32 one, as backward does for a cast leaf) for every pair of floating
     * dtypes, from strided views: the same values as casting on the GPU and adding there, and the cpu's within one
     * rounding of the target.
     */
    @Test
    void accumulateConvertsEveryFloatPairFromStridedViews() {
        for (DType to : FLOATS) {
            for (DType from : FLOATS) {
                Shape s = randomShape(3, 20);
                Tensor target = cpuRandom(Shape.of(s.dim(2), s.dim(1), s.dim(0)), to);
                Tensor valueOnCpu = cpuRandom(s, from);
                Tensor value = valueOnCpu.to(GPU).transpose(0, 2);
                Tensor expected = target.copy();
                Ops.accumulateInto(expected, valueOnCpu.transpose(0, 2));
                Tensor got = target.to(GPU);
                Ops.accumulateInto(got, value);
                Tensor castThenAdd = target.to(GPU);
                Ops.addInPlace(castThenAdd, value.cast(to));
                assertClose(castThenAdd, got, 0, "accumulate " + from + " into " + to + " against cast and add");
                assertClose(expected, got, tolerance(to), "accumulate " + from + " into " + to + " against the cpu");
            }
        }
    }

    @Test
    void contiguousCopiesOfViews() {
        for (DType t : FLOATS) {
            Tensor c = cpuRandom(randomShape(4, 9), t);
            Tensor g = c.to(GPU);
            assertClose(c.permute(3, 1, 0, 2).contiguous(), g.permute(3, 1, 0, 2).contiguous(), 0, "permute " + t);
            assertClose(c.slice(1, 0, 1).expand(c.shape()).contiguous(), g.slice(1, 0, 1).expand(c.shape()).contiguous(), 0, "expand " + t);
        }
    }

    @Test
    void binaryOpsWithBroadcasting() {
        for (DType t : FLOATS) {
            for (BinaryOp op : BinaryOp.values()) {
                for (int trial = 0; trial < 3; trial++) {
                    Shape full = randomShape(1 + rnd.nextInt(4), 12);
                    long[] bd = full.toArray();
                    for (int i = 0; i < bd.length; i++) {
                        if (rnd.nextInt(3) == 0) {
                            bd[i] = 1;
                        }
                    }
                    Tensor a = cpuRandom(full, t);
                    // divisors kept away from zero
                    Tensor b = Tensor.uniform(Shape.of(bd), t, Device.CPU, rnd.nextLong(), 0.5, 2.0);
                    Tensor ref = Ops.binary(op, a, b);
                    Tensor got = Ops.binary(op, a.to(GPU), b.to(GPU));
                    assertClose(ref, got, tolerance(t), op + " " + t + " " + full + " with " + Shape.of(bd));
                    Tensor gotT = Ops.binary(op, a.to(GPU).transpose(0, -1), b.to(GPU).transpose(0, -1));
                    assertClose(Ops.binary(op, a.transpose(0, -1), b.transpose(0, -1)), gotT, tolerance(t), op + " transposed " + t);
                }
            }
        }
    }

    /**
     * Shapes whose innermost dimension is a multiple of 8 take the chunked kernels (16-byte accesses): contiguous,
     * transposed outer axes (attention's head transposes), outer broadcasting, every cast pair; and the same with a
     * one-element offset, which is misaligned and must fall back to the per-element kernels with the same result.
     */
    @Test
    void chunkedElementwiseKernelsOnAlignedInnerDimensions() {
        for (DType t : FLOATS) {
            for (int offset : new int[] {0, 1}) {
                Tensor base = cpuRandom(Shape.of(3 * 5 * 4 * 24 + 1), t);
                Tensor a = base.slice(0, offset, offset + 3 * 5 * 4 * 24).reshape(3, 5, 4, 24);
                Tensor b = cpuRandom(Shape.of(1, 5, 1, 24), t);
                Tensor ag = a.to(GPU);
                Tensor agView = base.to(GPU).slice(0, offset, offset + 3 * 5 * 4 * 24).reshape(3, 5, 4, 24);
                String what = t + " offset " + offset;
                assertClose(a.add(b), agView.add(b.to(GPU)), tolerance(t), "broadcast add " + what);
                assertClose(a.mul(a), agView.mul(agView), tolerance(t), "mul " + what);
                assertClose(a.scale(1.75), agView.scale(1.75), tolerance(t), "scale " + what);
                assertClose(a.transpose(1, 2).contiguous(), agView.transpose(1, 2).contiguous(), 0, "head transpose " + what);
                assertClose(a.transpose(1, 2).add(a.transpose(1, 2)), ag.transpose(1, 2).add(ag.transpose(1, 2)), tolerance(t), "strided add " + what);
                for (DType to : DType.values()) {
                    if (to != DType.NF4) {
                        assertClose(a.transpose(0, 1).cast(to), agView.transpose(0, 1).cast(to), 0, "cast to " + to + " " + what);
                    }
                }
            }
        }
    }

    @Test
    void scalarsOfRankZero() {
        for (DType t : FLOATS) {
            Tensor a = Tensor.full(Shape.scalar(), 3.5, t, Device.CPU);
            Tensor b = Tensor.full(Shape.of(1), -2.0, t, Device.CPU);
            for (BinaryOp op : BinaryOp.values()) {
                assertClose(Ops.binary(op, a, b), Ops.binary(op, a.to(GPU), b.to(GPU)), 0, op + " on scalars " + t);
                assertClose(Ops.binary(op, a, a), Ops.binary(op, a.to(GPU), a.to(GPU)), 0, op + " rank 0 " + t);
            }
            assertClose(a.scale(2), a.to(GPU).scale(2), 0, "scale rank 0 " + t);
            assertClose(a.cast(DType.F32), a.to(GPU).cast(DType.F32), 0, "cast rank 0 " + t);
        }
    }

    @Test
    void scale() {
        for (DType t : FLOATS) {
            Tensor a = cpuRandom(randomShape(3, 40), t);
            double f = rnd.nextGaussian() * 3;
            assertClose(a.scale(f), a.to(GPU).scale(f), tolerance(t), "scale " + t);
            assertClose(a.transpose(0, 1).scale(f), a.to(GPU).transpose(0, 1).scale(f), tolerance(t), "scale strided " + t);
        }
    }

    @Test
    void reductionsAlongEveryAxis() {
        for (DType t : FLOATS) {
            for (ReduceOp op : ReduceOp.values()) {
                Shape s = randomShape(3, 50);
                Tensor a = cpuRandom(s, t);
                Tensor g = a.to(GPU);
                for (int axis = 0; axis < 3; axis++) {
                    ReducedAxis keep = rnd.nextBoolean() ? ReducedAxis.KEEP : ReducedAxis.DROP;
                    // sums of many bf16 terms round once on the cpu (double) and once on the gpu (float)
                    double tol = op == ReduceOp.MAX ? 0 : Math.max(tolerance(t), t == DType.F32 ? 1e-5 : 0);
                    assertClose(Ops.reduce(op, a, axis, keep), Ops.reduce(op, g, axis, keep), tol, op + " " + t + " axis " + axis + " of " + s);
                }
            }
        }
        Tensor longRows = cpuRandom(Shape.of(3, 100_000), DType.F32);
        assertClose(longRows.sum(1), longRows.to(GPU).sum(1), 1e-5, "sum of 100k");
        assertClose(longRows.max(1), longRows.to(GPU).max(1), 0, "max of 100k");
    }

    /** 2-D column slices (cuBLASLt's leading dimensions) as operands and as an accumulated output, against the cpu. */
    @Test
    void matmulOfColumnSlices() {
        for (DType t : new DType[] {DType.F32, DType.BF16}) {
            for (boolean transB : new boolean[] {false, true}) {
                long m = 1 + rnd.nextInt(70);
                long k = 1 + rnd.nextInt(90);
                long n = 1 + rnd.nextInt(70);
                long pad = 8 * (1 + rnd.nextInt(3)); // keeps 16-byte alignment of the slices' starts, as fused parts have
                Tensor wideA = cpuRandom(Shape.of(m, k + pad), t);
                Tensor wideB = cpuRandom(transB ? Shape.of(n, k + pad) : Shape.of(k, n + pad), t);
                Tensor wideC = cpuRandom(Shape.of(m, n + pad), t);
                Transpose tr = transB ? Transpose.B : Transpose.NONE;
                Tensor a = wideA.slice(1, pad, pad + k);
                Tensor b = wideB.slice(1, pad, pad + (transB ? k : n));
                Tensor ga = wideA.to(GPU).slice(1, pad, pad + k);
                Tensor gb = wideB.to(GPU).slice(1, pad, pad + (transB ? k : n));
                String what = t + (transB ? " b^T" : "") + " [" + m + ", " + k + "] @ " + n + " pad " + pad;
                assertClose(Ops.matmul(a, b, tr), Ops.matmul(ga, gb, tr), tolerance(t), "column slices " + what);
                Tensor gc = wideC.to(GPU);
                Ops.addMatmulInto(wideC.slice(1, 0, n), a, b, tr);
                Ops.addMatmulInto(gc.slice(1, 0, n), ga, gb, tr);
                assertClose(wideC, gc, tolerance(t), "accumulated into a column slice " + what);
            }
        }
    }

    @Test
    void matmulEveryLayoutAndDtype() {
        for (DType t : FLOATS) {
            for (Transpose tr : Transpose.values()) {
                boolean ta = tr.a();
                boolean tb = tr.b();
                long m = 1 + rnd.nextInt(70);
                long k = 1 + rnd.nextInt(90);
                long n = 1 + rnd.nextInt(70);
                long batch = 1 + rnd.nextInt(3);
                Tensor a = cpuRandom(ta ? Shape.of(batch, k, m) : Shape.of(batch, m, k), t);
                Tensor b = cpuRandom(tb ? Shape.of(batch, n, k) : Shape.of(batch, k, n), t);
                Tensor b2 = cpuRandom(tb ? Shape.of(n, k) : Shape.of(k, n), t);
                double tol = tolerance(t) * (t == DType.F32 ? 5 : 1);
                assertClose(Ops.matmul(a, b, tr), Ops.matmul(a.to(GPU), b.to(GPU), tr), tol, "batched " + t + " ta=" + ta + " tb=" + tb);
                assertClose(Ops.matmul(a, b2, tr), Ops.matmul(a.to(GPU), b2.to(GPU), tr), tol, "shared b " + t + " ta=" + ta + " tb=" + tb);
                if (t == DType.BF16 || t == DType.F16) {
                    assertClose(Ops.matmul(a, b, tr, DType.F32), Ops.matmul(a.to(GPU), b.to(GPU), tr, DType.F32), 1e-5,
                            "fp32 out " + t);
                }
                // the scale as cuBLASLt's alpha, against the cpu's scaling in its double accumulator
                assertClose(Ops.matmul(a, b2, tr, 0.375), Ops.matmul(a.to(GPU), b2.to(GPU), tr, 0.375), tol, "scaled 0.375 " + t + " " + tr);
            }
        }
        // operands at odd offsets (sliced views) and transposed views that the engine passes without copying
        Tensor big = cpuRandom(Shape.of(65, 48), DType.BF16);
        Tensor gbig = big.to(GPU);
        Tensor a = big.slice(0, 1, 34);
        Tensor ga = gbig.slice(0, 1, 34);
        assertClose(a.matmul(big.transpose(0, 1)), ga.matmul(gbig.transpose(0, 1)), tolerance(DType.BF16), "views");
    }

    @Test
    void scopesReturnEveryByteOnTheGpu() {
        CudaBackend gpu = CudaBackend.get(0);
        try (Scope warm = Scope.open("warm-up")) { // the first matmul allocates cuBLASLt's long-lived workspace
            Tensor w = Tensor.randn(Shape.of(8, 8), DType.F32, GPU, 1);
            w.matmul(w);
        }
        gpu.synchronize();
        long before = gpu.memoryStats().allocated();
        try (Scope inner = Scope.open("inner")) {
            Tensor x = Tensor.randn(Shape.of(1024, 1024), DType.F32, GPU, 1);
            x.matmul(x).sum(0);
            assertTrue(gpu.memoryStats().allocated() >= before + (4L << 20));
        }
        assertEquals(before, gpu.memoryStats().allocated(), "allocated bytes after the scope closed");
    }
}

package dev.jtune.engine.cuda;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.fused.ActivationKernel;
import dev.jtune.engine.fused.AdamWKernel;
import dev.jtune.engine.fused.AttentionKernel;
import dev.jtune.engine.fused.CrossEntropyKernel;
import dev.jtune.engine.fused.EmbeddingKernel;
import dev.jtune.engine.fused.GradClipKernel;
import dev.jtune.engine.fused.RmsNormKernel;
import dev.jtune.engine.fused.RmsNormRopeKernel;
import dev.jtune.engine.fused.RopeKernel;
import dev.jtune.engine.fused.SoftmaxKernel;
import dev.jtune.engine.ops.RmsNorm;
import dev.jtune.engine.ops.RmsNormRope;
import dev.jtune.engine.ops.Rope;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

import java.util.Arrays;
import java.util.Random;

import static dev.jtune.engine.cuda.CudaParityTest.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fused ops' kernels ({@code fused.*Kernel}) on the cuda backend against the cpu reference, called directly on
 * both backends through {@code Backend.kernels} with the same inputs and outputs allocated here. Allocations are poisoned (NaN) so an
 * output element a kernel does not write fails the comparison. The cpu computes in double and rounds on store;
 * the GPU computes in fp32 (fp64 for F64), hence the tolerances of {@link #tol}.
 */
@Tag("gpu")
class CudaFusedParityTest {
    private static final Device GPU = Device.cuda(0);
    private static final Device CPU = Device.CPU;
    private static final DType[] FLOATS = {DType.F64, DType.F32, DType.BF16, DType.F16};
    private static final int IGNORE = -100;

    private Backend gpu;
    private Backend cpu;
    private Scope scope;
    private Random rnd;
    private long seed;

    @BeforeAll
    static void poison() {
        CudaBackend.get(0).poisonAllocations(true);
    }

    @BeforeEach
    void open(TestInfo info) {
        scope = Scope.open(info.getDisplayName());
        seed = Seeds.seed();
        rnd = new Random(seed);
        gpu = CudaBackend.get(0);
        cpu = CpuBackend.instance();
    }

    @AfterEach
    void close() {
        scope.close();
    }

    /**
     * Relative tolerance of a fused op's output in {@code dtype}, computed in fp32 on the GPU (fp64 for F64) against
     * the cpu's double: the output's rounding plus fp32 accumulation-order effects.
     */
    static double tol(DType dtype) {
        return switch (dtype) {
            case F64 -> 1e-12;
            case F32 -> 1e-5;
            case BF16 -> 1e-2;
            case F16 -> 2e-3;
            default -> 0;
        };
    }

    /** Statistics (rstd, lse, loss, row dots, gradient sums) are F32, F64 alongside F64 inputs. */
    static DType stat(DType input) {
        return input == DType.F64 ? DType.F64 : DType.F32;
    }

    private String tag(String what) {
        return what + " (seed " + seed + ")";
    }

    private Tensor rand(Shape s, DType t, double lo, double hi) {
        return Tensor.uniform(s, t, CPU, rnd.nextLong(), lo, hi);
    }

    private static Tensor cpuEmpty(Shape s, DType t) {
        return Tensor.empty(s, t, CPU);
    }

    private static Tensor gpuEmpty(Shape s, DType t) {
        return Tensor.empty(s, t, GPU);
    }

    private static Tensor g(Tensor cpuTensor) {
        return cpuTensor.to(GPU);
    }

    private Tensor ints(Shape s, int lo, int hi) {
        int[] v = new int[Math.toIntExact(s.numel())];
        for (int i = 0; i < v.length; i++) {
            v[i] = lo + rnd.nextInt(hi - lo);
        }
        return Tensor.fromArray(v, s, DType.I32, CPU);
    }

    /** "k of n differ (largest |a - b| x)" over two tensors' values. */
    private static String differing(Tensor a, Tensor b) {
        double[] x = a.toDoubleArray();
        double[] y = b.toDoubleArray();
        long k = 0;
        double worst = 0;
        for (int i = 0; i < x.length; i++) {
            if (Double.doubleToLongBits(x[i]) != Double.doubleToLongBits(y[i])) {
                k++;
                worst = Math.max(worst, Math.abs(x[i] - y[i]));
            }
        }
        return k + " of " + x.length + " differ (largest |a - b| " + worst + ")";
    }

    private static void assertSameBits(Tensor a, Tensor b, String what) {
        assertArrayEquals(a.toByteArray(), b.toByteArray(), what + ": not bitwise reproducible");
    }

    // ------------------------------------------------------------------ embedding

    @Test
    void embeddingGathersRows() {
        for (DType t : FLOATS) {
            for (long d : new long[] {1 + rnd.nextInt(41), 64, 640, 3}) {
                int v = 2 + rnd.nextInt(300);
                int n = 1 + rnd.nextInt(200);
                Tensor table = rand(Shape.of(v, d), t, -2, 2);
                Tensor ids = ints(Shape.of(n), 0, v);
                Tensor ref = cpuEmpty(Shape.of(n, d), t);
                cpu.kernels(EmbeddingKernel.OP).forward(ids, table, ref);
                Tensor got = gpuEmpty(Shape.of(n, d), t);
                gpu.kernels(EmbeddingKernel.OP).forward(g(ids), g(table), got);
                assertClose(ref, got, 0, tag("embedding " + t + " D=" + d));
                // a table view that starts one row in (other alignments), into an output view at an odd offset
                Tensor ids2 = ints(Shape.of(n), 0, v - 1);
                Tensor ref2 = cpuEmpty(Shape.of(n, d), t);
                cpu.kernels(EmbeddingKernel.OP).forward(ids2, table.slice(0, 1, v), ref2);
                Tensor outBig = gpuEmpty(Shape.of(n + 1, d), t);
                Tensor got2 = outBig.slice(0, 1, n + 1);
                gpu.kernels(EmbeddingKernel.OP).forward(g(ids2), g(table).slice(0, 1, v), got2);
                assertClose(ref2, got2, 0, tag("embedding of views " + t + " D=" + d));
            }
        }
    }

    @Test
    void embeddingOfAnOutOfRangeIdIsAZeroRowOnCuda() {
        Tensor table = rand(Shape.of(10, 24), DType.BF16, 1, 2);
        Tensor ids = Tensor.fromArray(new int[] {-1, 10, 3}, Shape.of(3), DType.I32, CPU);
        Tensor got = gpuEmpty(Shape.of(3, 24), DType.BF16);
        gpu.kernels(EmbeddingKernel.OP).forward(g(ids), g(table), got);
        double[] v = got.toDoubleArray();
        double[] row3 = table.slice(0, 3, 4).contiguous().toDoubleArray();
        for (int j = 0; j < 24; j++) {
            assertEquals(0.0, v[j], "id -1");
            assertEquals(0.0, v[24 + j], "id V");
            assertEquals(row3[j], v[48 + j], "id 3");
        }
    }

    @Test
    void embeddingBackwardAddsIntoTheTableDeterministically() {
        DType[][] pairs = {
                {DType.F64, DType.F64}, {DType.F32, DType.F32}, {DType.BF16, DType.BF16}, {DType.F16, DType.F16},
                {DType.BF16, DType.F32}, {DType.F16, DType.F32}, {DType.F64, DType.F32}};
        for (DType[] p : pairs) {
            DType gt = p[0];
            DType tt = p[1];
            for (int trial = 0; trial < 3; trial++) {
                int v = trial == 2 ? 50 : 1 + rnd.nextInt(300);
                long d = trial == 1 ? 640 : 1 + rnd.nextInt(70);
                int n = trial == 2 ? 3000 : 1 + rnd.nextInt(400); // 3000 tokens over 50 ids: long runs, many rank tiles
                Tensor ids = ints(Shape.of(n), 0, v);
                if (trial == 2) { // one hot id: a third of the tokens
                    int[] a = ids.toIntArray();
                    for (int i = 0; i < n; i += 3) {
                        a[i] = 7;
                    }
                    ids = Tensor.fromArray(a, Shape.of(n), DType.I32, CPU);
                }
                Tensor gradOut = rand(Shape.of(n, d), gt, -1, 1);
                Tensor table0 = rand(Shape.of(v, d), tt, -1, 1);
                Tensor ref = table0.copy();
                cpu.kernels(EmbeddingKernel.OP).backward(ids, gradOut, ref);
                Tensor got = g(table0);
                gpu.kernels(EmbeddingKernel.OP).backward(g(ids), g(gradOut), got);
                String what = "embeddingBackward " + gt + " -> " + tt + " N=" + n + " V=" + v + " D=" + d;
                assertClose(ref, got, Math.max(tol(tt), tol(gt)), tag(what));
                Tensor again = g(table0);
                gpu.kernels(EmbeddingKernel.OP).backward(g(ids), g(gradOut), again);
                assertSameBits(got, again, what);
            }
        }
    }

    // ------------------------------------------------------------------ rmsNorm

    private static final long[] NORM_WIDTHS = {640, 256, 1000, 1152, 2560, 7}; // 1000: F64 lines of 8 warps outgrow shared memory

    @Test
    void rmsNormForward() {
        for (long d : widthsWithAnOddOne()) {
            for (DType t : FLOATS) {
                for (DType w : t == DType.F32 ? new DType[] {t} : new DType[] {t, DType.F32}) {
                    for (boolean offsetOne : new boolean[] {true, false}) {
                        long n = 1 + rnd.nextInt(37);
                        Tensor x = rand(Shape.of(n, d), t, -3, 3);
                        Tensor weight = rand(Shape.of(d), w, -1, 1);
                        Tensor refOut = cpuEmpty(x.shape(), t);
                        Tensor refRstd = cpuEmpty(Shape.of(n), stat(t));
                        cpu.kernels(RmsNormKernel.OP).forward(x, weight, 1e-6, offsetOne, refOut, refRstd);
                        Tensor out = gpuEmpty(x.shape(), t);
                        Tensor rstd = gpuEmpty(Shape.of(n), stat(t));
                        gpu.kernels(RmsNormKernel.OP).forward(g(x), g(weight), 1e-6, offsetOne, out, rstd);
                        String what = "rmsNorm " + t + " w " + w + " D=" + d + " offsetOne=" + offsetOne;
                        assertClose(refOut, out, tol(t), tag(what + " out"));
                        assertClose(refRstd, rstd, tol(stat(t)), tag(what + " rstd"));
                        Tensor inPlace = g(x);
                        Tensor rstd2 = gpuEmpty(Shape.of(n), stat(t));
                        gpu.kernels(RmsNormKernel.OP).forward(inPlace, g(weight), 1e-6, offsetOne, inPlace, rstd2);
                        assertClose(refOut, inPlace, tol(t), tag(what + " in place"));
                    }
                }
            }
        }
    }

    private long[] widthsWithAnOddOne() {
        long[] d = Arrays.copyOf(NORM_WIDTHS, NORM_WIDTHS.length + 1);
        d[d.length - 1] = 2 * rnd.nextInt(600) + 1;
        return d;
    }

    @Test
    void rmsNormBackward() {
        for (long d : widthsWithAnOddOne()) {
            for (DType t : FLOATS) {
                for (DType w : t == DType.F32 ? new DType[] {t} : new DType[] {t, DType.F32}) {
                    boolean offsetOne = rnd.nextBoolean();
                    long n = d == 640 && t == DType.BF16 ? 3000 : 1 + rnd.nextInt(37); // many rows: many partial-sum slots
                    Tensor x = rand(Shape.of(n, d), t, -3, 3);
                    Tensor weight = rand(Shape.of(d), w, -1, 1);
                    Tensor gradOut = rand(Shape.of(n, d), t, -1, 1);
                    Tensor fwdOut = cpuEmpty(x.shape(), t);
                    Tensor rstd = cpuEmpty(Shape.of(n), stat(t));
                    cpu.kernels(RmsNormKernel.OP).forward(x, weight, 1e-6, offsetOne, fwdOut, rstd);

                    Tensor refGx = cpuEmpty(x.shape(), t);
                    Tensor refGw = cpuEmpty(Shape.of(d), stat(t));
                    cpu.kernels(RmsNormKernel.OP).backward(x, weight, rstd, offsetOne, gradOut, refGx, refGw);
                    Tensor gx = gpuEmpty(x.shape(), t);
                    Tensor gw = gpuEmpty(Shape.of(d), stat(t));
                    gpu.kernels(RmsNormKernel.OP).backward(g(x), g(weight), g(rstd), offsetOne, g(gradOut), gx, gw);
                    String what = "rmsNormBackward " + t + " w " + w + " N=" + n + " D=" + d + " offsetOne=" + offsetOne;
                    assertClose(refGx, gx, tol(t), tag(what + " gradX"));
                    assertClose(refGw, gw, tol(stat(t)), tag(what + " gradWeight"));

                    Tensor gw2 = gpuEmpty(Shape.of(d), stat(t));
                    gpu.kernels(RmsNormKernel.OP).backward(g(x), g(weight), g(rstd), offsetOne, g(gradOut), gpuEmpty(x.shape(), t), gw2);
                    assertSameBits(gw, gw2, what + " gradWeight");

                    Tensor inPlace = g(gradOut); // gradX may be gradOut; no weight gradient
                    gpu.kernels(RmsNormKernel.OP).backward(g(x), g(weight), g(rstd), offsetOne, inPlace, inPlace, null);
                    assertClose(refGx, inPlace, tol(t), tag(what + " in place, no gradWeight"));
                }
            }
        }
    }

    @Test
    void heldNormRopeRowsAreTheSharedMemoryPathBitForBit() {
        // the fused q/k norm and RoPE's registers path against its shared-memory path on the same rows: Gemma's q and k
        // at 2K (several rows a warp in the forward), every float dtype at a head size it holds, gradWeight too
        NormKernels k = CudaBackend.get(0).family(NormKernels.class,
                b -> new NormKernels(b.compiler(), b.stream(), b.context(), b.allocator()));
        for (DType t : FLOATS) {
            long d = t == DType.F64 ? 64 : t == DType.F32 ? 128 : 256;
            for (long h : new long[] {4, 1, 1 + rnd.nextInt(9)}) {
                long tt = h == 4 ? 2048 : 1 + rnd.nextInt(300);
                String what = "held rope rows " + t + " [1, " + tt + ", " + h + ", " + d + "]";
                Tensor x = g(rand(Shape.of(1, tt, h, d), t, -3, 3)).transpose(1, 2);
                Tensor w = g(rand(Shape.of(d), t, -1, 1));
                Tensor pos = g(ints(Shape.of(1, tt), 0, 32768));
                Tensor gradOut = g(rand(Shape.of(1, h, tt, d), t, -1, 1));
                assertTrue(NormKernels.heldRows(d, RowLaunch.perAccess(x)), what + " is held");
                Tensor[][] results = new Tensor[2][];
                for (int held = 0; held < 2; held++) {
                    Tensor out = gpuEmpty(Shape.of(1, h, tt, d), t);
                    Tensor rstd = gpuEmpty(Shape.of(tt * h), stat(t));
                    k.rmsNormRope(x, w, 1e-6, true, pos, 10_000, 1, out, rstd, held == 1);
                    Tensor gx = gpuEmpty(Shape.of(1, tt, h, d), t).transpose(1, 2);
                    Tensor gw = gpuEmpty(Shape.of(d), stat(t));
                    k.rmsNormRopeBackward(x, w, rstd, true, pos, 10_000, 1, gradOut, gx, gw, held == 1);
                    results[held] = new Tensor[] {out, rstd, gx.contiguous(), gw};
                }
                String[] names = {"out", "rstd", "gradX", "gradWeight"};
                for (int i = 0; i < names.length; i++) {
                    assertSameBits(results[0][i], results[1][i], tag(what + " " + names[i]));
                }
            }
        }
    }

    @Test
    void heldNormRowsAreTheTwoPassKernelsBitForBit() {
        // the _held kernels (a warp's row in registers) against the two-pass ones on the same rows: plain and residual,
        // forward and backward, with and without the weight gradient; Gemma 270M's 640 with many rows
        NormKernels k = CudaBackend.get(0).family(NormKernels.class,
                b -> new NormKernels(b.compiler(), b.stream(), b.context(), b.allocator()));
        for (DType t : new DType[] {DType.BF16, DType.F16, DType.F32}) {
            for (long d : new long[] {640, 256, 64, 8L * (1 + rnd.nextInt(40))}) {
                long n = d == 640 ? 3000 : 1 + rnd.nextInt(300);
                String what = "held rows " + t + " [" + n + ", " + d + "]";
                Tensor x = g(rand(Shape.of(n, d), t, -3, 3));
                Tensor h = g(rand(Shape.of(n, d), t, -3, 3));
                Tensor w = g(rand(Shape.of(d), t, -1, 1));
                Tensor gradOut = g(rand(Shape.of(n, d), t, -1, 1));
                Tensor gradSum = g(rand(Shape.of(n, d), t, -1, 1));
                Tensor[][] results = new Tensor[2][];
                for (int held = 0; held < 2; held++) {
                    Tensor out = gpuEmpty(x.shape(), t);
                    Tensor rstd = gpuEmpty(Shape.of(n), stat(t));
                    k.rmsNorm(x, null, null, w, 1e-6, true, out, rstd, held == 1);
                    Tensor sum = gpuEmpty(x.shape(), t);
                    Tensor rout = gpuEmpty(x.shape(), t);
                    Tensor rrstd = gpuEmpty(Shape.of(n), stat(t));
                    k.rmsNorm(x, h, sum, w, 1e-6, false, rout, rrstd, held == 1);
                    Tensor gx = gpuEmpty(x.shape(), t);
                    Tensor gw = gpuEmpty(Shape.of(d), stat(t));
                    k.rmsNormBackward(x, w, rstd, true, gradOut, null, gx, gw, held == 1);
                    Tensor rgx = gpuEmpty(x.shape(), t);
                    k.rmsNormBackward(sum, w, rrstd, false, gradOut, gradSum, rgx, null, held == 1);
                    results[held] = new Tensor[] {out, rstd, sum, rout, rrstd, gx, gw, rgx};
                }
                String[] names = {"out", "rstd", "residual sum", "residual out", "residual rstd", "gradX", "gradWeight", "residual gradX"};
                for (int i = 0; i < names.length; i++) {
                    assertSameBits(results[0][i], results[1][i], tag(what + " " + names[i]));
                }
            }
        }
    }

    // ------------------------------------------------------------------ activations

    @Test
    void geluAndGeglu() {
        for (DType t : FLOATS) {
            for (long n : new long[] {1 + rnd.nextInt(1000), 4096, 8L * rnd.nextInt(200) + 3, 1}) {
                Shape s = Shape.of(n);
                Tensor x = rand(s, t, -6, 6);
                Tensor up = rand(s, t, -2, 2);
                Tensor go = rand(s, t, -1, 1);
                String what = t + " n=" + n;
                double tolerance = tol(t);

                Tensor ref = cpuEmpty(s, t);
                cpu.kernels(ActivationKernel.OP).gelu(x, ref);
                Tensor got = gpuEmpty(s, t);
                gpu.kernels(ActivationKernel.OP).gelu(g(x), got);
                assertClose(ref, got, tolerance, tag("gelu " + what));
                Tensor inPlace = g(x);
                gpu.kernels(ActivationKernel.OP).gelu(inPlace, inPlace);
                assertClose(ref, inPlace, tolerance, tag("gelu in place " + what));

                Tensor refGx = cpuEmpty(s, t);
                cpu.kernels(ActivationKernel.OP).geluBackward(x, go, refGx);
                Tensor gx = gpuEmpty(s, t);
                gpu.kernels(ActivationKernel.OP).geluBackward(g(x), g(go), gx);
                assertClose(refGx, gx, tolerance, tag("geluBackward " + what));
                Tensor gInPlace = g(go);
                gpu.kernels(ActivationKernel.OP).geluBackward(g(x), gInPlace, gInPlace);
                assertClose(refGx, gInPlace, tolerance, tag("geluBackward in place " + what));

                Tensor refGeglu = cpuEmpty(s, t);
                cpu.kernels(ActivationKernel.OP).geglu(x, up, refGeglu);
                Tensor geglu = gpuEmpty(s, t);
                gpu.kernels(ActivationKernel.OP).geglu(g(x), g(up), geglu);
                assertClose(refGeglu, geglu, tolerance, tag("geglu " + what));

                Tensor refGg = cpuEmpty(s, t);
                Tensor refGu = cpuEmpty(s, t);
                cpu.kernels(ActivationKernel.OP).gegluBackward(x, up, go, refGg, refGu);
                Tensor gg = gpuEmpty(s, t);
                Tensor gu = gpuEmpty(s, t);
                gpu.kernels(ActivationKernel.OP).gegluBackward(g(x), g(up), g(go), gg, gu);
                assertClose(refGg, gg, tolerance, tag("gegluBackward gate " + what));
                assertClose(refGu, gu, tolerance, tag("gegluBackward up " + what));
            }
        }
        // GeGLU over the halves of a fused gate/up product [rows, 2 cols] (row-strided operands and gradients), with
        // row lengths that allow the vector path and one that does not
        for (DType t : FLOATS) {
            for (long cols : new long[] {64, 8L * (1 + rnd.nextInt(40)), 1 + 2L * rnd.nextInt(40)}) {
                long rows = 1 + rnd.nextInt(9);
                Shape s = Shape.of(rows, cols);
                String what = t + " rows=" + rows + " cols=" + cols + " (halves of a [rows, 2 cols] tensor)";
                Tensor fused = rand(Shape.of(rows, 2 * cols), t, -6, 6);
                Tensor go = rand(s, t, -1, 1);
                Tensor gpuFused = g(fused);
                Tensor ref = cpuEmpty(s, t);
                cpu.kernels(ActivationKernel.OP).geglu(fused.slice(1, 0, cols), fused.slice(1, cols, 2 * cols), ref);
                Tensor got = gpuEmpty(s, t);
                gpu.kernels(ActivationKernel.OP).geglu(gpuFused.slice(1, 0, cols), gpuFused.slice(1, cols, 2 * cols), got);
                assertClose(ref, got, tol(t), tag("geglu " + what));
                Tensor refGrad = cpuEmpty(Shape.of(rows, 2 * cols), t);
                cpu.kernels(ActivationKernel.OP).gegluBackward(fused.slice(1, 0, cols), fused.slice(1, cols, 2 * cols), go,
                        refGrad.slice(1, 0, cols), refGrad.slice(1, cols, 2 * cols));
                Tensor grad = gpuEmpty(Shape.of(rows, 2 * cols), t);
                gpu.kernels(ActivationKernel.OP).gegluBackward(gpuFused.slice(1, 0, cols), gpuFused.slice(1, cols, 2 * cols), g(go),
                        grad.slice(1, 0, cols), grad.slice(1, cols, 2 * cols));
                assertClose(refGrad, grad, tol(t), tag("gegluBackward " + what));
            }
        }
        // a 2-D view at an odd element offset: the scalar (unaligned) path
        Tensor big = rand(Shape.of(17 * 64 + 1), DType.BF16, -4, 4);
        Tensor ref = cpuEmpty(Shape.of(17, 64), DType.BF16);
        cpu.kernels(ActivationKernel.OP).gelu(big.slice(0, 1, 17 * 64 + 1).reshape(17, 64), ref);
        Tensor got = gpuEmpty(Shape.of(17, 64), DType.BF16);
        gpu.kernels(ActivationKernel.OP).gelu(g(big).slice(0, 1, 17 * 64 + 1).reshape(17, 64), got);
        assertClose(ref, got, tol(DType.BF16), tag("gelu of an unaligned view"));
    }

    // ------------------------------------------------------------------ rmsNorm then rope (the q/k path)

    /**
     * The fused q/k norm and rotation against the cpu reference (out, rstd, gradX, gradWeight), x the [B, H, T, D] view
     * of a [B, T, H, D] tensor as the attention path passes it; and, through the ops, against the GPU's unfused norm then
     * rope within the dtype's tolerance, printing how many elements differ at all (the same arithmetic, but the
     * compiler's fused multiply-adds may differ between the kernels: the first GPU run found F64 outputs one ulp apart).
     */
    @Test
    void rmsNormRopeIsTheNormThenTheRope() {
        for (DType t : FLOATS) {
            for (long d : new long[] {256, 64, 18, 640, 2 * (1 + rnd.nextInt(300))}) {
                // Gemma's q at 8K: its rows held in registers, more rows than the forward's grid (3 blocks an SM) has warps, so
                // each warp takes several with the next one's loads in flight; the backward's grid is cut to 4 blocks an SM
                boolean many = d == 256 && t == DType.BF16;
                long b = many ? 1 : 1 + rnd.nextInt(2);
                long tt = many ? 8192 : 1 + rnd.nextInt(40);
                long h = many ? 4 : 1 + rnd.nextInt(4);
                boolean offsetOne = rnd.nextBoolean();
                double base = rnd.nextBoolean() ? 10_000 : 1_000_000;
                double scaling = rnd.nextBoolean() ? 1.0 : 8.0;
                String what = "rmsNormRope " + t + " [B, T, H, D] = [" + b + ", " + tt + ", " + h + ", " + d + "] offsetOne=" + offsetOne
                        + " base " + base + " scaling " + scaling;
                Tensor x = rand(Shape.of(b, tt, h, d), t, -3, 3).transpose(1, 2);
                Tensor weight = rand(Shape.of(d), t, -1, 1);
                Tensor pos = ints(Shape.of(b, tt), 0, 32768);
                Tensor gradOut = rand(Shape.of(b, h, tt, d), t, -1, 1);
                Shape out = Shape.of(b, h, tt, d);
                Shape rows = Shape.of(b * tt * h);

                Tensor refOut = cpuEmpty(out, t);
                Tensor refRstd = cpuEmpty(rows, stat(t));
                cpu.kernels(RmsNormRopeKernel.OP).forward(x, weight, 1e-6, offsetOne, pos, base, scaling, refOut, refRstd);
                Tensor gx = g(x.transpose(1, 2)).transpose(1, 2); // the same view on the GPU
                Tensor got = gpuEmpty(out, t);
                Tensor rstd = gpuEmpty(rows, stat(t));
                gpu.kernels(RmsNormRopeKernel.OP).forward(gx, g(weight), 1e-6, offsetOne, g(pos), base, scaling, got, rstd);
                assertClose(refOut, got, tol(t), tag(what + " out"));
                assertClose(refRstd, rstd, tol(stat(t)), tag(what + " rstd"));

                Tensor refGx = Tensor.empty(Shape.of(b, tt, h, d), t, CPU).transpose(1, 2);
                Tensor refGw = cpuEmpty(Shape.of(d), stat(t));
                cpu.kernels(RmsNormRopeKernel.OP).backward(x, weight, refRstd, offsetOne, pos, base, scaling, gradOut, refGx, refGw);
                Tensor gotGx = gpuEmpty(Shape.of(b, tt, h, d), t).transpose(1, 2);
                Tensor gotGw = gpuEmpty(Shape.of(d), stat(t));
                gpu.kernels(RmsNormRopeKernel.OP).backward(gx, g(weight), rstd, offsetOne, g(pos), base, scaling, g(gradOut), gotGx, gotGw);
                assertClose(refGx.contiguous(), gotGx.contiguous(), tol(t), tag(what + " gradX"));
                assertClose(refGw, gotGw, gradWeightTolerance(t), tag(what + " gradWeight"));
                Tensor again = gpuEmpty(Shape.of(d), stat(t));
                gpu.kernels(RmsNormRopeKernel.OP).backward(gx, g(weight), rstd, offsetOne, g(pos), base, scaling, g(gradOut),
                        gpuEmpty(Shape.of(b, tt, h, d), t).transpose(1, 2), again);
                assertSameBits(gotGw, again, what + " gradWeight");

                // the ops on the GPU: fused against the unfused norm then rope
                RmsNorm.Scale scale = offsetOne ? RmsNorm.Scale.ONE_PLUS_WEIGHT : RmsNorm.Scale.WEIGHT;
                Tensor xs = g(x.transpose(1, 2)).requiresGrad(true);
                Tensor ws = g(weight).requiresGrad(true);
                Tensor fused = RmsNormRope.fused(xs.transpose(1, 2), ws, 1e-6, scale, g(pos), base, scaling);
                fused.backward(g(gradOut));
                Tensor fusedGx = xs.grad().copy(); // zeroGrad frees the gradients themselves
                Tensor fusedGw = ws.grad().copy();
                xs.zeroGrad();
                ws.zeroGrad();
                Tensor plain = Rope.apply(RmsNorm.apply(xs.transpose(1, 2), ws, 1e-6, scale), g(pos), base, scaling);
                plain.backward(g(gradOut));
                System.out.println(what + ": fused against unfused: out " + differing(plain, fused) + ", gradX "
                        + differing(xs.grad().contiguous(), fusedGx));
                assertClose(plain, fused, tol(t), tag(what + " fused against unfused, out"));
                assertClose(xs.grad().contiguous(), fusedGx, tol(t), tag(what + " fused against unfused, gradX"));
                assertClose(ws.grad(), fusedGw, tol(t), tag(what + " fused against unfused, gradWeight"));
            }
        }
    }

    /**
     * The fused backward's gradWeight against the cpu reference: fp32 sums (the stat dtype's bound) over a rotated-back
     * gradient that both sides store in x's dtype first, as the two ops do. In bf16 or fp16 that store rounds the GPU's
     * fp32 rotation and the reference's double one, which land on opposite sides of a rounding boundary for about
     * 2^-16 of the elements (the fp32 error over the 16-bit type's ulp); those terms then differ by one ulp (2^-8 in
     * bf16), which moves a sum of n random-signed terms by 2^-8 sqrt(2^-16 n) over its own sqrt(n): ~1.5e-5 (the first
     * GPU run: 1.26e-5 and 2.06e-5 at 8,192 rows). So 1e-4 there; fp32 and fp64 keep their own.
     */
    private static double gradWeightTolerance(DType t) {
        return t == DType.BF16 || t == DType.F16 ? 1e-4 : tol(stat(t));
    }

    // ------------------------------------------------------------------ rope

    @Test
    void ropeForwardAndInverse() {
        for (DType t : FLOATS) {
            for (long d : new long[] {2, 8, 18, 64, 256, 640}) { // 640: more pairs than a block has threads
                for (double base : new double[] {10_000, 1_000_000}) {
                    for (boolean inverse : new boolean[] {false, true}) {
                        double scaling = rnd.nextBoolean() ? 1.0 : 8.0; // Gemma 3 4B+'s global layers use linear scaling 8
                        long b = 1 + rnd.nextInt(2);
                        long h = 1 + rnd.nextInt(4);
                        long tt = 1 + rnd.nextInt(20);
                        Shape s = Shape.of(b, h, tt, d);
                        Tensor x = rand(s, t, -2, 2);
                        Tensor pos = ints(Shape.of(b, tt), 0, 32768); // includes large angles
                        Tensor ref = cpuEmpty(s, t);
                        cpu.kernels(RopeKernel.OP).rotate(x, pos, base, scaling, inverse, ref);
                        Tensor got = gpuEmpty(s, t);
                        gpu.kernels(RopeKernel.OP).rotate(g(x), g(pos), base, scaling, inverse, got);
                        String what = "rope " + t + " " + s + " base " + base + " scaling " + scaling + " inverse=" + inverse;
                        assertClose(ref, got, tol(t), tag(what));
                        Tensor inPlace = g(x);
                        gpu.kernels(RopeKernel.OP).rotate(inPlace, g(pos), base, scaling, inverse, inPlace);
                        assertClose(ref, inPlace, tol(t), tag(what + " in place"));
                    }
                }
            }
        }
        // the attention path's layouts: x the [B, H, T, D] view of a [B, T, H, D] tensor; out contiguous, or in x's layout
        for (DType t : FLOATS) {
            Tensor bthd = rand(Shape.of(2, 37, 4, 256), t, -2, 2);
            Tensor pos = ints(Shape.of(2, 37), 0, 32768);
            for (boolean inverse : new boolean[] {false, true}) {
                Tensor ref = cpuEmpty(Shape.of(2, 4, 37, 256), t);
                cpu.kernels(RopeKernel.OP).rotate(bthd.transpose(1, 2), pos, 10_000, 1.0, inverse, ref);
                Tensor got = gpuEmpty(Shape.of(2, 4, 37, 256), t);
                gpu.kernels(RopeKernel.OP).rotate(g(bthd).transpose(1, 2), g(pos), 10_000, 1.0, inverse, got);
                assertClose(ref, got, tol(t), tag("rope " + t + " of a transposed view, inverse=" + inverse));
                Tensor strided = gpuEmpty(Shape.of(2, 37, 4, 256), t).transpose(1, 2);
                gpu.kernels(RopeKernel.OP).rotate(g(bthd).transpose(1, 2), g(pos), 10_000, 1.0, inverse, strided);
                assertClose(ref, strided.contiguous(), tol(t), tag("rope " + t + " of a transposed view into its layout, inverse=" + inverse));
            }
        }
        // rotating back recovers x
        Shape s = Shape.of(2, 3, 11, 64);
        Tensor x = rand(s, DType.F32, -2, 2);
        Tensor pos = ints(Shape.of(2, 11), 0, 8192);
        Tensor y = gpuEmpty(s, DType.F32);
        gpu.kernels(RopeKernel.OP).rotate(g(x), g(pos), 10_000, 1.0, false, y);
        gpu.kernels(RopeKernel.OP).rotate(y, g(pos), 10_000, 1.0, true, y);
        assertClose(x, y, 1e-5, tag("rope then inverse"));
    }

    // ------------------------------------------------------------------ softmax, rowDot

    @Test
    void softmaxAndLogSoftmaxWithBackward() {
        for (DType t : FLOATS) {
            for (long c : new long[] {1, 7, 64, 1000, 1024, 1025, 4099, 8192}) {
                for (boolean log : new boolean[] {false, true}) {
                    long n = 1 + rnd.nextInt(20);
                    Shape s = Shape.of(n, c);
                    Tensor x = rand(s, t, -5, 5);
                    String what = (log ? "logSoftmax " : "softmax ") + t + " " + s;
                    Tensor ref = cpuEmpty(s, t);
                    cpu.kernels(SoftmaxKernel.OP).forward(x, log, ref);
                    Tensor got = gpuEmpty(s, t);
                    gpu.kernels(SoftmaxKernel.OP).forward(g(x), log, got);
                    assertClose(ref, got, tol(t), tag(what));
                    Tensor inPlace = g(x);
                    gpu.kernels(SoftmaxKernel.OP).forward(inPlace, log, inPlace);
                    assertClose(ref, inPlace, tol(t), tag(what + " in place"));

                    Tensor gy = rand(s, t, -1, 1);
                    Tensor refGx = cpuEmpty(s, t);
                    cpu.kernels(SoftmaxKernel.OP).backward(ref, gy, log, refGx);
                    Tensor gx = gpuEmpty(s, t);
                    gpu.kernels(SoftmaxKernel.OP).backward(g(ref), g(gy), log, gx);
                    assertClose(refGx, gx, tol(t), tag(what + " backward"));
                    Tensor gInPlace = g(gy);
                    gpu.kernels(SoftmaxKernel.OP).backward(g(ref), gInPlace, log, gInPlace);
                    assertClose(refGx, gInPlace, tol(t), tag(what + " backward in place"));
                }
            }
        }
    }

    @Test
    void rowDot() {
        for (DType t : FLOATS) {
            for (long c : new long[] {1, 3, 64, 256, 1000, 1025, 4099}) {
                long r = 1 + rnd.nextInt(50);
                Tensor a = rand(Shape.of(r, c), t, -2, 2);
                Tensor b = rand(Shape.of(r, c), t, -2, 2);
                Tensor ref = cpuEmpty(Shape.of(r), stat(t));
                cpu.kernels(AttentionKernel.OP).rowDot(a, b, ref);
                Tensor got = gpuEmpty(Shape.of(r), stat(t));
                gpu.kernels(AttentionKernel.OP).rowDot(g(a), g(b), got);
                assertClose(ref, got, tol(stat(t)), tag("rowDot " + t + " [" + r + ", " + c + "]"));
            }
        }
    }

    // ------------------------------------------------------------------ cross-entropy

    @Test
    void crossEntropyForwardBackwardAndCount() {
        for (DType t : FLOATS) {
            for (long v : new long[] {1, 7, 1000, 32000, 2 * rnd.nextInt(3000) + 1}) {
                checkCrossEntropy(t, 1 + rnd.nextInt(12), v);
            }
        }
        // the real vocabulary on a few rows: block-per-row streaming of 262,144 logits; odd V takes the scalar path
        checkCrossEntropy(DType.BF16, 3, 262_144);
        checkCrossEntropy(DType.F32, 2, 262_144);
        checkCrossEntropy(DType.BF16, 2, 262_143);
    }

    private void checkCrossEntropy(DType t, long n, long v) {
        String what = "crossEntropy " + t + " [" + n + ", " + v + "]";
        Tensor logits = rand(Shape.of(n, v), t, -4, 4);
        int[] lab = new int[(int) n];
        for (int i = 0; i < n; i++) {
            lab[i] = rnd.nextInt(4) == 0 ? IGNORE : rnd.nextInt((int) v);
        }
        lab[0] = (int) (v - 1); // at least one counted row, at the row's last element
        Tensor labels = Tensor.fromArray(lab, Shape.of(n), DType.I32, CPU);
        DType st = stat(t);
        Tensor refLoss = cpuEmpty(Shape.of(n), st);
        Tensor refLse = cpuEmpty(Shape.of(n), st);
        cpu.kernels(CrossEntropyKernel.OP).forward(logits, labels, IGNORE, refLoss, refLse);
        Tensor loss = gpuEmpty(Shape.of(n), st);
        Tensor lse = gpuEmpty(Shape.of(n), st);
        Tensor gLogits = g(logits);
        Tensor gLabels = g(labels);
        gpu.kernels(CrossEntropyKernel.OP).forward(gLogits, gLabels, IGNORE, loss, lse);
        assertClose(refLse, lse, tol(st), tag(what + " lse"));
        assertClose(refLoss, loss, tol(st), tag(what + " loss"));

        for (DType countType : new DType[] {DType.F32, st}) {
            Tensor refCount = cpuEmpty(Shape.of(1), countType);
            cpu.kernels(CrossEntropyKernel.OP).countNotEqual(labels, IGNORE, refCount);
            Tensor count = gpuEmpty(Shape.of(1), countType);
            gpu.kernels(CrossEntropyKernel.OP).countNotEqual(gLabels, IGNORE, count);
            assertClose(refCount, count, 0, tag(what + " countNotEqual " + countType));
        }

        Tensor scale = Tensor.fromArray(new double[] {1.0 / n}, Shape.of(1), DType.F32, CPU);
        Tensor refGrad = cpuEmpty(Shape.of(n, v), t);
        cpu.kernels(CrossEntropyKernel.OP).backward(logits, labels, refLse, IGNORE, scale, refGrad);
        Tensor grad = gpuEmpty(Shape.of(n, v), t);
        gpu.kernels(CrossEntropyKernel.OP).backward(gLogits, gLabels, g(refLse), IGNORE, g(scale), grad);
        assertClose(refGrad, grad, tol(t), tag(what + " backward"));
        gpu.kernels(CrossEntropyKernel.OP).backward(gLogits, gLabels, g(refLse), IGNORE, g(scale), gLogits); // in place
        assertClose(refGrad, gLogits, tol(t), tag(what + " backward in place"));
    }

    @Test
    void flatCastIsEachParametersCastBitForBit() {
        // nn.ComputeCopies' one launch: every float pair, parameters of sizes that leave alignment gaps
        for (DType from : FLOATS) {
            for (DType to : FLOATS) {
                if (from == to) {
                    continue;
                }
                java.util.SequencedMap<String, Tensor> cpuParams = new java.util.LinkedHashMap<>();
                java.util.SequencedMap<String, Tensor> gpuParams = new java.util.LinkedHashMap<>();
                for (int i = 0; i < 4; i++) {
                    Tensor p = rand(Shape.of(1 + rnd.nextInt(20), 1 + rnd.nextInt(700)), from, -70_000, 70_000);
                    cpuParams.put("p" + i, p);
                    gpuParams.put("p" + i, g(p));
                }
                dev.jtune.engine.optim.FlatLayout layout = dev.jtune.engine.optim.FlatLayout.ofParameters("test", cpuParams);
                Tensor ref = Tensor.zeros(Shape.of(layout.numel()), to, CPU);
                cpu.kernels(dev.jtune.engine.fused.FlatCastKernel.OP).cast(
                        new dev.jtune.engine.fused.ParameterTable(java.util.List.copyOf(cpuParams.values()), layout), ref);
                Tensor got = Tensor.zeros(Shape.of(layout.numel()), to, GPU);
                gpu.kernels(dev.jtune.engine.fused.FlatCastKernel.OP).cast(
                        new dev.jtune.engine.fused.ParameterTable(java.util.List.copyOf(gpuParams.values()), layout), got);
                assertSameBits(ref, got, "castFlat " + from + " -> " + to + " (seed " + seed + ")");
            }
        }
    }

    @Test
    void crossEntropyWithGradientInOnePass() {
        // loss_cluster.cu, whatever the default: a row over a cluster of 8 blocks, held in registers; Gemma's 262,144
        // (512 threads a block), the larger multimodal vocabulary 262,208 (544), f32 at 1,024 threads, rows of a
        // single chunk and rows whose blocks are mostly idle; the result in place and apart
        String before = System.getProperty(LossKernels.CLUSTER_PROPERTY);
        System.setProperty(LossKernels.CLUSTER_PROPERTY, "true");
        try {
            checkOnePass(DType.BF16, 3, 262_144);
            checkOnePass(DType.BF16, 2, 262_208);
            checkOnePass(DType.F32, 2, 262_144);
            checkOnePass(DType.F16, 1 + rnd.nextInt(12), 4096);
            checkOnePass(DType.F64, 1 + rnd.nextInt(12), 65_536);
            for (DType t : FLOATS) {
                for (long v : new long[] {16, 1000, 8 * (1 + rnd.nextInt(4000))}) {
                    checkOnePass(t, 1 + rnd.nextInt(12), v);
                }
            }
        } finally {
            if (before == null) {
                System.clearProperty(LossKernels.CLUSTER_PROPERTY);
            } else {
                System.setProperty(LossKernels.CLUSTER_PROPERTY, before);
            }
        }
    }

    private void checkOnePass(DType t, long n, long v) {
        String what = "crossEntropy in one pass " + t + " [" + n + ", " + v + "]";
        Tensor logits = rand(Shape.of(n, v), t, -4, 4);
        int[] lab = new int[(int) n];
        for (int i = 0; i < n; i++) {
            lab[i] = rnd.nextInt(4) == 0 ? IGNORE : rnd.nextInt((int) v);
        }
        lab[0] = (int) (v - 1); // the row's last element, held by the cluster's last chunk
        if (n > 1) {
            lab[1] = 0;
        }
        Tensor labels = Tensor.fromArray(lab, Shape.of(n), DType.I32, CPU);
        DType st = stat(t);
        Tensor scale = Tensor.fromArray(new double[] {1.0 / n}, Shape.of(1), st, CPU);
        Tensor refLoss = cpuEmpty(Shape.of(n), st);
        Tensor refLse = cpuEmpty(Shape.of(n), st);
        Tensor refGrad = cpuEmpty(Shape.of(n, v), t);
        cpu.kernels(CrossEntropyKernel.OP).forwardWithGradient(logits, labels, IGNORE, scale, refLoss, refLse, refGrad);

        LossKernels kernels = CudaBackend.get(0).family(LossKernels.class, b -> new LossKernels(b.compiler(), b.stream(), b.context()));
        Tensor gLogits = g(logits);
        Tensor grad = gpuEmpty(Shape.of(n, v), t);
        assertTrue(kernels.onePass(gLogits, grad), tag(what + ": the one-pass kernel was not chosen"));
        for (boolean inPlace : new boolean[] {false, true}) {
            Tensor loss = gpuEmpty(Shape.of(n), st);
            Tensor lse = gpuEmpty(Shape.of(n), st);
            Tensor out = inPlace ? gLogits : grad;
            gpu.kernels(CrossEntropyKernel.OP).forwardWithGradient(gLogits, g(labels), IGNORE, g(scale), loss, lse, out);
            String how = what + (inPlace ? " in place" : "");
            assertClose(refLse, lse, tol(st), tag(how + " lse"));
            assertClose(refLoss, loss, tol(st), tag(how + " loss"));
            assertClose(refGrad, out, tol(t), tag(how + " gradient"));
        }
    }

    @Test
    void crossEntropyBackwardOverAVocabularyBlock() {
        // CrossEntropy.linear's sliced backward: columns [v0, v0 + width) of [n, V] logits, with rows labelled inside
        // the block, before it, after it, and ignored; vectorised and scalar widths, warp and block rows
        for (DType t : FLOATS) {
            checkCrossEntropyBlock(t, 4 + rnd.nextInt(12), 1000, 256, 256);
            checkCrossEntropyBlock(t, 4 + rnd.nextInt(12), 1000, 1 + rnd.nextInt(300), 1 + rnd.nextInt(600));
            checkCrossEntropyBlock(t, 4 + rnd.nextInt(12), 1000, 0, 1000); // the whole row: today's call
        }
        checkCrossEntropyBlock(DType.BF16, 9, 65_536, 16_384, 16_384);
        checkCrossEntropyBlock(DType.F32, 9, 65_536, 49_152, 16_384); // the last slice
        checkCrossEntropyBlock(DType.BF16, 9, 40_001, 32_768, 7_233); // an odd last slice: the scalar path
    }

    private void checkCrossEntropyBlock(DType t, long n, long v, long v0, long width) {
        String what = "crossEntropy backward " + t + " [" + n + ", " + v + "] columns [" + v0 + ", " + (v0 + width) + ")";
        Tensor full = rand(Shape.of(n, v), t, -4, 4);
        int[] lab = new int[(int) n];
        for (int i = 0; i < n; i++) {
            int inside = (int) (v0 + rnd.nextInt((int) width));
            lab[i] = switch (i % 4) {
                case 0 -> IGNORE;
                case 1 -> inside;
                case 2 -> v0 > 0 ? rnd.nextInt((int) v0) : inside; // a label before the block
                default -> v0 + width < v ? (int) (v0 + width + rnd.nextInt((int) (v - v0 - width))) : inside; // after it
            };
        }
        Tensor labels = Tensor.fromArray(lab, Shape.of(n), DType.I32, CPU);
        DType st = stat(t);
        Tensor lse = cpuEmpty(Shape.of(n), st);
        cpu.kernels(CrossEntropyKernel.OP).forward(full, labels, IGNORE, cpuEmpty(Shape.of(n), st), lse);
        Tensor block = full.slice(1, v0, v0 + width).contiguous();
        Tensor scale = Tensor.fromArray(new double[] {1.0 / n}, Shape.of(1), DType.F32, CPU);
        Tensor refGrad = cpuEmpty(Shape.of(n, width), t);
        cpu.kernels(CrossEntropyKernel.OP).backward(block, v0, labels, lse, IGNORE, scale, refGrad);
        Tensor gBlock = g(block);
        Tensor grad = gpuEmpty(Shape.of(n, width), t);
        gpu.kernels(CrossEntropyKernel.OP).backward(gBlock, v0, g(labels), g(lse), IGNORE, g(scale), grad);
        assertClose(refGrad, grad, tol(t), tag(what));
        gpu.kernels(CrossEntropyKernel.OP).backward(gBlock, v0, g(labels), g(lse), IGNORE, g(scale), gBlock); // in place
        assertClose(refGrad, gBlock, tol(t), tag(what + " in place"));
    }

    // ------------------------------------------------------------------ attention softmax

    /** One block of scores: rows x cols with the masking parameters of attentionSoftmax. */
    private record Block(long rows, long cols, long rowStart, long rowsPerHead, long colStart, long window, String name) {
    }

    private static final Block[] BLOCKS = {
            new Block(37, 37, 0, 37, 0, 0, "causal, odd width"),
            new Block(64, 64, 0, 64, 0, 0, "causal, vectorised"),
            new Block(16, 96, 128, 16, 64, 0, "a later query block"),
            new Block(40, 40, 0, 40, 0, 7, "sliding window 7"),
            new Block(24, 24, 16, 8, 0, 0, "three stacked heads of 8 rows"),
            new Block(20, 33, 0, 20, 10, 0, "rows before the first key fully masked"),
            new Block(12, 1500, 1490, 12, 0, 1000, "long rows with a window (block per row)"),
            new Block(9, 2048, 2040, 9, 0, 0, "long causal rows"),
    };

    @Test
    void attentionSoftmaxMasksAndNormalises() {
        for (Block blk : BLOCKS) {
            for (DType pt : FLOATS) {
                checkAttention(blk, DType.F32, pt);
            }
            checkAttention(blk, DType.F64, DType.F64);
        }
    }

    private void checkAttention(Block blk, DType st, DType pt) {
        String what = "attentionSoftmax " + blk.name() + " scores " + st + " probs " + pt;
        double scale = 0.125 + rnd.nextDouble();
        Shape s = Shape.of(blk.rows(), blk.cols());
        Tensor scores = rand(s, st, -8, 8);
        Tensor refProbs = cpuEmpty(s, pt);
        Tensor refLse = cpuEmpty(Shape.of(blk.rows()), st);
        cpu.kernels(AttentionKernel.OP).maskedSoftmax(scores, blk.rowStart(), blk.rowsPerHead(), blk.colStart(), blk.window(), scale, refProbs, refLse, false);
        Tensor probs = gpuEmpty(s, pt);
        Tensor lse = gpuEmpty(Shape.of(blk.rows()), st);
        gpu.kernels(AttentionKernel.OP).maskedSoftmax(g(scores), blk.rowStart(), blk.rowsPerHead(), blk.colStart(), blk.window(), scale, probs, lse, false);
        // fp32 math for F32 scores whatever the probs dtype
        double probsTol = Math.max(tol(pt), tol(st));
        assertClose(refLse, lse, tol(st), tag(what + " lse"));
        assertClose(refProbs, probs, probsTol, tag(what + " probs"));
        if (blk.name().startsWith("rows before")) {
            double[] l = lse.toDoubleArray();
            assertEquals(Double.NEGATIVE_INFINITY, l[0], "a row without a visible key has lse -inf");
        }

        // with the saved lse read back instead of recomputed
        Tensor refProbs2 = cpuEmpty(s, pt);
        cpu.kernels(AttentionKernel.OP).maskedSoftmax(scores, blk.rowStart(), blk.rowsPerHead(), blk.colStart(), blk.window(), scale, refProbs2, refLse, true);
        Tensor probs2 = gpuEmpty(s, pt);
        Tensor lseIn = g(refLse);
        gpu.kernels(AttentionKernel.OP).maskedSoftmax(g(scores), blk.rowStart(), blk.rowsPerHead(), blk.colStart(), blk.window(), scale, probs2, lseIn, true);
        assertClose(refProbs2, probs2, probsTol, tag(what + " with lseIn"));
        assertClose(refLse, lseIn, 0, tag(what + " lseIn is not written"));
    }

    @Test
    void attentionSoftmaxBackward() {
        for (DType pt : FLOATS) {
            for (DType gt : FLOATS) {
                checkAttentionBackward(DType.F32, pt, gt);
            }
        }
        checkAttentionBackward(DType.F64, DType.F64, DType.F64);
    }

    private void checkAttentionBackward(DType st, DType pt, DType gt) {
        long r = 1 + rnd.nextInt(70);
        long c = 1 + rnd.nextInt(600);
        Shape s = Shape.of(r, c);
        double scale = 0.0625 + rnd.nextDouble();
        Tensor probs = rand(s, pt, 0, 1);
        Tensor gradProbs = rand(s, st, -1, 1);
        Tensor delta = rand(Shape.of(r), st, -1, 1);
        String what = "attentionSoftmaxBackward grad " + st + " probs " + pt + " gradScores " + gt + " " + s;
        Tensor ref = cpuEmpty(s, gt);
        cpu.kernels(AttentionKernel.OP).maskedSoftmaxBackward(probs, gradProbs, delta, scale, ref);
        Tensor got = gpuEmpty(s, gt);
        gpu.kernels(AttentionKernel.OP).maskedSoftmaxBackward(g(probs), g(gradProbs), g(delta), scale, got);
        double t = Math.max(tol(gt), st == DType.F64 || pt == DType.F64 ? tol(DType.F64) : tol(DType.F32));
        assertClose(ref, got, t, tag(what));
        if (pt == gt) { // gradScores may be probs
            Tensor inPlace = g(probs);
            gpu.kernels(AttentionKernel.OP).maskedSoftmaxBackward(inPlace, g(gradProbs), g(delta), scale, inPlace);
            assertClose(ref, inPlace, t, tag(what + " in place"));
        }
    }

    // ------------------------------------------------------------------ optimizer

    @Test
    void adamwOverSeveralSteps() {
        DType[][] pairs = {
                {DType.F32, DType.F32}, {DType.BF16, DType.BF16}, {DType.F16, DType.F16}, {DType.F64, DType.F64},
                {DType.BF16, DType.F32}, {DType.F16, DType.F32}, {DType.F64, DType.F32},
                {DType.F32, DType.BF16}}; // an F32 master copy stepped with a 16-bit gradient
        for (DType[] p : pairs) {
            for (boolean withScale : new boolean[] {false, true}) {
                checkAdamw(p[0], p[1], withScale, 1 + rnd.nextInt(5000));
            }
        }
        checkAdamw(DType.BF16, DType.F32, true, 1 << 20);
    }

    private void checkAdamw(DType pt, DType gt, boolean withScale, long n) {
        String what = "adamw param " + pt + " grad " + gt + (withScale ? " scaled" : "") + " n=" + n;
        Shape s = Shape.of(n);
        DType st = stat(pt);
        Tensor refP = rand(s, pt, -1, 1);
        Tensor p = g(refP);
        Tensor refM = Tensor.zeros(s, st, CPU);
        Tensor refV = Tensor.zeros(s, st, CPU);
        Tensor m = Tensor.zeros(s, st, GPU);
        Tensor v = Tensor.zeros(s, st, GPU);
        Tensor scale = withScale ? Tensor.fromArray(new double[] {0.37}, Shape.of(1), DType.F32, CPU) : null;
        for (long step = 1; step <= 5; step++) {
            AdamWStep hp = new AdamWStep(1e-2, 0.9, 0.999, 1e-8, 0.1, step);
            Tensor grad = rand(s, gt, -1, 1);
            cpu.kernels(AdamWKernel.OP).step(refP, grad, refM, refV, hp, scale);
            gpu.kernels(AdamWKernel.OP).step(p, g(grad), m, v, hp, scale == null ? null : g(scale));
            String at = what + " step " + step;
            assertClose(refM, m, tol(st), tag(at + " m"));
            assertClose(refV, v, tol(st), tag(at + " v"));
            assertClose(refP, p, tol(pt), tag(at + " param"));
        }
    }

    @Test
    void sumOfSquaresAccumulatesDeterministically() {
        for (DType t : FLOATS) {
            for (long n : new long[] {1, 7, 1000, (1 << 20) + 3, 5_000_000}) {
                for (DType outType : t == DType.F64 ? new DType[] {DType.F64, DType.F32} : new DType[] {DType.F32}) {
                    String what = "sumOfSquares " + t + " n=" + n + " into " + outType;
                    Tensor x = rand(Shape.of(n), t, -1, 1);
                    Tensor ref = Tensor.full(Shape.of(1), 3.5, outType, CPU);
                    cpu.kernels(GradClipKernel.OP).sumOfSquares(x, ref);
                    Tensor gx = g(x);
                    Tensor got = Tensor.full(Shape.of(1), 3.5, outType, GPU);
                    gpu.kernels(GradClipKernel.OP).sumOfSquares(gx, got);
                    assertClose(ref, got, tol(outType), tag(what));
                    Tensor again = Tensor.full(Shape.of(1), 3.5, outType, GPU);
                    gpu.kernels(GradClipKernel.OP).sumOfSquares(gx, again);
                    assertSameBits(got, again, what);
                    if (n > 1) { // a view at an odd offset: the unaligned path
                        Tensor refView = Tensor.zeros(Shape.of(1), outType, CPU);
                        cpu.kernels(GradClipKernel.OP).sumOfSquares(x.slice(0, 1, n), refView);
                        Tensor view = Tensor.zeros(Shape.of(1), outType, GPU);
                        gpu.kernels(GradClipKernel.OP).sumOfSquares(gx.slice(0, 1, n), view);
                        assertClose(refView, view, tol(outType), tag(what + " of an unaligned view"));
                    }
                }
            }
        }
    }

    @Test
    void clipCoefficient() {
        for (double ss : new double[] {0, 0.25, 1, 4, 1e6, 123.456, Double.NaN}) {
            for (double maxNorm : new double[] {1.0, 0.5, 10}) {
                for (DType t : new DType[] {DType.F32, DType.F64}) {
                    Tensor in = Tensor.fromArray(new double[] {ss}, Shape.of(1), t, CPU);
                    Tensor ref = cpuEmpty(Shape.of(1), t);
                    cpu.kernels(GradClipKernel.OP).clipCoefficient(in, maxNorm, ref);
                    Tensor got = gpuEmpty(Shape.of(1), t);
                    gpu.kernels(GradClipKernel.OP).clipCoefficient(g(in), maxNorm, got);
                    assertClose(ref, got, tol(t), tag("clipCoefficient ss=" + ss + " maxNorm=" + maxNorm + " " + t));
                    double c = got.item();
                    assertTrue(Double.isNaN(ss) ? Double.isNaN(c) : c > 0 && c <= 1, "coefficient " + c);
                }
            }
        }
    }
}

package dev.jtune.engine;

import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.engine.ops.Activations;
import dev.jtune.engine.ops.Dropout;
import dev.jtune.testing.Seeds;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link TiledCheckpoint} on a row-wise GeGLU block with dropout, {@code x + geglu(dropout(x) Wg, x Wu) Wd}: the output
 * and x's gradient equal the untiled ones bit for bit, the parameters' gradients within the bound of their changed
 * summation order, finite differences agree, and memory holds one tile's intermediates.
 */
class TiledCheckpointTest {
    private final Random rnd = Seeds.random();

    /** The block's parameters and its dropout seed. */
    private record Block(Tensor wg, Tensor wu, Tensor wd, long dropoutSeed) {
        static Block random(long d, long m, DType dtype, Device device, long seed) {
            return new Block(Tensor.randn(Shape.of(d, m), dtype, device, seed).requiresGrad(true),
                    Tensor.randn(Shape.of(d, m), dtype, device, seed + 1).requiresGrad(true),
                    Tensor.randn(Shape.of(m, d), dtype, device, seed + 2).requiresGrad(true), seed + 3);
        }

        Tensor apply(Tensor x) {
            return x.add(Activations.geglu(Dropout.apply(x, 0.25, dropoutSeed).matmul(wg), x.matmul(wu)).matmul(wd));
        }

        List<Tensor> parameters() {
            return List.of(wg, wu, wd);
        }
    }

    /**
     * fp32 on the cpu, 13 rows in tiles of 4 (4, 4, 4, 1). Rows are computed by the same ops either way, so the output,
     * the loss and x's gradient are the same bits. A parameter's gradient is a sum over rows: untiled one product
     * summed in double and rounded once to fp32; tiled, each tile's contribution c_j rounded to fp32, then added to
     * the gradient in fp32 (the first copied). With u = 2^-24, k tiles, A = the sum over rows of |term| and the double
     * sums' error at most n 2^-53 A each: |tiled - untiled| <= (k - 1) u (1 + u)^k sum|c_j| (the k - 1 additions)
     * + 2u sum|c_j| / (1 - u) (rounding each c_j and the untiled sum) + 3 n 2^-53 A. A is measured as the sum of |c| over
     * one-row tiles, where each contribution is one product rounded once (|term| <= (1 + u) |c|). The test allows
     * (k + 2) u sum|c_j| + 4 n 2^-53 (1 + u) A, which covers every term.
     */
    @Test
    void tilesGiveTheUntiledOutputAndInputGradientExactlyAndParameterGradientsWithinTheirRounding() {
        long seed = rnd.nextLong();
        int n = 13;
        int rows = 4;
        int k = 4;
        double[] plain = run(seed, n, 0, null);
        double[] tiled = run(seed, n, rows, null);
        double[][] plainGrads = gradients;
        double[][] tiledGrads = tiledGradients;
        assertEquals(plain.length, tiled.length);
        assertBitEqual(plain, tiled, "output (seed " + seed + ")");
        assertBitEqual(plainGrads[0], tiledGrads[0], "x's gradient (seed " + seed + ")");
        double[][] sumAbs = new double[3][];
        run(seed, n, rows, sumAbs);
        double[][] sumAbsRows = new double[3][];
        run(seed, n, 1, sumAbsRows);
        double u = 0x1p-24;
        for (int p = 0; p < 3; p++) {
            for (int i = 0; i < plainGrads[p + 1].length; i++) {
                double bound = (k + 2) * u * sumAbs[p][i] + 4 * n * 0x1p-53 * (1 + u) * sumAbsRows[p][i];
                double diff = Math.abs(plainGrads[p + 1][i] - tiledGrads[p + 1][i]);
                assertTrue(diff <= bound, "parameter " + p + " element " + i + ": |" + plainGrads[p + 1][i] + " - "
                        + tiledGrads[p + 1][i] + "| = " + diff + " > " + bound + " (seed " + seed + ")");
            }
        }
    }

    private double[][] gradients;
    private double[][] tiledGradients;

    /**
     * Runs the block on n rows (tiles of {@code rows}; 0: untiled) and returns the output. With {@code sumAbs} the
     * parameters' gradient contributions go to sinks that add up their absolute values there instead.
     */
    private double[] run(long seed, int n, int rows, double[][] sumAbs) {
        try (Scope s = Scope.open("block")) {
            Block b = Block.random(8, 24, DType.F32, Device.CPU, seed);
            Tensor x = Tensor.randn(Shape.of(n, 8), DType.F32, Device.CPU, seed + 10).requiresGrad(true);
            Tensor w = Tensor.randn(Shape.of(n, 8), DType.F32, Device.CPU, seed + 11);
            if (sumAbs != null) {
                for (int p = 0; p < 3; p++) {
                    double[] acc = sumAbs[p] = new double[(int) b.parameters().get(p).numel()];
                    Autograd.streamGradient(b.parameters().get(p), (c, owned) -> {
                        double[] v = c.toDoubleArray();
                        for (int i = 0; i < v.length; i++) {
                            acc[i] += Math.abs(v[i]);
                        }
                    });
                }
            }
            Tensor out = rows == 0 ? b.apply(x) : TiledCheckpoint.apply(b::apply, ActivationStore.DEVICE, x, rows);
            out.mul(w).reshape(-1).sum(0).backward();
            if (sumAbs == null) {
                double[][] g = {x.grad().toDoubleArray(), b.wg().grad().toDoubleArray(), b.wu().grad().toDoubleArray(),
                        b.wd().grad().toDoubleArray()};
                if (rows == 0) {
                    gradients = g;
                } else {
                    tiledGradients = g;
                }
            }
            return out.toDoubleArray();
        }
    }

    private static void assertBitEqual(double[] a, double[] b, String what) {
        for (int i = 0; i < a.length; i++) {
            assertEquals(Double.doubleToRawLongBits(a[i]), Double.doubleToRawLongBits(b[i]), what + " element " + i + ": " + a[i] + " vs " + b[i]);
        }
    }

    /** float64 finite differences through the tiles (3 tiles of 2, 2, 1 rows), dropout included (its mask is fixed). */
    @Test
    void gradientCheck() {
        long seed = rnd.nextLong();
        long dropoutSeed = rnd.nextLong();
        GradCheck.check("tiled checkpoint", in -> {
            Block b = new Block(in[1], in[2], in[3], dropoutSeed);
            return TiledCheckpoint.apply(b::apply, ActivationStore.DEVICE, in[0], 2);
        }, seed, Shape.of(5, 3), Shape.of(3, 4), Shape.of(3, 4), Shape.of(4, 3));
    }

    /** Dropout inside a tile draws the untiled tensor's counters for its rows: the same mask, not the first tile's again. */
    @Test
    void dropoutInATileDropsWhatTheUntiledTensorDrops() {
        long seed = rnd.nextLong();
        try (Scope s = Scope.open("dropout")) {
            Tensor x = Tensor.full(Shape.of(10, 7), 1.0, DType.F32, Device.CPU);
            double[] whole = Dropout.apply(x, 0.5, seed).toDoubleArray();
            double[] tiled = TiledCheckpoint.apply(t -> Dropout.apply(t, 0.5, seed), ActivationStore.DEVICE, x, 3).toDoubleArray();
            assertBitEqual(whole, tiled, "dropout (seed " + seed + ")");
        }
    }

    @Test
    void aFunctionThatIsNotRowWiseIsRefused() {
        try (Scope s = Scope.open("refused")) {
            Tensor x = Tensor.zeros(Shape.of(6, 2), DType.F32, Device.CPU);
            UnaryOperator<Tensor> total = t -> t.sum(0);
            ShapeException e = assertThrows(ShapeException.class, () -> TiledCheckpoint.apply(total, ActivationStore.DEVICE, x, 4));
            assertTrue(e.getMessage().contains("row-wise"), e.getMessage());
        }
    }

    /**
     * On meta, bf16, 4096 rows of hidden 64 and intermediate 4096 in tiles of 512: forward keeps the output and one
     * tile's intermediates at a time, backward the seed, x's gradient and one tile's recomputation and backward. The
     * bounds are the one-tile peaks (forward, and backward of a recorded graph) measured on a 512-row block (with its
     * output and input gradient, which a tile's copy replaces) plus the whole's output, or seed and gradient; in
     * backward also the parameters' gradients, which exist from the first tile on while later tiles make their
     * contributions (the one-tile block's gradients are made from its only contribution).
     */
    @Test
    void memoryHoldsOneTileAtATime() {
        MetaBackend meta = MetaBackend.instance();
        long n = 4096;
        long tile = 512;
        long rowBytes = 64 * 2;
        try (Scope s = Scope.open("meta", MemoryCategory.ACTIVATIONS)) {
            Block b = Block.random(64, 4096, DType.BF16, Device.META, 1);
            long[] oneTile = peaks(meta, b, Tensor.zeros(Shape.of(tile, 64), DType.BF16, Device.META).requiresGrad(true), 0);
            long[] whole = peaks(meta, b, Tensor.zeros(Shape.of(n, 64), DType.BF16, Device.META).requiresGrad(true), 0);
            long[] tiled = peaks(meta, b, Tensor.zeros(Shape.of(n, 64), DType.BF16, Device.META).requiresGrad(true), tile);
            long slack = 64 << 10;
            assertTrue(tiled[0] <= n * rowBytes + oneTile[0] + slack, "forward: " + tiled[0] + " against one tile's " + oneTile[0]);
            long parameterGradients = 3 * 64 * 4096 * 2;
            assertTrue(tiled[1] <= 2 * n * rowBytes + oneTile[0] + oneTile[1] + parameterGradients + slack, "backward: " + tiled[1] + " against one tile's "
                    + oneTile[0] + " + " + oneTile[1]);
            assertTrue(whole[0] > 4 * tiled[0] && whole[1] > 2 * tiled[1], "untiled " + java.util.Arrays.toString(whole)
                    + ", tiled " + java.util.Arrays.toString(tiled));
        }
    }

    /** Forward's and backward's peaks above what was allocated before each, for the block on x (tiles of {@code rows}; 0: untiled). */
    private static long[] peaks(MetaBackend meta, Block b, Tensor x, long rows) {
        try (Scope s = Scope.open("run", MemoryCategory.ACTIVATIONS)) {
            meta.resetPeaks();
            long before = meta.memoryStats().allocated();
            Tensor out = rows == 0 ? b.apply(x) : TiledCheckpoint.apply(b::apply, ActivationStore.DEVICE, x, rows);
            long forward = meta.memoryStats().peakAllocated() - before;
            meta.resetPeaks();
            long beforeBackward = meta.memoryStats().allocated();
            out.backward(Tensor.zeros(out.shape(), out.dtype(), out.device()));
            long backward = meta.memoryStats().peakAllocated() - beforeBackward;
            for (Tensor p : b.parameters()) {
                p.zeroGrad();
            }
            return new long[] {forward, backward};
        }
    }
}

package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.AttentionKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuAttentionTest extends CpuKernelTest {

    /** One call's geometry: R rows (heads stacked, rowsPerHead each) by C columns. */
    private record Block(int rows, int cols, long rowStart, long rowsPerHead, long colStart, long window, double scale) {
        boolean visible(int r, int c) {
            long q = rowStart + r % rowsPerHead;
            long k = colStart + c;
            return k <= q && (window <= 0 || q - k < window);
        }
    }

    /** lse (row 0 of the result) and probs (row 1), straight from the definition, unshifted (moderate scores). */
    private static double[][] reference(Block b, double[] s) {
        double[] lse = new double[b.rows];
        double[] probs = new double[b.rows * b.cols];
        for (int r = 0; r < b.rows; r++) {
            double sum = 0;
            for (int c = 0; c < b.cols; c++) {
                if (b.visible(r, c)) {
                    sum += Math.exp(b.scale * s[r * b.cols + c]);
                }
            }
            lse[r] = Math.log(sum); // log 0 = -inf: no visible key
            for (int c = 0; c < b.cols; c++) {
                probs[r * b.cols + c] = b.visible(r, c) ? Math.exp(b.scale * s[r * b.cols + c]) / sum : 0;
            }
        }
        return new double[][]{lse, probs};
    }

    private static Block randomBlock(Random rnd, int kind) {
        int perHead = size(rnd);
        int heads = kind == 2 ? 2 + rnd.nextInt(3) : 1;
        int cols = size(rnd) + rnd.nextInt(6);
        long rowStart = rnd.nextInt(12);
        double scale = 1 / Math.sqrt(1 + rnd.nextInt(128));
        return switch (kind) {
            case 0 -> new Block(perHead, cols, rowStart, perHead, 0, 0, scale);                          // causal only
            case 1 -> new Block(perHead, cols, rowStart, perHead, 0, 1 + rnd.nextInt(6), scale);         // sliding window
            case 2 -> new Block(heads * perHead, cols, rowStart, perHead, rnd.nextInt(8), rnd.nextInt(2) == 0 ? 0 : 1 + rnd.nextInt(6), scale);
            default -> new Block(perHead, cols, rowStart, perHead, 1 + rnd.nextInt(14), rnd.nextInt(2) == 0 ? 0 : 1 + rnd.nextInt(8), scale);
        };
    }

    @Test
    void forwardMatchesTheMaskedSoftmax() {
        Random rnd = Seeds.random(701);
        int fullyMaskedRows = 0;
        for (int trial = 0; trial < 80; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            Block b = randomBlock(rnd, trial % 4);
            Tensor scores = tensor(rnd, stat(dtype), uniform(rnd, b.rows * b.cols, -8, 8), b.rows, b.cols);
            double[][] ref = reference(b, scores.toDoubleArray());
            Tensor probs = output(rnd, dtype, b.rows, b.cols);
            Tensor lse = output(rnd, stat(dtype), b.rows);
            cpu.kernels(AttentionKernel.OP).maskedSoftmax(scores, b.rowStart, b.rowsPerHead, b.colStart, b.window, b.scale, probs, lse, false);
            assertClose(b + " " + dtype + " lse", ref[0], lse.toDoubleArray(), tol(stat(dtype)), 8);
            assertClose(b + " " + dtype + " probs", ref[1], probs.toDoubleArray(), tol(dtype));
            for (double l : ref[0]) {
                fullyMaskedRows += l == Double.NEGATIVE_INFINITY ? 1 : 0;
            }
        }
        assertTrue(fullyMaskedRows > 5, "the random blocks include fully masked rows, got " + fullyMaskedRows);
    }

    @Test
    void aFullyMaskedRowHasZeroProbsAndLseMinusInfinity() {
        Random rnd = Seeds.random(702);
        // rows are queries 3, 4, 5; columns keys 5..8: query 3 and 4 see nothing, query 5 sees key 5 only
        Tensor probs = output(rnd, DType.F32, 3, 4);
        Tensor lse = output(rnd, DType.F32, 3);
        Tensor scores = tensor(rnd, DType.F32, uniform(rnd, 12, -1, 1), 3, 4);
        cpu.kernels(AttentionKernel.OP).maskedSoftmax(scores, 3, 3, 5, 0, 0.5, probs, lse, false);
        double[] l = lse.toDoubleArray();
        double[] p = probs.toDoubleArray();
        assertEquals(Double.NEGATIVE_INFINITY, l[0]);
        assertEquals(Double.NEGATIVE_INFINITY, l[1]);
        assertEquals((float) (0.5 * scores.toDoubleArray()[8]), l[2], 1e-6);
        double[] expected = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
        assertClose("probs", expected, p, 0);
    }

    @Test
    void aSavedLseGivesTheProbsOfTheWholeRowBlockByBlock() {
        // flash style: the lse of all keys, then each column block's probs from it (lseIn) are that block of the
        // whole row's probs
        Random rnd = Seeds.random(703);
        for (int trial = 0; trial < 30; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            int perHead = size(rnd);
            int heads = 1 + rnd.nextInt(3);
            int rows = heads * perHead;
            int cols = size(rnd) + 8;
            long rowStart = rnd.nextInt(cols);
            long window = rnd.nextBoolean() ? 0 : 1 + rnd.nextInt(6);
            double scale = 0.125 + rnd.nextDouble();
            double[] s = uniform(rnd, rows * cols, -6, 6);
            Tensor whole = tensor(rnd, stat(dtype), s, rows, cols);
            Tensor lse = output(rnd, stat(dtype), rows);
            Tensor wholeProbs = output(rnd, DType.F64, rows, cols);
            cpu.kernels(AttentionKernel.OP).maskedSoftmax(whole, rowStart, perHead, 0, window, scale, wholeProbs, lse, false);
            double[] l = lse.toDoubleArray();
            double[] sf = whole.toDoubleArray();
            int split = 1 + rnd.nextInt(cols - 1);
            for (int[] range : new int[][]{{0, split}, {split, cols}}) {
                int width = range[1] - range[0];
                double[] part = new double[rows * width];
                double[] expected = new double[rows * width];
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < width; c++) {
                        double sc = sf[r * cols + range[0] + c];
                        part[r * width + c] = sc;
                        long q = rowStart + r % perHead;
                        long k = range[0] + c;
                        boolean visible = k <= q && (window == 0 || q - k < window);
                        expected[r * width + c] = visible && l[r] != Double.NEGATIVE_INFINITY ? Math.exp(scale * sc - l[r]) : 0;
                    }
                }
                Tensor probs = output(rnd, dtype, rows, width);
                Tensor lseCopy = tensor(rnd, stat(dtype), l, rows);
                cpu.kernels(AttentionKernel.OP).maskedSoftmax(tensor(rnd, stat(dtype), part, rows, width), rowStart, perHead, range[0], window, scale,
                        probs, lseCopy, true);
                assertClose("lseIn block " + range[0] + ".." + range[1] + " " + dtype, expected, probs.toDoubleArray(), tol(dtype));
                assertClose("lseIn leaves lse alone", l, lseCopy.toDoubleArray(), 0);
            }
        }
    }

    @Test
    void backwardMatchesTheDefinition() {
        Random rnd = Seeds.random(704);
        for (int trial = 0; trial < 40; trial++) {
            DType probsType = FLOATING[trial % FLOATING.length];
            boolean inPlace = rnd.nextBoolean(); // the attention op overwrites probs with their gradient
            DType gradType = inPlace ? probsType : anyFloating(rnd);
            int rows = size(rnd);
            int cols = size(rnd);
            double scale = 0.1 + rnd.nextDouble();
            Tensor probs = tensor(rnd, probsType, uniform(rnd, rows * cols, 0, 1), rows, cols);
            Tensor gradProbs = tensor(rnd, stat(probsType), uniform(rnd, rows * cols, -1, 1), rows, cols);
            Tensor delta = tensor(rnd, stat(probsType), uniform(rnd, rows, -1, 1), rows);
            double[] p = probs.toDoubleArray();
            double[] gp = gradProbs.toDoubleArray();
            double[] d = delta.toDoubleArray();
            double[] expected = new double[rows * cols];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    expected[r * cols + c] = scale * p[r * cols + c] * (gp[r * cols + c] - d[r]);
                }
            }
            Tensor gradScores = inPlace ? probs : output(rnd, gradType, rows, cols);
            cpu.kernels(AttentionKernel.OP).maskedSoftmaxBackward(probs, gradProbs, delta, scale, gradScores);
            assertClose("attentionSoftmaxBackward " + probsType + " -> " + gradType + " inPlace=" + inPlace, expected, gradScores.toDoubleArray(), tol(gradType), 1);
        }
    }

    @Test
    void backwardIsTheGradientOfTheWeightedProbs() {
        // in float64 end to end (F64 scores, lse and delta): the forward, delta = rowDot(gradProbs, probs) and the
        // backward in place over probs, as the attention op chains them; d/ds of sum(gradProbs * probs)
        Random rnd = Seeds.random(705);
        for (int trial = 0; trial < 12; trial++) {
            Block b = randomBlock(rnd, trial % 4);
            double[] s = uniform(rnd, b.rows * b.cols, -4, 4);
            double[] gp = uniform(rnd, s.length, -1, 1);
            double[] numeric = centralDifference(s, 1e-5, sv -> {
                Tensor probs = output(rnd, DType.F64, b.rows, b.cols);
                cpu.kernels(AttentionKernel.OP).maskedSoftmax(tensor(rnd, DType.F64, sv, b.rows, b.cols), b.rowStart, b.rowsPerHead, b.colStart,
                        b.window, b.scale, probs, output(rnd, DType.F64, b.rows), false);
                return dot(gp, probs.toDoubleArray());
            });
            Tensor scores = tensor(rnd, DType.F64, s, b.rows, b.cols);
            Tensor lse = output(rnd, DType.F64, b.rows);
            Tensor probs = output(rnd, DType.F64, b.rows, b.cols);
            cpu.kernels(AttentionKernel.OP).maskedSoftmax(scores, b.rowStart, b.rowsPerHead, b.colStart, b.window, b.scale, probs, lse, false);
            // the backward pass recomputes probs from the saved lse
            cpu.kernels(AttentionKernel.OP).maskedSoftmax(scores, b.rowStart, b.rowsPerHead, b.colStart, b.window, b.scale, probs, lse, true);
            Tensor gradProbs = tensor(rnd, DType.F64, gp, b.rows, b.cols);
            Tensor delta = output(rnd, DType.F64, b.rows);
            cpu.kernels(AttentionKernel.OP).rowDot(gradProbs, probs, delta);
            cpu.kernels(AttentionKernel.OP).maskedSoftmaxBackward(probs, gradProbs, delta, b.scale, probs);
            assertGradient(b.toString(), numeric, probs.toDoubleArray(), 1e-8);
        }
    }

    @Test
    void rowDotMatchesTheDefinition() {
        Random rnd = Seeds.random(706);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            int rows = size(rnd);
            int cols = size(rnd) + rnd.nextInt(30);
            Tensor a = tensor(rnd, dtype, uniform(rnd, rows * cols, -2, 2), rows, cols);
            Tensor bt = tensor(rnd, dtype, uniform(rnd, rows * cols, -2, 2), rows, cols);
            double[] x = a.toDoubleArray();
            double[] y = bt.toDoubleArray();
            double[] expected = new double[rows];
            double terms = 0;
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    expected[r] += x[r * cols + c] * y[r * cols + c];
                    terms = Math.max(terms, Math.abs(x[r * cols + c] * y[r * cols + c]));
                }
            }
            Tensor out = output(rnd, stat(dtype), rows);
            cpu.kernels(AttentionKernel.OP).rowDot(a, bt, out);
            assertClose("rowDot " + dtype + " [" + rows + ", " + cols + "]", expected, out.toDoubleArray(), tol(stat(dtype)), terms);
        }
    }
}

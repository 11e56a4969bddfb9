package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.CrossEntropyKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuLossTest extends CpuKernelTest {
    private static final int IGNORE = -100;

    /** Labels in [0, V), about one in four ignored. */
    private static int[] labels(Random rnd, int n, int vocab) {
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = rnd.nextInt(4) == 0 ? IGNORE : rnd.nextInt(vocab);
        }
        return y;
    }

    private static double logSumExp(double[] x, int row, int vocab) {
        double s = 0;
        for (int v = 0; v < vocab; v++) {
            s += Math.exp(x[row * vocab + v]);
        }
        return Math.log(s);
    }

    @Test
    void forwardMatchesTheDefinition() {
        Random rnd = Seeds.random(601);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            int n = size(rnd);
            int vocab = size(rnd) + rnd.nextInt(40);
            int[] y = labels(rnd, n, vocab);
            Tensor logits = tensor(rnd, dtype, uniform(rnd, n * vocab, -8, 8), n, vocab);
            double[] x = logits.toDoubleArray();
            double[] lse = new double[n];
            double[] loss = new double[n];
            for (int i = 0; i < n; i++) {
                lse[i] = logSumExp(x, i, vocab);
                loss[i] = y[i] == IGNORE ? 0 : lse[i] - x[i * vocab + y[i]];
            }
            Tensor lossT = output(rnd, stat(dtype), n);
            Tensor lseT = output(rnd, stat(dtype), n);
            cpu.kernels(CrossEntropyKernel.OP).forward(logits, ints(rnd, y, n), IGNORE, lossT, lseT);
            String what = "crossEntropy " + dtype + " [" + n + ", " + vocab + "]";
            assertClose(what + " lse", lse, lseT.toDoubleArray(), tol(stat(dtype)));
            // loss = lse - logit cancels: its error is relative to |lse| + |logit|
            assertClose(what + " loss", loss, lossT.toDoubleArray(), tol(stat(dtype)), 8);
            double[] got = lossT.toDoubleArray();
            for (int i = 0; i < n; i++) {
                if (y[i] == IGNORE) {
                    assertEquals(0.0, got[i], what + ": ignored row " + i);
                }
            }
        }
    }

    @Test
    void largeLogitsDoNotOverflow() {
        Random rnd = Seeds.random(602);
        double[] x = uniform(rnd, 7, 1000, 1010);
        Tensor loss = output(rnd, DType.F32, 1);
        Tensor lse = output(rnd, DType.F32, 1);
        cpu.kernels(CrossEntropyKernel.OP).forward(tensor(rnd, DType.F64, x, 1, 7), ints(rnd, new int[]{3}, 1), IGNORE, loss, lse);
        double[] shifted = new double[7];
        for (int v = 0; v < 7; v++) {
            shifted[v] = x[v] - 1000;
        }
        double expected = logSumExp(shifted, 0, 7) + 1000;
        assertEquals(expected, lse.item(), 1e-4);
        assertEquals(expected - x[3], loss.item(), 1e-4);
    }

    @Test
    void backwardMatchesTheDefinition() {
        Random rnd = Seeds.random(603);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            boolean inPlace = rnd.nextBoolean();
            int n = size(rnd);
            int vocab = size(rnd) + rnd.nextInt(40);
            int[] y = labels(rnd, n, vocab);
            Tensor logits = tensor(rnd, dtype, uniform(rnd, n * vocab, -8, 8), n, vocab);
            Tensor lse = output(rnd, stat(dtype), n);
            cpu.kernels(CrossEntropyKernel.OP).forward(logits, ints(rnd, y, n), IGNORE, output(rnd, stat(dtype), n), lse);
            double scale = 1.0 / (1 + rnd.nextInt(50));
            double[] x = logits.toDoubleArray();
            double[] l = lse.toDoubleArray(); // the saved lse (fp32 unless the logits are F64), as the contract reads it
            double[] expected = new double[n * vocab];
            for (int i = 0; i < n; i++) {
                for (int v = 0; v < vocab && y[i] != IGNORE; v++) {
                    expected[i * vocab + v] = roundTo(stat(dtype), scale) * (Math.exp(x[i * vocab + v] - l[i]) - (v == y[i] ? 1 : 0));
                }
            }
            Tensor grad = inPlace ? logits : output(rnd, dtype, n, vocab);
            cpu.kernels(CrossEntropyKernel.OP).backward(logits, ints(rnd, y, n), lse, IGNORE, tensor(rnd, stat(dtype), new double[]{scale}, 1), grad);
            assertClose("crossEntropyBackward " + dtype + " [" + n + ", " + vocab + "] inPlace=" + inPlace,
                    expected, grad.toDoubleArray(), tol(dtype), scale);
        }
    }

    @Test
    void backwardOverAVocabularyBlockMatchesTheDefinition() {
        // columns [v0, v0 + width) of [n, V] logits: the one-hot term compares labels with v0 + c; rows labelled before
        // or after the block have none, ignored rows are 0. The blocks of a partition put together are the whole-row
        // backward exactly (every element is computed on its own from the same inputs).
        Random rnd = Seeds.random(607);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            int n = 4 + size(rnd);
            int vocab = 2 + size(rnd) + rnd.nextInt(40);
            Tensor logits = tensor(rnd, dtype, uniform(rnd, n * vocab, -8, 8), n, vocab);
            int v0 = rnd.nextInt(vocab);
            int width = 1 + rnd.nextInt(vocab - v0);
            int[] y = new int[n];
            for (int i = 0; i < n; i++) {
                int inside = v0 + rnd.nextInt(width);
                y[i] = switch (i % 4) {
                    case 0 -> IGNORE;
                    case 1 -> inside;
                    case 2 -> v0 > 0 ? rnd.nextInt(v0) : inside;
                    default -> v0 + width < vocab ? v0 + width + rnd.nextInt(vocab - v0 - width) : inside;
                };
            }
            Tensor labels = ints(rnd, y, n);
            Tensor lse = output(rnd, stat(dtype), n);
            cpu.kernels(CrossEntropyKernel.OP).forward(logits, labels, IGNORE, output(rnd, stat(dtype), n), lse);
            double scale = 1.0 / (1 + rnd.nextInt(50));
            Tensor scaleT = tensor(rnd, stat(dtype), new double[]{scale}, 1);
            double[] x = logits.toDoubleArray();
            double[] l = lse.toDoubleArray();
            double[] expected = new double[n * width];
            for (int i = 0; i < n; i++) {
                for (int c = 0; c < width && y[i] != IGNORE; c++) {
                    expected[i * width + c] = roundTo(stat(dtype), scale) * (Math.exp(x[i * vocab + v0 + c] - l[i]) - (v0 + c == y[i] ? 1 : 0));
                }
            }
            Tensor block = tensor(rnd, dtype, blockOf(x, n, vocab, v0, width), n, width);
            Tensor grad = rnd.nextBoolean() ? block : output(rnd, dtype, n, width);
            cpu.kernels(CrossEntropyKernel.OP).backward(block, v0, labels, lse, IGNORE, scaleT, grad);
            String what = "crossEntropyBackward " + dtype + " [" + n + ", " + vocab + "] columns [" + v0 + ", " + (v0 + width) + ")";
            assertClose(what, expected, grad.toDoubleArray(), tol(dtype), scale);

            Tensor whole = output(rnd, dtype, n, vocab);
            cpu.kernels(CrossEntropyKernel.OP).backward(logits, labels, lse, IGNORE, scaleT, whole);
            double[] all = whole.toDoubleArray();
            double[] pieced = new double[n * vocab];
            for (int c0 = 0; c0 < vocab; ) {
                int w = 1 + rnd.nextInt(vocab - c0);
                Tensor g = output(rnd, dtype, n, w);
                cpu.kernels(CrossEntropyKernel.OP).backward(tensor(rnd, dtype, blockOf(x, n, vocab, c0, w), n, w), c0, labels, lse,
                        IGNORE, scaleT, g);
                double[] gv = g.toDoubleArray();
                for (int i = 0; i < n; i++) {
                    System.arraycopy(gv, i * w, pieced, i * vocab + c0, w);
                }
                c0 += w;
            }
            assertArrayEquals(all, pieced, what + ": the blocks of a partition against the whole rows");
        }
    }

    /** Columns [v0, v0 + width) of row-major [n, vocab] x. */
    private static double[] blockOf(double[] x, int n, int vocab, int v0, int width) {
        double[] b = new double[n * width];
        for (int i = 0; i < n; i++) {
            System.arraycopy(x, i * vocab + v0, b, i * width, width);
        }
        return b;
    }

    @Test
    void backwardIsTheGradientOfTheScaledLoss() {
        // F64 logits come with F64 loss and lse: differentiate scale * sum of the kernel's own loss rows
        Random rnd = Seeds.random(604);
        for (int trial = 0; trial < 8; trial++) {
            int n = size(rnd);
            int vocab = size(rnd) + 1;
            int[] y = labels(rnd, n, vocab);
            double scale = 0.25 + rnd.nextDouble();
            double[] x = uniform(rnd, n * vocab, -4, 4);
            double[] numeric = centralDifference(x, 1e-5, xv -> {
                Tensor loss = output(rnd, DType.F64, n);
                cpu.kernels(CrossEntropyKernel.OP).forward(tensor(rnd, DType.F64, xv, n, vocab), ints(rnd, y, n), IGNORE, loss, output(rnd, DType.F64, n));
                double total = 0;
                for (double l : loss.toDoubleArray()) {
                    total += l;
                }
                return scale * total;
            });
            Tensor logits = tensor(rnd, DType.F64, x, n, vocab);
            Tensor lse = output(rnd, DType.F64, n);
            cpu.kernels(CrossEntropyKernel.OP).forward(logits, ints(rnd, y, n), IGNORE, output(rnd, DType.F64, n), lse);
            Tensor grad = output(rnd, DType.F64, n, vocab);
            cpu.kernels(CrossEntropyKernel.OP).backward(logits, ints(rnd, y, n), lse, IGNORE, tensor(rnd, DType.F64, new double[]{scale}, 1), grad);
            assertGradient("crossEntropy", numeric, grad.toDoubleArray(), 1e-8);
        }
    }

    @Test
    void outOfRangeLabelsAreNamed() {
        Random rnd = Seeds.random(605);
        Tensor logits = tensor(rnd, DType.F32, uniform(rnd, 3 * 4, -1, 1), 3, 4);
        for (int bad : new int[]{4, -1}) {
            Tensor labels = ints(rnd, new int[]{0, IGNORE, bad}, 3);
            ShapeException e = assertThrows(ShapeException.class,
                    () -> cpu.kernels(CrossEntropyKernel.OP).forward(logits, labels, IGNORE, output(rnd, DType.F32, 3), output(rnd, DType.F32, 3)));
            assertTrue(e.getMessage().contains("label " + bad) && e.getMessage().contains("row 2"), e.getMessage());
        }
        // a block knows no vocabulary size: only a negative label (not ignored) or first column is an error there
        Tensor scale = tensor(rnd, DType.F32, new double[]{1}, 1);
        Tensor lse = tensor(rnd, DType.F32, new double[]{0, 0, 0}, 3);
        ShapeException label = assertThrows(ShapeException.class, () -> cpu.kernels(CrossEntropyKernel.OP)
                .backward(logits, 4, ints(rnd, new int[]{0, IGNORE, -1}, 3), lse, IGNORE, scale, output(rnd, DType.F32, 3, 4)));
        assertTrue(label.getMessage().contains("label -1") && label.getMessage().contains("row 2"), label.getMessage());
        ShapeException column = assertThrows(ShapeException.class, () -> cpu.kernels(CrossEntropyKernel.OP)
                .backward(logits, -1, ints(rnd, new int[]{0, IGNORE, 1}, 3), lse, IGNORE, scale, output(rnd, DType.F32, 3, 4)));
        assertTrue(column.getMessage().contains("first column -1"), column.getMessage());
    }

    @Test
    void countsLabelsNotEqualToAValue() {
        Random rnd = Seeds.random(606);
        for (int trial = 0; trial < 20; trial++) {
            int n = trial == 0 ? 1 : size(rnd) + rnd.nextInt(100);
            int[] y = new int[n];
            int expected = 0;
            for (int i = 0; i < n; i++) {
                y[i] = trial == 1 || rnd.nextInt(3) == 0 ? IGNORE : rnd.nextInt(1000);
                expected += y[i] != IGNORE ? 1 : 0;
            }
            Tensor out = output(rnd, trial % 2 == 0 ? DType.F32 : DType.F64, 1); // F64 next to F64 logits
            cpu.kernels(CrossEntropyKernel.OP).countNotEqual(ints(rnd, y, n), IGNORE, out);
            assertEquals(expected, out.item(), "countNotEqual of " + n + " labels");
        }
    }
}

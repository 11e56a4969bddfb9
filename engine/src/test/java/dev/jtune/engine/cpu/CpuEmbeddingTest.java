package dev.jtune.engine.cpu;

import dev.jtune.testing.Seeds;
import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.EmbeddingKernel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuEmbeddingTest extends CpuKernelTest {

    private static int[] randomIds(Random rnd, int n, int vocab) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = rnd.nextInt(vocab);
        }
        return ids;
    }

    @Test
    void gathersRowsExactly() {
        Random rnd = Seeds.random(101);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            int vocab = size(rnd);
            int d = size(rnd);
            int n = size(rnd) + rnd.nextInt(6); // often more ids than rows: repeats
            int[] ids = randomIds(rnd, n, vocab);
            Tensor table = tensor(rnd, dtype, uniform(rnd, vocab * d, -3, 3), vocab, d);
            double[] t = table.toDoubleArray();
            Tensor out = output(rnd, dtype, n, d);
            cpu.kernels(EmbeddingKernel.OP).forward(ints(rnd, ids, n), table, out);
            double[] expected = new double[n * d];
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < d; j++) {
                    expected[i * d + j] = t[ids[i] * d + j];
                }
            }
            assertArrayEquals(expected, out.toDoubleArray(), "embedding " + dtype + " V=" + vocab + " D=" + d + " N=" + n);
        }
    }

    @Test
    void backwardScatterAddsIntoTheOldGradient() {
        Random rnd = Seeds.random(102);
        for (int trial = 0; trial < 40; trial++) {
            DType dtype = FLOATING[trial % FLOATING.length];
            DType tableType = rnd.nextBoolean() ? dtype : DType.F32;
            int vocab = size(rnd);
            int d = size(rnd);
            int n = size(rnd) + rnd.nextInt(10);
            int[] ids = randomIds(rnd, n, vocab);
            Tensor gradOut = tensor(rnd, dtype, uniform(rnd, n * d, -2, 2), n, d);
            Tensor gradTable = tensor(rnd, tableType, uniform(rnd, vocab * d, -1, 1), vocab, d);
            double[] g = gradOut.toDoubleArray();
            double[] expected = gradTable.toDoubleArray();
            for (int v = 0; v < vocab; v++) {
                for (int j = 0; j < d; j++) {
                    double sum = 0;
                    for (int i = 0; i < n; i++) {
                        if (ids[i] == v) {
                            sum += g[i * d + j];
                        }
                    }
                    expected[v * d + j] += sum;
                }
            }
            cpu.kernels(EmbeddingKernel.OP).backward(ints(rnd, ids, n), gradOut, gradTable);
            assertClose("embeddingBackward " + dtype + " into " + tableType, expected, gradTable.toDoubleArray(), tol(tableType));
        }
    }

    @Test
    void backwardIsTheGradientOfTheGather() {
        Random rnd = Seeds.random(103);
        for (int trial = 0; trial < 6; trial++) {
            int vocab = size(rnd);
            int d = size(rnd);
            int n = size(rnd) + 4; // repeated ids for sure when vocab is small
            int[] ids = randomIds(rnd, n, vocab);
            double[] table = uniform(rnd, vocab * d, -1, 1);
            double[] gy = uniform(rnd, n * d, -1, 1);
            double[] numeric = centralDifference(table, 1e-5, t -> {
                Tensor out = output(rnd, DType.F64, n, d);
                cpu.kernels(EmbeddingKernel.OP).forward(ints(rnd, ids, n), tensor(rnd, DType.F64, t, vocab, d), out);
                return dot(gy, out.toDoubleArray());
            });
            Tensor grad = tensor(rnd, DType.F64, new double[vocab * d], vocab, d);
            cpu.kernels(EmbeddingKernel.OP).backward(ints(rnd, ids, n), tensor(rnd, DType.F64, gy, n, d), grad);
            assertGradient("embedding", numeric, grad.toDoubleArray(), 1e-9);
        }
    }

    @Test
    void outOfRangeIdsAreNamed() {
        Random rnd = Seeds.random(104);
        Tensor table = tensor(rnd, DType.F32, uniform(rnd, 5 * 3, -1, 1), 5, 3);
        Tensor out = output(rnd, DType.F32, 4, 3);
        for (int bad : new int[]{5, -1, 1 << 30}) {
            Tensor ids = ints(rnd, new int[]{0, 4, bad, 1}, 4);
            ShapeException e = assertThrows(ShapeException.class, () -> cpu.kernels(EmbeddingKernel.OP).forward(ids, table, out));
            assertTrue(e.getMessage().contains("id " + bad) && e.getMessage().contains("index 2") && e.getMessage().contains("[0, 5)"),
                    e.getMessage());
            for (double v : out.toDoubleArray()) {
                assertTrue(Double.isNaN(v), "nothing is written before the ids are checked");
            }
            Tensor grad = tensor(rnd, DType.F32, new double[15], 5, 3);
            ShapeException b = assertThrows(ShapeException.class,
                    () -> cpu.kernels(EmbeddingKernel.OP).backward(ids, tensor(rnd, DType.F32, uniform(rnd, 12, -1, 1), 4, 3), grad));
            assertTrue(b.getMessage().contains("id " + bad) && b.getMessage().contains("index 2"), b.getMessage());
            assertArrayEquals(new double[15], grad.toDoubleArray(), "nothing is added before the ids are checked");
        }
    }
}

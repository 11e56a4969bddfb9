package dev.jtune.engine.cpu;

import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.cpu.CpuLoops.Flat;

import java.lang.foreign.MemorySegment;
import java.util.stream.IntStream;

/** Embedding gather and its deterministic scatter-add backward. */
final class CpuEmbedding {
    private CpuEmbedding() {
    }

    /** {@code out[i, :] = table[ids[i], :]}; every id is checked before anything is written. */
    static void embedding(Tensor ids, Tensor table, Tensor out) {
        int[] id = checkedIds("embedding", ids, table);
        long d = table.dim(1);
        if (table.dtype() == DType.NF4 || out.dtype() == DType.NF4) {
            throw new UnsupportedOpException("embedding: NF4 rows have no element access on cpu (" + table.describe()
                    + " to " + out.describe() + "): dequantize the table first");
        }
        if (table.dtype() == out.dtype()) {
            // the same dtype on both sides: a row is moved as bytes, exactly
            MemorySegment src = CpuBackend.segmentOf(table);
            MemorySegment dst = CpuBackend.segmentOf(out);
            DType dtype = table.dtype();
            long rowBytes = dtype.bytesFor(d);
            IntStream.range(0, id.length).parallel().forEach(i -> MemorySegment.copy(
                    src, dtype.bytesFor(table.offset() + id[i] * d), dst, dtype.bytesFor(out.offset() + i * d), rowBytes));
            return;
        }
        Flat src = Flat.of(table);
        Flat dst = Flat.of(out);
        IntStream.range(0, id.length).parallel().forEach(i -> {
            for (long j = 0; j < d; j++) {
                dst.set(i * d + j, src.get(id[i] * d + j));
            }
        });
    }

    /**
     * {@code gradTable[v, :] += sum of gradOut[i, :] over ids[i] == v}: each row's terms are summed in double in
     * ascending i and added to gradTable's old value with one rounding. Rows of distinct ids run in parallel.
     */
    static void backward(Tensor ids, Tensor gradOut, Tensor gradTable) {
        int[] id = checkedIds("embeddingBackward", ids, gradTable);
        int vocab = Math.toIntExact(gradTable.dim(0));
        int d = CpuLoops.lastDim("embeddingBackward", gradTable);
        // counting sort by id, stable: order[start[v] .. start[v + 1]) lists the i with ids[i] == v, ascending
        int[] start = new int[vocab + 1];
        for (int v : id) {
            start[v + 1]++;
        }
        for (int v = 0; v < vocab; v++) {
            start[v + 1] += start[v];
        }
        int[] order = new int[id.length];
        int[] next = start.clone();
        for (int i = 0; i < id.length; i++) {
            order[next[id[i]]++] = i;
        }
        Flat g = Flat.of(gradOut);
        Flat table = Flat.of(gradTable);
        IntStream.range(0, vocab).parallel().filter(v -> start[v + 1] > start[v]).forEach(v -> {
            double[] acc = new double[d];
            double[] row = new double[d];
            for (int k = start[v]; k < start[v + 1]; k++) {
                g.read((long) order[k] * d, row);
                for (int j = 0; j < d; j++) {
                    acc[j] += row[j];
                }
            }
            long at = (long) v * d;
            for (int j = 0; j < d; j++) {
                table.set(at + j, table.get(at + j) + acc[j]);
            }
        });
    }

    /** The ids as ints, each checked to lie in [0, V) of {@code table}. */
    private static int[] checkedIds(String op, Tensor ids, Tensor table) {
        long vocab = table.dim(0);
        Flat f = Flat.of(ids);
        int[] id = new int[Math.toIntExact(ids.numel())];
        for (int i = 0; i < id.length; i++) {
            long v = f.getLong(i);
            if (v < 0 || v >= vocab) {
                throw new ShapeException(op + ": id " + v + " at index " + i + " is outside [0, " + vocab + ") of the table "
                        + table.describe());
            }
            id[i] = (int) v;
        }
        return id;
    }
}

package dev.jtune.engine.fused;

import dev.jtune.engine.DType;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.UnsupportedOpException;
import dev.jtune.engine.backend.FusedOp;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.cpu.CpuLoops;
import dev.jtune.engine.cpu.CpuLoops.Flat;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.cuda.EmbeddingKernels;
import dev.jtune.engine.meta.MetaBackend;

import java.lang.foreign.MemorySegment;
import java.util.stream.IntStream;

/**
 * The embedding lookup's kernels ({@code ops.Embedding} is the op): row gather and deterministic scatter-add;
 * cpu reference, cuda launcher (kernels/embedding.cu through {@link EmbeddingKernels}) and meta rule, registered once
 * as {@link #OP}. ids I32 [N] with values in [0, V); tensors contiguous.
 */
public interface EmbeddingKernel {

    /**
     * {@code out[i, :] = table[ids[i], :]}; table [V, D]; out [N, D] in table's dtype. An id outside [0, V) gives a zero
     * row on cuda and an exception on cpu.
     */
    void forward(Tensor ids, Tensor table, Tensor out);

    /**
     * Deterministic scatter-add: {@code gradTable[v, :] += sum of gradOut[i, :] over i with ids[i] == v}, the terms added
     * in ascending i in fp32, then added to gradTable (which is read). gradOut [N, D]; gradTable [V, D] in gradOut's
     * dtype or F32.
     */
    void backward(Tensor ids, Tensor gradOut, Tensor gradTable);

    FusedOp<EmbeddingKernel> OP = FusedOp.of("embedding", new Cpu(), Cuda::new, new Meta());

    static EmbeddingKernel on(Tensor t) {
        return OP.on(t);
    }

    /** The reference: every id is checked before anything is written. */
    final class Cpu implements EmbeddingKernel {
        private Cpu() {
        }

        @Override
        public void forward(Tensor ids, Tensor table, Tensor out) {
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
         * Each row's terms are summed in double in ascending i and added to gradTable's old value with one rounding.
         * Rows of distinct ids run in parallel.
         */
        @Override
        public void backward(Tensor ids, Tensor gradOut, Tensor gradTable) {
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

    /** kernels/embedding.cu: a vectorised gather; the backward sorts the tokens by id in a scratch workspace. */
    final class Cuda implements EmbeddingKernel {
        private final CudaBackend gpu;

        private Cuda(CudaBackend gpu) {
            this.gpu = gpu;
        }

        private EmbeddingKernels kernels() {
            return gpu.family(EmbeddingKernels.class, b -> new EmbeddingKernels(b.compiler(), b.stream(), b.context(), b.allocator()));
        }

        @Override
        public void forward(Tensor ids, Tensor table, Tensor out) {
            kernels().embedding(ids, table, out);
        }

        @Override
        public void backward(Tensor ids, Tensor gradOut, Tensor gradTable) {
            kernels().embeddingBackward(ids, gradOut, gradTable);
        }
    }

    /** The backward's sort scratch is the workspace. */
    final class Meta implements EmbeddingKernel {
        private Meta() {
        }

        @Override
        public void forward(Tensor ids, Tensor table, Tensor out) {
            // no workspace
        }

        @Override
        public void backward(Tensor ids, Tensor gradOut, Tensor gradTable) {
            MetaBackend.instance().workspace(EmbeddingKernels.backwardWorkspaceBytes(ids.numel(), gradTable.dim(0), gradTable.dim(1))).close();
        }
    }
}

package dev.jtune.engine.ops;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.EmbeddingKernel;

/**
 * Row lookup in an embedding table; its backward is a deterministic scatter-add into the table's gradient, or the rows
 * themselves for a table whose gradient streams to a {@link Autograd.RowGradientSink}.
 */
public final class Embedding {
    private Embedding() {
    }

    /** {@code table[ids]}: table [V, D], ids I32 of any shape; the result has shape ids.shape + [D]. */
    public static Tensor lookup(Tensor table, Tensor ids) {
        String op = "embedding";
        Checks.floating(op, table, "table");
        Checks.rank(op, table, 2, "table");
        Checks.dtype(op, ids, DType.I32, "ids");
        Checks.sameDevice(op, table, ids);
        long[] od = new long[ids.rank() + 1];
        for (int i = 0; i < ids.rank(); i++) {
            od[i] = ids.dim(i);
        }
        od[ids.rank()] = table.dim(1);
        Tensor flatIds = ids.contiguous().reshape(-1);
        return Autograd.op(op, () -> {
            Tensor out = Tensor.empty(Shape.of(flatIds.numel(), table.dim(1)), table.dtype(), table.device());
            if (out.numel() > 0) {
                EmbeddingKernel.on(table).forward(flatIds, table.contiguous(), out);
            }
            return out.reshape(od);
        }, g -> {
            Tensor rows = g.numel() > 0 ? Checks.rows(g) : null;
            if (rows != null && Autograd.streamRows(table, flatIds, rows)) {
                return new Tensor[] {null, null}; // a host-offloaded table takes the rows, not a dense [V, D] gradient
            }
            Tensor grad = Tensor.zeros(table.shape(), table.dtype(), table.device());
            if (rows != null) {
                EmbeddingKernel.on(table).backward(flatIds, rows, grad);
            }
            return new Tensor[] {grad, null};
        }, table, ids);
    }

}

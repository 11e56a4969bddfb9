package dev.jtune.engine.nn;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.fused.FlatCastKernel;
import dev.jtune.engine.fused.ParameterTable;
import dev.jtune.engine.optim.FlatLayout;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * The compute-dtype copies of trainable weights (LoRA's fp32 A and B for its bf16 products), made in one launch a step
 * instead of one cast launch a weight (252 for Gemma 3 270M's adapters, 364 for 1B's; ~3.4 us each on an H100): a flat
 * buffer in the compute dtype over a {@link FlatLayout} of the weights, filled by {@link FlatCastKernel}, whose views
 * {@link Autograd#castKept} returns while {@link #provide}'s handle is open, in forward and in a checkpoint's
 * recomputation alike. The values are the per-weight casts' (the same conversion). The buffer is allocated once, in the
 * scope current at {@link #of}, and freed by {@link #close}.
 */
public final class ComputeCopies implements AutoCloseable {
    private final DType dtype;
    private final ParameterTable table;
    private final Tensor flat;
    private final Map<Tensor, Tensor> copies;

    private ComputeCopies(DType dtype, ParameterTable table, Tensor flat, Map<Tensor, Tensor> copies) {
        this.dtype = dtype;
        this.table = table;
        this.flat = flat;
        this.copies = copies;
    }

    /**
     * The copies in {@code dtype} of {@code weights} (by name, in the flat buffer's order): contiguous leaves of one
     * device and one float dtype other than {@code dtype}, at least one.
     */
    public static ComputeCopies of(SequencedMap<String, Tensor> weights, DType dtype) {
        if (weights.isEmpty()) {
            throw new IllegalArgumentException("ComputeCopies: no weights");
        }
        Tensor first = weights.firstEntry().getValue();
        if (!dtype.isFloating() || first.dtype() == dtype) {
            throw new IllegalArgumentException("ComputeCopies: copies in " + dtype + " of " + first.dtype() + " weights");
        }
        for (Map.Entry<String, Tensor> e : weights.entrySet()) {
            if (e.getValue().gradFn() != null) {
                throw new IllegalArgumentException("ComputeCopies: " + e.getKey() + " is not a leaf");
            }
        }
        FlatLayout layout = FlatLayout.ofParameters("ComputeCopies", weights);
        List<Tensor> leaves = new ArrayList<>(weights.values());
        ParameterTable table = new ParameterTable(leaves, layout); // checks one device, one dtype, contiguous
        Tensor flat = Tensor.zeros(Shape.of(layout.numel()), dtype, first.device());
        Map<Tensor, Tensor> copies = new IdentityHashMap<>();
        for (int i = 0; i < leaves.size(); i++) {
            copies.put(leaves.get(i), layout.view(flat, i));
        }
        return new ComputeCopies(dtype, table, flat, copies);
    }

    /**
     * Makes the copies from the weights' current values (one launch) and hands them to {@link Autograd#castKept} until
     * the handle closes. Call it after the weights last changed (an optimizer step) and close it before they change
     * again: a forward and its backward, or a step's micro-batches, between.
     */
    public Scope.Entered provide() {
        FlatCastKernel.on(flat).cast(table, flat);
        return Autograd.provideCasts(copies);
    }

    /** The copies' dtype. */
    public DType dtype() {
        return dtype;
    }

    /** The weights copied, in the flat buffer's order. */
    public List<Tensor> weights() {
        return table.parameters();
    }

    /** Bytes of the flat buffer (with its alignment gaps). */
    public long bytes() {
        return flat.numel() * dtype.byteSize();
    }

    /** Frees the flat buffer; a later {@link #provide} is an error. */
    @Override
    public void close() {
        flat.close();
    }
}

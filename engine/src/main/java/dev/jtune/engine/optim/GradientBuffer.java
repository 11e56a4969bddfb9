package dev.jtune.engine.optim;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;

import java.util.ArrayList;
import java.util.List;
import java.util.SequencedMap;

/**
 * One persistent flat gradient buffer for parameters of one device and dtype: allocated once (counted as
 * GRADIENTS in the scope current at construction), each parameter's gradient attached as a view of it
 * ({@link Autograd#attachGradient}), so backward accumulates in place, {@link #zero} is one fill launch, and
 * clipping and the optimizer read the whole buffer in one launch each. The alignment gaps stay zero: every kernel
 * over the buffer may read them (they add nothing to a sum of squares, and their state stays zero).
 */
public final class GradientBuffer {
    private final FlatLayout layout;
    private final List<Tensor> params;
    private final Tensor flat;

    private GradientBuffer(FlatLayout layout, List<Tensor> params, Tensor flat) {
        this.layout = layout;
        this.params = params;
        this.flat = flat;
    }

    /**
     * Attaches a flat buffer to {@code params} (name to leaf, all of one device and floating dtype, requiring grad):
     * any gradient they already hold is freed.
     */
    public static GradientBuffer attach(SequencedMap<String, Tensor> params) {
        FlatLayout layout = FlatLayout.ofParameters("GradientBuffer", params);
        Tensor first = params.firstEntry().getValue();
        DType dtype = first.dtype();
        Device device = first.device();
        Tensor flat;
        try (Scope.Entered c = Scope.countAs(MemoryCategory.GRADIENTS)) {
            flat = Tensor.zeros(Shape.of(layout.numel()), dtype, device);
        }
        List<Tensor> leaves = new ArrayList<>(params.values());
        for (int i = 0; i < leaves.size(); i++) {
            Autograd.attachGradient(leaves.get(i), layout.view(flat, i));
        }
        return new GradientBuffer(layout, List.copyOf(leaves), flat);
    }

    public FlatLayout layout() {
        return layout;
    }

    /** The parameters in layout order. */
    public List<Tensor> parameters() {
        return params;
    }

    /** The whole buffer, 1-D, {@link FlatLayout#numel} elements. */
    public Tensor flat() {
        return flat;
    }

    public DType dtype() {
        return flat.dtype();
    }

    public Device device() {
        return flat.device();
    }

    /** Zeroes every gradient (and the gaps) in one fill. */
    public void zero() {
        Backends.of(flat).fill(flat, 0);
    }
}

package dev.jtune.engine.fused;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.optim.FlatLayout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * The parameters of one flat group (one device and dtype) as a multi-tensor kernel finds them: per
 * {@link FlatLayout} entry, the parameter's address, its first element in the flat buffers and its element count, as
 * an I64 [entries, 3] tensor on the group's device. It is built once, in the scope current at construction (the
 * optimizer's), and rewritten in place only when a parameter's address changed, which {@link #current} checks with
 * one comparison per parameter before each launch.
 */
public final class ParameterTable {
    private final List<Tensor> params;
    private final FlatLayout layout;
    private final long[] addresses;
    private final Tensor table;

    /** {@code params}: contiguous, of one device and floating dtype, in layout order with the layout's shapes. */
    public ParameterTable(List<Tensor> params, FlatLayout layout) {
        this.params = List.copyOf(params);
        this.layout = layout;
        if (this.params.size() != layout.entries().size() || this.params.isEmpty()) {
            throw new IllegalArgumentException("ParameterTable: " + this.params.size() + " parameters for a layout of "
                    + layout.entries().size() + " entries");
        }
        Tensor first = this.params.getFirst();
        for (int i = 0; i < this.params.size(); i++) {
            Tensor p = this.params.get(i);
            FlatLayout.Entry e = layout.entries().get(i);
            if (!p.shape().equals(e.shape()) || !p.isContiguous() || p.dtype() != first.dtype() || !p.device().equals(first.device())
                    || !p.dtype().isFloating()) {
                throw new IllegalArgumentException("ParameterTable: " + e.name() + " is " + p.describe() + ", the group needs a contiguous "
                        + e.shape() + " " + first.dtype() + " on " + first.device());
            }
        }
        this.addresses = new long[this.params.size()];
        this.table = Tensor.zeros(Shape.of(this.params.size(), 3), DType.I64, first.device());
        write();
    }

    public List<Tensor> parameters() {
        return params;
    }

    public FlatLayout layout() {
        return layout;
    }

    public DType dtype() {
        return params.getFirst().dtype();
    }

    public Device device() {
        return params.getFirst().device();
    }

    /** The table, rewritten first when a parameter's address changed since it was last written. */
    public Tensor current() {
        for (int i = 0; i < addresses.length; i++) {
            if (params.get(i).address() != addresses[i]) {
                write();
                break;
            }
        }
        return table;
    }

    private void write() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(ValueLayout.JAVA_LONG, 3L * addresses.length);
            for (int i = 0; i < addresses.length; i++) {
                FlatLayout.Entry e = layout.entries().get(i);
                addresses[i] = params.get(i).address();
                host.setAtIndex(ValueLayout.JAVA_LONG, 3L * i, addresses[i]);
                host.setAtIndex(ValueLayout.JAVA_LONG, 3L * i + 1, e.offset());
                host.setAtIndex(ValueLayout.JAVA_LONG, 3L * i + 2, e.numel());
            }
            Backends.of(table).copyFromHost(host, table);
        }
    }
}

package dev.jtune.engine.backend;

import dev.jtune.engine.Device;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cuda.CudaBackend;

import java.util.Objects;
import java.util.function.Function;

/**
 * The registration of one fused op: its kernel interface {@code K} implemented once per backend kind. The cpu
 * reference and the meta rule are single instances; the cuda launcher is built once per GPU by {@code cuda} (cheaply:
 * it compiles nothing until it first launches). A backend answers {@link Backend#kernels} by kind, so adding an op
 * touches no backend: it declares one {@code FusedOp} beside its implementations (see {@code dev.jtune.engine.fused}).
 *
 * <p>The meta implementation allocates, as workspace, exactly what the cuda launcher allocates (through the same
 * size function), so that the meta device predicts the GPU's allocations; outputs are allocated by the op's
 * shared code on every device alike.
 */
public final class FusedOp<K> {
    private final String name;
    private final K cpu;
    private final Function<CudaBackend, ? extends K> cuda;
    private final K meta;

    private FusedOp(String name, K cpu, Function<CudaBackend, ? extends K> cuda, K meta) {
        this.name = Objects.requireNonNull(name, "name");
        this.cpu = Objects.requireNonNull(cpu, name + ": cpu reference");
        this.cuda = Objects.requireNonNull(cuda, name + ": cuda launcher");
        this.meta = Objects.requireNonNull(meta, name + ": meta rule");
    }

    /** Registers an op's three implementations; keep the result in a constant next to them. */
    public static <K> FusedOp<K> of(String name, K cpu, Function<CudaBackend, ? extends K> cuda, K meta) {
        return new FusedOp<>(name, cpu, cuda, meta);
    }

    /** The implementation for {@code t}'s device. */
    public K on(Tensor t) {
        return Backends.of(t).kernels(this);
    }

    /** The implementation for {@code device}. */
    public K on(Device device) {
        return Backends.get(device).kernels(this);
    }

    public String name() {
        return name;
    }

    /** The cpu reference (what {@link Backend#kernels} of the cpu backend returns). */
    public K cpu() {
        return cpu;
    }

    /** The meta rule (what {@link Backend#kernels} of the meta backend returns). */
    public K meta() {
        return meta;
    }

    /** A new cuda launcher for {@code backend}; the cuda backend calls this once and keeps it. */
    public K newCuda(CudaBackend backend) {
        return Objects.requireNonNull(cuda.apply(backend), name + ": cuda launcher");
    }

    @Override
    public String toString() {
        return "FusedOp[" + name + "]";
    }
}

package dev.jtune.engine.optim;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.DTypeException;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.AdamWStep;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.backend.HostVisible;
import dev.jtune.engine.backend.TensorInternals;
import dev.jtune.engine.fused.AdamW8bitKernel;
import dev.jtune.engine.optim.host.HostAdamW;
import dev.jtune.engine.optim.host.HostAdamW8bit;
import dev.jtune.engine.optim.host.Transfers;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SequencedMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;

/**
 * torch.optim.AdamW with its state on the host (ZeRO-Offload on one device): the fp32 master weights and both fp32
 * moments live in pinned host memory ({@link Placement#HOST_MAPPED} tensors, counted in the host figure of the memory
 * statistics); the device keeps only the parameters and, unless the gradients are {@link Gradients#STREAMED} to the
 * host during backward, one flat {@link GradientBuffer} per dtype. With the device buffer, a step copies the
 * gradients to the host bucket by bucket (a bucket: a slice of a flat buffer, {@link Builder#bucketElements}) on a copy
 * stream, runs the update on every core with the Vector API ({@link HostAdamW}) on each bucket as it arrives, and
 * copies the updated weights (rounded to bf16 for bf16 parameters) back per bucket on a second copy stream, so the two
 * directions and the host update overlap; the device's next work waits for the copies (an event), not the host.
 * <p>
 * The arithmetic is optim.cu's AdamW in fp32 (the device AdamW's, up to its fused multiply-adds; the cpu AdamW's
 * double-precision reference within fp32 rounding). Parameters must be F32 or BF16 and on one device (cpu and meta
 * work too: plain host copies, and no data). {@link #state()} has the device {@link AdamW}'s names, shapes and order
 * ({@code <name>.exp_avg}, {@code <name>.exp_avg_sq}, and {@code <name>.master} for bf16 parameters), so a checkpoint
 * restores into either. With {@link Schedule#DELAYED} (ZeRO-Offload's one-step delayed update) the arithmetic
 * changes: see there. With {@link Moments#BLOCKWISE_8BIT} the host keeps bitsandbytes' 8-bit moments instead (as
 * {@link AdamW8bit} does on the device, with its state names, so a checkpoint restores into either). State is
 * allocated in the scope current at construction; {@link #close()} releases the copy streams (the memory goes with
 * its scope).
 */
public final class HostOffloadAdamW implements Optimizer, AutoCloseable {
    /**
     * Elements per bucket by default: 64 Mi (128 MiB of bf16 gradients per copy). On an H100 host (16 cores, 268M bf16
     * parameters, bench OffloadStep) 16 Mi and 64 Mi buckets update alike (58-77 ms and 57-63 ms) since the vector loop
     * compiles as a method; an earlier reading that 16 Mi was 3x slower was the JIT, not the buckets.
     */
    public static final long DEFAULT_BUCKET_ELEMENTS = 1L << 26;
    /** {@code -Djtune.offload.timing=true}: each in-step update prints where its time went (a measurement aid). */
    private static final boolean TIMING = Boolean.getBoolean("jtune.offload.timing");
    /** {@code -Djtune.offload.rowGradients=false}: lookups stream dense [V, D] contributions (a measurement aid). */
    private static final boolean ROW_GRADIENTS = Boolean.parseBoolean(System.getProperty("jtune.offload.rowGradients", "true"));
    /** STREAMED, for {@link #TIMING}: how long the last wait for the streamed copies and adds took. */
    private long drainNanos;
    /** STREAMED, for {@link #TIMING}: how long the last norm of the host gradients took. */
    private long normNanos;

    /** When step i's host update reaches the device's weights. */
    public enum Schedule {
        /** Within {@link #step()}: the next forward uses step i's weights; the update is AdamW's. */
        IN_STEP,
        /**
         * ZeRO-Offload's one-step delayed parameter update ({@code --delayed_optimizer_step}): {@link #step()} i only
         * starts the copies of gradient i and the host update i, which runs while the device computes step i + 1;
         * step i + 1's {@link #step()} waits for it and copies its weights to the device. So the gradient of step i + 1
         * is computed on the weights of step i - 1 (one update stale) and the arithmetic differs from AdamW's from the
         * second step on. {@link #flush()} applies a pending update ({@link #state()}, {@link #restore} and
         * {@link #close()} call it): call it before saving the weights (a checkpoint, the final model), so that they and
         * the state are of the same step; a run resumed from such a checkpoint equals the uninterrupted one, which
         * flushed at the same step.
         */
        DELAYED
    }

    /** Where the gradients accumulate between steps. */
    public enum Gradients {
        /** In one flat buffer per dtype on the device, copied to the host bucket by bucket when the step starts. */
        DEVICE_BUFFER,
        /**
         * On the host, in fp32: every contribution backward computes is copied to the host while backward goes on and
         * added there ({@link StreamedGradients}), so the device keeps no gradient buffer; clipping and the norm run
         * on the host ({@link #clipHeldGradients}). The sums round once in fp32 where the buffer rounds to the
         * parameters' dtype, so bf16 runs differ from {@link #DEVICE_BUFFER}'s in the last bits.
         */
        STREAMED
    }

    /** How the host keeps the moments. */
    public enum Moments {
        /** fp32 moments: torch.optim.AdamW ({@link HostAdamW}). */
        FP32,
        /**
         * bitsandbytes' blockwise 8-bit AdamW ({@link AdamW8bit}'s algorithm, {@link HostAdamW8bit}): parameters of
         * at least {@link AdamW8bit#MIN_8BIT_SIZE} elements keep uint8 codes and fp32 block maxima (2 bytes and a
         * 64th per element), smaller ones fp32 moments stepped as bitsandbytes' 32-bit kernel (the decay after the Adam
         * step). The master copy stays fp32.
         */
        BLOCKWISE_8BIT
    }

    /** A group's update: the moments' form, and for fp32 moments where the decay goes. */
    private enum Update {
        /** torch's AdamW: fp32 moments, decay first. */
        FP32,
        /** bitsandbytes' 32-bit step of a small tensor beside 8-bit ones: fp32 moments, decay after. */
        FP32_DECAY_AFTER,
        /** bitsandbytes' blockwise 8-bit step. */
        BLOCKWISE_8BIT
    }

    /** Settings beyond the parameters and AdamW's hyper-parameters. */
    public static final class Builder {
        private final SequencedMap<String, Tensor> params;
        private final AdamW.Config config;
        private long bucketElements = DEFAULT_BUCKET_ELEMENTS;
        private Schedule schedule = Schedule.IN_STEP;
        private Gradients gradients = Gradients.DEVICE_BUFFER;
        private Moments moments = Moments.FP32;
        private ParamGroup.Assignment groupOf = ParamGroup.Assignment.UNIFORM;

        private Builder(SequencedMap<String, Tensor> params, AdamW.Config config) {
            this.params = new LinkedHashMap<>(params);
            this.config = config;
        }

        /** Elements per copy-and-update bucket (> 0): smaller overlaps sooner, larger copies more per call. */
        public Builder bucketElements(long elements) {
            if (elements <= 0) {
                throw new IllegalArgumentException("HostOffloadAdamW: bucket elements must be positive, got " + elements);
            }
            this.bucketElements = elements;
            return this;
        }

        public Builder schedule(Schedule value) {
            this.schedule = java.util.Objects.requireNonNull(value, "schedule");
            return this;
        }

        /** Where gradients accumulate ({@link Gradients#STREAMED} takes {@link Schedule#IN_STEP} only, for now). */
        public Builder gradients(Gradients value) {
            this.gradients = java.util.Objects.requireNonNull(value, "gradients");
            return this;
        }

        /** How the host keeps the moments (fp32 by default). */
        public Builder moments(Moments value) {
            this.moments = java.util.Objects.requireNonNull(value, "moments");
            return this;
        }

        /** Each parameter's learning rate and weight decay (torch's param_groups; by default the optimizer's for all). */
        public Builder groups(ParamGroup.Assignment value) {
            this.groupOf = java.util.Objects.requireNonNull(value, "groups");
            return this;
        }

        public HostOffloadAdamW build() {
            if (gradients == Gradients.STREAMED && schedule == Schedule.DELAYED) {
                throw new IllegalArgumentException("HostOffloadAdamW: streamed gradients with the delayed step are not built "
                        + "(the delayed update reads one step's gradients while backward streams the next step's): use the device buffer");
            }
            return new HostOffloadAdamW(this);
        }
    }

    /**
     * One dtype's parameters of one update kind and home: the device side (parameters as flat views, the gradient
     * buffer unless streamed) and the host side (flat master, moments, a copy of the gradients, their fp32 accumulator
     * when streamed and, for bf16 parameters on the device, the weights rounded for the device), over one layout. The
     * moments are fp32 {@code m}, {@code v}, or 8-bit {@code state8} (the other null).
     * {@code homed}: bf16 parameters that live in host memory (weight offload), whose rounded weights the update
     * writes straight into them (no {@code weights16} copy). {@code spans}: the host buffers the update runs over
     * (empty on meta, no bytes to update).
     */
    private record Group(ParamGroup hyper, Update update, boolean homed, FlatLayout layout, List<Tensor> params, GradientBuffer grads, List<Tensor> flatParams,
                         Tensor master, Tensor m, Tensor v, AdamW8bitKernel.State state8, Tensor hostGrads, Tensor acc, Tensor weights16,
                         List<Span> spans) {
        /** What the device's weights are copied from: the bf16 rounding, or the fp32 master itself for F32 parameters. */
        Tensor weightsSource() {
            return weights16 != null ? weights16 : master;
        }

        /** 16-bit parameters: the master is a copy of its own, checkpointed as {@code .master}. */
        boolean sixteenBit() {
            return params.getFirst().dtype() != DType.F32;
        }
    }

    /**
     * Elements [from, to) of a group's flat buffers and the host buffers that update them ({@code buffers} for fp32
     * moments, {@code buffers8} for 8-bit), indexed from {@code from}: the whole group, or, in a homed group, one
     * parameter, whose buffers' bf16 output is the parameter's host memory.
     */
    private record Span(long from, long to, HostAdamW.Buffers buffers, HostAdamW8bit.Buffers buffers8) {
    }

    /** Elements [from, to) of group {@code group}'s flat buffers. */
    private record Bucket(int group, long from, long to) {
    }

    private final Device device;
    private final long bucketElements;
    private final Schedule schedule;
    private final Gradients gradients;
    private final Moments moments;
    private final List<Group> groups = new ArrayList<>();
    private final List<Bucket> buckets = new ArrayList<>();
    private final SequencedMap<String, Tensor> state = new LinkedHashMap<>();
    private final Transfers transfers;
    private final ExecutorService background;
    /** STREAMED: the host side of the gradients; null otherwise. */
    private final StreamedGradients streamed;
    /** STREAMED: the factor the next update multiplies the gradients by (clipping), 1 for none. */
    private double gradScale = 1;
    /** STREAMED: this step's gradients are all on the host ({@link #finishGradients}); reset by {@link #zeroGrad}. */
    private boolean finished;
    private AdamW.Config config;
    private long step;
    /** DELAYED: the host update started by the last step, not yet on the device. */
    private Future<?> pending;
    /** After {@link #restore}: F32 groups take their master from the parameters before the next update. */
    private boolean masterFromParams;
    private boolean closed;

    private HostOffloadAdamW(Builder b) {
        if (b.params.isEmpty()) {
            throw new IllegalArgumentException("HostOffloadAdamW: no parameters");
        }
        this.config = b.config;
        this.bucketElements = b.bucketElements;
        this.schedule = b.schedule;
        this.gradients = b.gradients;
        this.moments = b.moments;
        this.device = b.params.firstEntry().getValue().device();
        record Key(DType dtype, Update update, boolean homed, ParamGroup hyper) {
        }
        Map<Key, SequencedMap<String, Tensor>> byKind = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : b.params.entrySet()) {
            Tensor p = e.getValue();
            if (p.dtype() != DType.F32 && p.dtype() != DType.BF16) {
                throw new DTypeException("HostOffloadAdamW: parameter " + e.getKey() + " is " + p.describe()
                        + "; the host update takes F32 or BF16 parameters");
            }
            if (!p.device().equals(device)) {
                throw new IllegalArgumentException("HostOffloadAdamW: parameter " + e.getKey() + " is on " + p.device()
                        + ", the others on " + device + " (one device per optimizer)");
            }
            if (!p.isContiguous()) {
                throw new IllegalArgumentException("HostOffloadAdamW: parameter " + e.getKey() + " " + p.describe()
                        + " must be contiguous (its weights are copied back in place)");
            }
            if (p.placement() == Placement.HOST_MAPPED && gradients != Gradients.STREAMED) {
                throw new IllegalArgumentException("HostOffloadAdamW: parameter " + e.getKey() + " lives in host memory (weight"
                        + " offload); its gradients must stream to the host (Gradients.STREAMED), there is no device buffer for them");
            }
            Update update = moments == Moments.FP32 ? Update.FP32
                    : p.numel() >= AdamW8bit.MIN_8BIT_SIZE ? Update.BLOCKWISE_8BIT : Update.FP32_DECAY_AFTER;
            boolean homed = p.placement() == Placement.HOST_MAPPED && p.dtype() == DType.BF16;
            byKind.computeIfAbsent(new Key(p.dtype(), update, homed, b.groupOf.of(e.getKey())), k -> new LinkedHashMap<>()).put(e.getKey(), p);
        }
        try (Autograd.GradMode off = Autograd.noGrad()) {
            for (Map.Entry<Key, SequencedMap<String, Tensor>> e : byKind.entrySet()) {
                groups.add(group(e.getKey().hyper(), e.getKey().update(), e.getKey().homed(), e.getValue()));
            }
            Backends.get(device).synchronize(); // the master copies and zero fills are written before the host reads them
        }
        for (int gi = 0; gi < groups.size(); gi++) {
            Group g = groups.get(gi);
            long numel = g.layout().numel();
            // an 8-bit bucket is whole quantization blocks (the layout's numel is a multiple of the block)
            long size = g.update() == Update.BLOCKWISE_8BIT ? Math.ceilDiv(bucketElements, AdamW8bitKernel.BLOCK) * AdamW8bitKernel.BLOCK
                    : bucketElements;
            for (long from = 0; from < numel; from += size) {
                buckets.add(new Bucket(gi, from, Math.min(numel, from + size)));
            }
        }
        Map<String, SequencedMap<String, Tensor>> byName = new LinkedHashMap<>();
        for (Group g : groups) {
            for (int i = 0; i < g.layout().entries().size(); i++) {
                byName.put(g.layout().entries().get(i).name(), stateOf(g, i));
            }
        }
        for (String name : b.params.keySet()) { // the parameters' order, as AdamW's and AdamW8bit's
            state.putAll(byName.get(name));
        }
        this.transfers = Transfers.of(device);
        this.streamed = gradients == Gradients.STREAMED ? streamGradients() : null;
        this.background = schedule == Schedule.DELAYED ? StreamedGradients.hostThread("jtune-offload-update") : null;
    }

    public static Builder builder(SequencedMap<String, Tensor> params, AdamW.Config config) {
        return new Builder(params, config);
    }

    /**
     * Entry i's state as the device optimizers name it: {@code .exp_avg}, {@code .exp_avg_sq} (fp32, {@link AdamW}'s)
     * or {@code .exp_avg.q8}, {@code .exp_avg.absmax}, {@code .exp_avg_sq.q8}, {@code .exp_avg_sq.absmax}
     * ({@link AdamW8bit}'s), then {@code .master} for a 16-bit parameter.
     */
    private static SequencedMap<String, Tensor> stateOf(Group g, int i) {
        Tensor master = g.sixteenBit() ? g.master() : null;
        if (g.state8() != null) {
            return AdamW8bit.entryState(g.layout(), i, g.state8(), master);
        }
        String name = g.layout().entries().get(i).name();
        SequencedMap<String, Tensor> kinds = new LinkedHashMap<>();
        kinds.put(name + ".exp_avg", g.layout().view(g.m(), i));
        kinds.put(name + ".exp_avg_sq", g.layout().view(g.v(), i));
        if (master != null) {
            kinds.put(name + ".master", g.layout().view(master, i));
        }
        return kinds;
    }

    private Group group(ParamGroup hyper, Update update, boolean homed, SequencedMap<String, Tensor> named) {
        GradientBuffer grads = null;
        FlatLayout layout;
        List<Tensor> params = List.copyOf(named.values());
        if (gradients == Gradients.STREAMED) {
            SequencedMap<String, Shape> shapes = new LinkedHashMap<>();
            named.forEach((name, p) -> shapes.put(name, p.shape()));
            layout = FlatLayout.of(shapes);
        } else {
            grads = GradientBuffer.attach(named);
            layout = grads.layout();
        }
        DType dtype = params.getFirst().dtype();
        Shape flat = Shape.of(layout.numel());
        Tensor master;
        Tensor m = null;
        Tensor v = null;
        AdamW8bitKernel.State state8 = null;
        Tensor hostGrads;
        Tensor weights16 = null;
        try (Scope.Entered c = Scope.countAs(MemoryCategory.MASTER_WEIGHTS)) {
            master = Tensor.zeros(flat, DType.F32, device, Placement.HOST_MAPPED);
        }
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
            if (update == Update.BLOCKWISE_8BIT) {
                state8 = AdamW8bitKernel.State.zeros(layout.numel(), device, Placement.HOST_MAPPED);
            } else {
                m = Tensor.zeros(flat, DType.F32, device, Placement.HOST_MAPPED);
                v = Tensor.zeros(flat, DType.F32, device, Placement.HOST_MAPPED);
            }
        }
        Tensor acc = null;
        try (Scope.Entered c = Scope.countAs(MemoryCategory.GRADIENTS)) {
            hostGrads = Tensor.zeros(flat, dtype, device, Placement.HOST_MAPPED);
            if (gradients == Gradients.STREAMED) {
                acc = Tensor.zeros(flat, DType.F32, device, Placement.HOST_MAPPED);
            }
        }
        if (dtype == DType.BF16 && !homed) {
            try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
                weights16 = Tensor.zeros(flat, DType.BF16, device, Placement.HOST_MAPPED);
            }
        }
        List<Tensor> flatParams = new ArrayList<>();
        for (int i = 0; i < layout.entries().size(); i++) {
            Tensor p = params.get(i);
            flatParams.add(p.reshape(p.numel()));
            Ops.copyInto(p, layout.view(master, i));
        }
        Tensor updateGrads = acc != null ? acc : hostGrads; // the update reads the fp32 sums when streamed
        List<Span> spans = new ArrayList<>();
        if (device.kind() != Device.Kind.META) {
            if (!homed) {
                MemorySegment out = weights16 == null ? null : host(weights16);
                spans.add(state8 != null
                        ? new Span(0, layout.numel(), null, HostAdamW8bit.Buffers.over(layout, host(master), host(state8.m()), host(state8.v()),
                                host(state8.absmaxM()), host(state8.absmaxV()), host(updateGrads), updateGrads.dtype(), out))
                        : new Span(0, layout.numel(), new HostAdamW.Buffers(host(master), host(m), host(v), host(updateGrads),
                                updateGrads.dtype(), out), null));
            } else {
                for (int i = 0; i < layout.entries().size(); i++) {
                    FlatLayout.Entry e = layout.entries().get(i);
                    Tensor home = flatParams.get(i);
                    spans.add(parameterSpan(e.offset(), e.end(), master, m, v, state8, updateGrads,
                            host(home).asSlice(home.dtype().bytesFor(home.offset()), home.dtype().bytesFor(home.numel()))));
                }
            }
        }
        return new Group(hyper, update, homed, layout, params, grads, List.copyOf(flatParams), master, m, v, state8, hostGrads, acc,
                weights16, List.copyOf(spans));
    }

    /**
     * One parameter's elements [from, to) of a group's host buffers (fp32 {@code m}, {@code v} or 8-bit {@code state8})
     * as an update's buffers, writing its bf16 weights to {@code out}.
     */
    private static Span parameterSpan(long from, long to, Tensor master, Tensor m, Tensor v, AdamW8bitKernel.State state8, Tensor grads,
                                      MemorySegment out) {
        long n = to - from;
        MemorySegment g = host(grads).asSlice(grads.dtype().bytesFor(from), grads.dtype().bytesFor(n));
        MemorySegment w = host(master).asSlice(4 * from, 4 * n);
        if (state8 != null) { // from is a block's start: every parameter starts one; its last block's rest is padding
            long b0 = from / AdamW8bitKernel.BLOCK;
            long blocks = Math.ceilDiv(n, AdamW8bitKernel.BLOCK);
            return new Span(from, to, null, new HostAdamW8bit.Buffers(w, host(state8.m()).asSlice(from, n), host(state8.v()).asSlice(from, n),
                    host(state8.absmaxM()).asSlice(4 * b0, 4 * blocks), host(state8.absmaxV()).asSlice(4 * b0, 4 * blocks), g, grads.dtype(),
                    out, new long[] {0}, new long[] {n}));
        }
        return new Span(from, to, new HostAdamW.Buffers(w, host(m).asSlice(4 * from, 4 * n), host(v).asSlice(4 * from, 4 * n), g, grads.dtype(), out),
                null);
    }

    /** STREAMED: every parameter's gradient contributions go to the host ({@link StreamedGradients}). */
    private StreamedGradients streamGradients() {
        List<StreamedGradients.Target> targets = new ArrayList<>();
        boolean data = device.kind() != Device.Kind.META;
        for (Group g : groups) {
            targets.add(new StreamedGradients.Target(g.layout(), g.hostGrads(), data ? host(g.hostGrads()) : null, data ? host(g.acc()) : null));
        }
        StreamedGradients s = new StreamedGradients(transfers, Scope.current(), targets);
        for (int gi = 0; gi < groups.size(); gi++) {
            int group = gi;
            List<Tensor> params = groups.get(gi).params();
            for (int i = 0; i < params.size(); i++) {
                int entry = i;
                Autograd.streamGradient(params.get(i), new Autograd.RowGradientSink() {
                    @Override
                    public void accept(Tensor contribution, boolean owned) {
                        s.accept(group, entry, contribution, owned);
                    }

                    @Override
                    public boolean acceptRows(Tensor ids, Tensor rows) {
                        return ROW_GRADIENTS && s.acceptRows(group, entry, ids, rows);
                    }
                });
            }
        }
        return s;
    }

    /** The host memory of a host-visible tensor (host-mapped, or any on cpu): what the host step reads and writes. */
    static MemorySegment host(Tensor t) {
        return ((HostVisible) TensorInternals.storage(t)).hostSegment();
    }

    // ---------------------------------------------------------------- the step

    @Override
    public void step() {
        checkOpen();
        step++;
        // gradScale: the clipping factor of streamed gradients (clipHeldGradients), 1 otherwise
        List<StepScalars> s = new ArrayList<>(groups.size()); // each group's, by group index
        for (Group g : groups) {
            s.add(new StepScalars(g.hyper().step(config, step), gradScale));
        }
        try (Autograd.GradMode off = Autograd.noGrad()) {
            if (streamed != null) {
                refreshMaster();
                finishGradients();
                long t1 = System.nanoTime();
                for (int k = 0; k < buckets.size(); k++) {
                    update(k, s);
                    queueWeights(k);
                }
                transfers.computeAfterCopies(); // the next forward reads the new weights
                gradScale = 1;
                if (TIMING) {
                    System.err.printf(java.util.Locale.ROOT, "offload step %d (streamed): %s; step: drain %.1f ms, norm %.1f ms, host update and queue weights %.1f ms%n",
                            step, streamed.report(), drainNanos / 1e6, normNanos / 1e6, (System.nanoTime() - t1) / 1e6);
                }
            } else if (schedule == Schedule.IN_STEP) {
                long t0 = System.nanoTime();
                refreshMaster();
                transfers.afterCompute();
                queueGradients();
                long t1 = System.nanoTime();
                long waited = 0;
                long updating = 0;
                long queueing = 0;
                for (int k = 0; k < buckets.size(); k++) {
                    long a = System.nanoTime();
                    transfers.awaitToHost(k);
                    long b = System.nanoTime();
                    update(k, s);
                    long c = System.nanoTime();
                    queueWeights(k);
                    waited += b - a;
                    updating += c - b;
                    queueing += System.nanoTime() - c;
                }
                transfers.computeAfterCopies(); // the next forward reads the new weights
                if (TIMING) {
                    System.err.printf(java.util.Locale.ROOT, "offload step %d: queue gradients %.1f ms, wait for them %.1f ms, host update %.1f ms, queue weights %.1f ms%n",
                            step, (t1 - t0) / 1e6, waited / 1e6, updating / 1e6, queueing / 1e6);
                }
            } else {
                flush();
                refreshMaster();
                transfers.afterCompute();
                queueGradients();
                pending = background.submit(() -> {
                    transfers.awaitToDevice(); // the last weights copied out of the host buffers the update rewrites
                    for (int k = 0; k < buckets.size(); k++) {
                        transfers.awaitToHost(k);
                        update(k, s);
                    }
                });
            }
        }
    }

    /**
     * DELAYED: waits for the pending host update and queues its weights to the device (the device's next work waits
     * for them). Call before reading the device's weights when a run ends; {@link #state()} and {@link #restore} call
     * it. Nothing to do with {@link Schedule#IN_STEP}.
     */
    @Override
    public void flush() {
        checkOpen();
        if (pending == null) {
            return;
        }
        try {
            StreamedGradients.await(pending, "HostOffloadAdamW", "the host update");
        } finally {
            pending = null;
        }
        try (Autograd.GradMode off = Autograd.noGrad()) {
            transfers.afterCompute(); // the weights are overwritten only once the device's work that reads them is done
            for (int k = 0; k < buckets.size(); k++) {
                queueWeights(k);
            }
            transfers.markToDevice();
            transfers.computeAfterCopies();
        }
    }

    private void queueGradients() {
        for (int k = 0; k < buckets.size(); k++) {
            Bucket b = buckets.get(k);
            Group g = groups.get(b.group());
            transfers.toHost(g.grads().flat().slice(0, b.from(), b.to()), g.hostGrads().slice(0, b.from(), b.to()));
            transfers.markToHost(k);
        }
    }

    /** One step's scalars for each kind of update. */
    private record StepScalars(HostAdamW.Scalars fp32, HostAdamW.Scalars undecayed, float decayAfter, HostAdamW8bit.Scalars eightBit) {
        StepScalars(AdamWStep step, double gradScale) {
            this(HostAdamW.Scalars.of(step, gradScale),
                    HostAdamW.Scalars.of(step.withoutDecay(), gradScale),
                    step.weightDecay() > 0 ? (float) (1 - step.lr() * step.weightDecay()) : 1f, HostAdamW8bit.Scalars.of(step, gradScale));
        }
    }

    /** Bucket k's host update, with its group's scalars from {@code scalars} (by group index). */
    private void update(int k, List<StepScalars> scalars) {
        Bucket b = buckets.get(k);
        Group g = groups.get(b.group());
        StepScalars s = scalars.get(b.group());
        for (Span sp : g.spans()) {
            long lo = Math.max(b.from(), sp.from());
            long hi = Math.min(b.to(), sp.to());
            if (lo >= hi) {
                continue;
            }
            long from = lo - sp.from();
            long to = hi - sp.from();
            switch (g.update()) {
                case FP32 -> HostAdamW.step(sp.buffers(), from, to, s.fp32());
                case FP32_DECAY_AFTER -> { // bitsandbytes' 32-bit step, as AdamW8bit's small tensors: no decay, then one scale
                    HostAdamW.step(sp.buffers(), from, to, s.undecayed());
                    if (s.decayAfter() != 1f) {
                        HostAdamW.scaleMaster(sp.buffers(), from, to, s.decayAfter());
                    }
                }
                case BLOCKWISE_8BIT -> HostAdamW8bit.step(sp.buffers8(), from, to, s.eightBit());
            }
        }
    }

    /** Queues bucket k's weights to the parameters it overlaps (the alignment gaps belong to none). */
    private void queueWeights(int k) {
        Bucket b = buckets.get(k);
        Group g = groups.get(b.group());
        if (g.homed()) {
            return; // the update wrote the parameters' host memory itself
        }
        Tensor source = g.weightsSource();
        List<FlatLayout.Entry> entries = g.layout().entries();
        for (int i = 0; i < entries.size(); i++) {
            FlatLayout.Entry e = entries.get(i);
            long lo = Math.max(b.from(), e.offset());
            long hi = Math.min(b.to(), e.end());
            if (lo < hi) {
                Tensor into = g.flatParams().get(i).slice(0, lo - e.offset(), hi - e.offset());
                if (into.placement() == Placement.HOST_MAPPED) { // an offloaded F32 weight: its home is host memory, written here
                    copyOnHost(source.slice(0, lo, hi), into);
                } else {
                    transfers.toDevice(source.slice(0, lo, hi), into);
                }
            }
        }
    }

    /**
     * A host copy between host-mapped tensors (the updated weights into an offloaded parameter's host value), done
     * when it returns; nothing on meta. The device reads such values only through copies the weight store queues after
     * the step (it refetches every layer), so no device work is reading them now.
     */
    private void copyOnHost(Tensor from, Tensor into) {
        if (device.kind() == Device.Kind.META) {
            return;
        }
        long bytes = from.dtype().bytesFor(from.numel());
        MemorySegment.copy(host(from), from.dtype().bytesFor(from.offset()), host(into), into.dtype().bytesFor(into.offset()), bytes);
    }

    /** STREAMED: every contribution copied and added, parameters without one zeroed; once per step. */
    private void finishGradients() {
        if (!finished) {
            long t0 = System.nanoTime();
            streamed.drain();
            streamed.finish();
            drainNanos = System.nanoTime() - t0;
            finished = true;
        }
    }

    /**
     * STREAMED: the global norm of the gradients accumulated on the host since {@link #zeroGrad}, and with
     * {@code maxNorm > 0} the factor {@code min(1, maxNorm / (norm + 1e-6))} (torch's clip_grad_norm_, as
     * {@link GradClip}) applied by the next {@link #step} in fp32. Empty with the device buffer (clip
     * {@link #gradientBuffers()} instead).
     */
    @Override
    public Optional<GradClip.GradNorm> clipHeldGradients(double maxNorm) {
        checkOpen();
        if (streamed == null) {
            return Optional.empty();
        }
        finishGradients();
        long t0 = System.nanoTime();
        double sumOfSquares = streamed.sumOfSquares();
        normNanos = System.nanoTime() - t0;
        double norm = Math.sqrt(sumOfSquares);
        gradScale = maxNorm > 0 ? Math.min(1, (float) (maxNorm / (norm + 1e-6))) : 1;
        return Optional.of(new GradClip.GradNorm(List.of(Tensor.fromArray(new double[] {sumOfSquares}, Shape.scalar(), DType.F64, Device.CPU))));
    }

    /** After a restore, F32 groups' master is the parameters themselves (AdamW saves no master for them). */
    private void refreshMaster() {
        if (!masterFromParams) {
            return;
        }
        for (Group g : groups) {
            if (!g.sixteenBit()) {
                for (int i = 0; i < g.flatParams().size(); i++) {
                    Ops.copyInto(g.params().get(i), g.layout().view(g.master(), i));
                }
            }
        }
        Backends.get(device).synchronize();
        masterFromParams = false;
    }

    /** Zeroes every gradient buffer, once the copies that read them are done. */
    @Override
    public void zeroGrad() {
        checkOpen();
        if (streamed != null) {
            streamed.drain();
            streamed.reset();
            finished = false;
            gradScale = 1;
            return;
        }
        transfers.computeAfterCopies();
        for (Group g : groups) {
            g.grads().zero();
        }
    }

    // ---------------------------------------------------------------- state

    /**
     * The state by name, as {@link AdamW#state()}: per parameter {@code <name>.exp_avg}, {@code <name>.exp_avg_sq} and,
     * for bf16 parameters, {@code <name>.master}, in the parameters' order; views of the host buffers (host-mapped
     * tensors of the parameters' device). A pending delayed update is applied first.
     */
    @Override
    public SequencedMap<String, Tensor> state() {
        flush();
        return Collections.unmodifiableSequencedMap(state);
    }

    /** Restores {@link #state()} (the same names and shapes, any device and float dtype) and the step count. */
    @Override
    public void restore(Map<String, Tensor> saved, long steps) {
        flush();
        SavedState.checkNames("HostOffloadAdamW", state.keySet(), saved);
        try (Autograd.GradMode off = Autograd.noGrad(); Scope tmp = Scope.open("restore")) {
            for (Map.Entry<String, Tensor> e : state.entrySet()) {
                SavedState.copy("HostOffloadAdamW", e.getKey(), saved.get(e.getKey()), e.getValue());
            }
            Backends.get(device).synchronize(); // written before the host reads them
        }
        this.step = steps;
        this.masterFromParams = true;
    }

    @Override
    public long steps() {
        return step;
    }

    /** The flat gradient buffers on the device (one per dtype), for clipping and the norm. */
    @Override
    public List<GradientBuffer> gradientBuffers() {
        return streamed != null ? List.of() : groups.stream().map(Group::grads).toList();
    }

    public Gradients gradients() {
        return gradients;
    }

    public Moments moments() {
        return moments;
    }

    @Override
    public void learningRate(double lr) {
        config = config.withLr(lr);
    }

    @Override
    public double learningRate() {
        return config.lr();
    }

    public AdamW.Config config() {
        return config;
    }

    public Schedule schedule() {
        return schedule;
    }

    /** Elements per bucket. */
    public long bucketElements() {
        return bucketElements;
    }

    /** Applies a pending update, waits for the copies and releases the copy streams and the update thread. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        try {
            flush();
        } finally {
            closed = true;
            if (background != null) {
                background.shutdown();
            }
            try {
                if (streamed != null) {
                    streamed.close();
                }
            } finally {
                transfers.close();
            }
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("HostOffloadAdamW: closed");
        }
    }
}

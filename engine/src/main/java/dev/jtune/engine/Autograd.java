package dev.jtune.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * Reverse-mode automatic differentiation over a tape of {@link Node}s: each differentiable op that sees an input
 * requiring grad attaches a node to its output; {@link #backward} walks the nodes from a scalar in reverse
 * topological order and accumulates gradients into the leaves' {@link Tensor#grad()}. A leaf's gradient lives
 * in the leaf's own scope (counted as GRADIENTS); everything else backward allocates lives in a scope closed
 * when backward returns, and an intermediate gradient is freed as soon as the node that consumed it is done.
 */
public final class Autograd {
    /** What backward does with the graph it walked: frees it (the default), or keeps it for another backward. */
    public enum Graph { FREE, RETAIN }

    private static final ThreadLocal<int[]> DISABLED = ThreadLocal.withInitial(() -> new int[1]);

    private Autograd() {
    }

    /** Whether ops on this thread record the tape now. */
    public static boolean isEnabled() {
        return DISABLED.get()[0] == 0;
    }

    /** Until the handle closes, ops on this thread record nothing (inference, optimizer updates). */
    public static GradMode noGrad() {
        int[] d = DISABLED.get();
        int previous = d[0];
        d[0] = previous + 1;
        return () -> d[0] = previous;
    }

    /** Until the handle closes, recording is on again (inside a noGrad region, as checkpoint's recompute needs). */
    public static GradMode enableGrad() {
        int[] d = DISABLED.get();
        int previous = d[0];
        d[0] = 0;
        return () -> d[0] = previous;
    }

    /** Handle of {@link #noGrad()} / {@link #enableGrad()}. */
    public interface GradMode extends AutoCloseable {
        @Override
        void close();
    }

    /** True when recording is on and some input requires grad: then an op must record its node. */
    public static boolean needsGrad(Tensor... inputs) {
        if (!isEnabled()) {
            return false;
        }
        for (Tensor t : inputs) {
            if (t != null && t.requiresGrad()) {
                return true;
            }
        }
        return false;
    }

    /**
     * Runs {@code forward} and, when {@link #needsGrad} holds for {@code inputs}, records {@code backward} as the
     * output's node. The forward runs with recording off, so the ops it is made of add no nodes of their own.
     * This is how every differentiable op, built in or user-written, is defined.
     */
    public static Tensor op(String name, Supplier<Tensor> forward, BackwardFn backward, Tensor... inputs) {
        if (!needsGrad(inputs)) {
            return forward.get();
        }
        Tensor out;
        try (GradMode off = noGrad()) {
            out = forward.get();
        }
        attach(name, out, backward, inputs);
        return out;
    }

    /**
     * {@code forward}'s result, a cast of {@code leaf} to another dtype (LoRA's fp32 A or B for a 16-bit product), whose
     * gradient passes to the leaf as it is (converted as it accumulates). A consumer's product may then add its
     * gradient straight into the leaf's buffer ({@link #leafGradientTarget}).
     */
    static Tensor castOfLeaf(String name, Supplier<Tensor> forward, Tensor leaf) {
        Tensor out = op(name, forward, g -> new Tensor[] {g}, leaf);
        if (out.gradFn() != null) {
            out.gradFn().markCastOfLeaf();
        }
        return out;
    }

    /**
     * {@link #op} for an op with several outputs (a fused op whose results go different ways, such as a residual sum
     * and its normalised value): one node whose backward gets every output's gradient at once (null for an output
     * that none reached), so the op is differentiated in one place instead of through copies into a packed buffer.
     * Returns the outputs in order, each knowing its index; with no input needing grad, the plain outputs.
     */
    public static Tensor[] opMulti(String name, Supplier<Tensor[]> forward, MultiBackwardFn backward, Tensor... inputs) {
        if (!needsGrad(inputs)) {
            return forward.get();
        }
        Tensor[] outs;
        try (GradMode off = noGrad()) {
            outs = forward.get().clone();
        }
        Node node = new Node(name, inputs.clone(), outs.length, backward);
        for (int i = 0; i < outs.length; i++) {
            if (!outs[i].dtype().isFloating()) {
                throw new AutogradException(name + ": output " + i + " " + outs[i].describe() + " is not floating and cannot carry a gradient");
            }
            if (outs[i].gradFn() != null) {
                outs[i] = outs[i].detach(); // a tensor is the output of one node only (an input returned as is)
            }
            outs[i].setGradFn(node, i);
        }
        return outs;
    }

    /**
     * Records {@code backward} as the node of an already computed {@code out} (for ops that also save tensors:
     * hand those to the returned node with {@link Node#own}). Returns null, recording nothing, when no input
     * needs grad.
     */
    public static Node attach(String name, Tensor out, BackwardFn backward, Tensor... inputs) {
        if (!needsGrad(inputs)) {
            return null;
        }
        if (!out.dtype().isFloating()) {
            throw new AutogradException(name + ": output " + out.describe() + " is not floating and cannot carry a gradient");
        }
        Node node = new Node(name, inputs.clone(), backward);
        out.setGradFn(node);
        return node;
    }

    // ------------------------------------------------------------------ backward

    /**
     * Accumulates d(root)/d(leaf) into every leaf that requires grad. {@code seed} is d(loss)/d(root): null for a
     * scalar root (then 1). Unless {@code graph} is {@link Graph#RETAIN}, every node visited is released afterwards.
     */
    public static void backward(Tensor root, Tensor seed, Graph graph) {
        root.checkOpen("backward");
        boolean retainGraph = graph == Graph.RETAIN;
        if (!root.requiresGrad()) {
            throw new AutogradException("backward: " + root.describe() + " does not require grad: none of the tensors it was "
                    + "computed from requires grad (call requiresGrad(true) on the parameters), or it was computed under noGrad()");
        }
        if (seed == null && root.numel() != 1) {
            throw new AutogradException("backward: " + root.describe() + " is not a scalar; pass a seed gradient of shape " + root.shape());
        }
        if (seed != null) {
            seed.checkOpen("backward seed");
            if (!seed.shape().equals(root.shape()) || !seed.device().equals(root.device())) {
                throw new AutogradException("backward: seed " + seed.describe() + " does not match " + root.describe());
            }
        }
        try (GradMode off = noGrad(); Scope scope = Scope.open("backward", MemoryCategory.BACKWARD)) {
            Tensor first = seed != null ? seed : Tensor.full(root.shape(), 1.0, root.dtype(), root.device());
            Node top = root.gradFn();
            if (top == null) {
                accumulateLeaf(root, first, seed == null);
                return;
            }
            run(topologicalOrder(top), top, root.gradOutput(), first, seed, retainGraph);
        }
    }

    /** The pending gradients, one slot per output of each node, as one sequence (for the sharing checks). */
    private static Iterable<Tensor> slots(Map<Node, Tensor[]> pending) {
        return () -> pending.values().stream().flatMap(java.util.Arrays::stream).filter(java.util.Objects::nonNull).iterator();
    }

    private static void run(List<Node> order, Node top, int topOutput, Tensor first, Tensor seed, boolean retainGraph) {
        Map<Node, Tensor[]> pending = new IdentityHashMap<>();
        pending.put(top, new Tensor[top.outputCount()]);
        pending.get(top)[topOutput] = first;
        Iterable<Tensor> waiting = slots(pending);
        for (Node node : order) {
            Tensor[] gs = pending.remove(node);
            if (gs == null) {
                if (!retainGraph) {
                    node.release();
                }
                continue;
            }
            Tensor[] grads;
            Running outer = RUNNING.get();
            Running running = new Running(node, pending, gs, seed, Collections.newSetFromMap(new IdentityHashMap<>()), new ArrayList<>(),
                    new ArrayList<>());
            RUNNING.set(running);
            try {
                grads = node.apply(gs);
            } finally {
                RUNNING.set(outer);
            }
            for (Tensor leaf : running.targetedLeaves()) {
                leaf.gradListener().added(leaf); // a contribution the function added into the leaf's buffer itself
            }
            for (LeafGradient written : running.sunk()) {
                written.leaf().gradSink().accept(written.buffer(), true); // one the function wrote in the leaf's dtype
            }
            for (int i = 0; i < grads.length; i++) {
                Tensor input = node.input(i);
                Tensor gi = grads[i];
                if (input == null || gi == null || !input.requiresGrad()) {
                    continue;
                }
                if (!gi.shape().equals(input.shape())) {
                    throw new AutogradException("'" + node.name() + "' returned a gradient of shape " + gi.shape()
                            + " for its input " + i + " of shape " + input.shape());
                }
                Node producer = input.gradFn();
                if (producer == null) {
                    // a leaf's contribution is freed once added (not at backward's end): the LM head's [vocab, hidden]
                    // weight gradient would otherwise outlive the whole backward pass
                    accumulateLeaf(input, gi, !retainGraph && !sharedElsewhere(gi, i, seed, waiting, grads));
                } else {
                    Tensor[] slot = pending.computeIfAbsent(producer, p -> new Tensor[p.outputCount()]);
                    int at = input.gradOutput();
                    Tensor sum = slot[at];
                    slot[at] = null; // out of the pending sequence while it is combined
                    if (sum == null || running.handedOut().contains(sum) && addedInto(sum, gi)) {
                        slot[at] = sum == null ? gi : sum; // added into the sum by the backward function itself
                    } else if (accumulatesInPlace(sum, gi, gs, seed, waiting, grads)) {
                        Ops.addInPlace(sum, gi); // the same kernel and rounding as add, into the sum's own storage
                        slot[at] = sum;
                        freeUnlessShared(gi, i, seed, waiting, grads);
                    } else {
                        slot[at] = Ops.add(sum, gi);
                        // both addends are consumed: free them now, not when backward returns (at 32K tokens a layer's
                        // partial sums of its input's gradient are GiBs)
                        freeUnlessShared(sum, -1, seed, waiting, grads);
                        freeUnlessShared(gi, i, seed, waiting, grads);
                    }
                }
            }
            // the node's output gradients are consumed (nothing reads them after apply): free each unless something still
            // to be used, or another of its outputs' gradients not yet freed, shares its storage
            for (int k = 0; k < gs.length; k++) {
                Tensor g = gs[k];
                gs[k] = null;
                if (g != null && g != seed && !sharedElsewhere(g, -1, seed, waiting, grads, gs)) {
                    // consumed: free it now, not when backward ends. Its storage, not just the tensor: g may be a view
                    // of a gradient an earlier node returned (a view's close() would leave that storage to backward's end)
                    g.storage().close();
                }
            }
            if (!retainGraph) {
                node.release();
            }
        }
    }

    /**
     * Whether a pending gradient {@code sum} (already taken out of {@code pending}) may take {@code gi} in place: same
     * dtype, contiguous (no broadcast view), and its storage shared with nothing still to be used (nor with the
     * node's consumed output gradients or gi itself, to be safe), so no one else sees it change.
     */
    private static boolean accumulatesInPlace(Tensor sum, Tensor gi, Tensor[] consumed, Tensor seed, Iterable<Tensor> pending, Tensor[] returned) {
        for (Tensor g : consumed) {
            if (g != null && sum.storage() == g.storage()) {
                return false;
            }
        }
        return sum.dtype() == gi.dtype() && sum.isContiguous() && sum.storage() != gi.storage()
                && !sharedElsewhere(sum, -1, seed, pending, returned);
    }

    /** Frees {@code t}'s storage unless {@link #sharedElsewhere} says something still to be used shares it. */
    private static void freeUnlessShared(Tensor t, int index, Tensor seed, Iterable<Tensor> pending, Tensor[] returned) {
        if (t != seed && !sharedElsewhere(t, index, seed, pending, returned)) {
            t.storage().close();
        }
    }

    /** The node whose backward function runs now on this thread, and what it may add into ({@link #gradientTarget}). */
    private record Running(Node node, Map<Node, Tensor[]> pending, Tensor[] consumed, Tensor seed, Set<Tensor> handedOut,
                           List<Tensor> targetedLeaves, List<LeafGradient> sunk) {
    }

    /**
     * Where a backward function's product puts a leaf's gradient itself ({@link #leafGradientTarget}): added into
     * {@code buffer} (the place that holds the leaf's gradient so far), or, when not {@code accumulate}, written into it
     * (a fresh buffer in the leaf's dtype that the leaf's sink takes once the function returns).
     */
    record LeafGradient(Tensor leaf, Tensor buffer, boolean accumulate) {
    }

    private static final ThreadLocal<Running> RUNNING = new ThreadLocal<>();

    /**
     * For a backward function: the gradient already summed for its {@code input} (an input of the node running, not a
     * leaf), when the function may add its contribution into that storage itself and return it (or a view of all of it)
     * as the input's gradient; null when it must return a tensor of its own. A product computes its input's gradient
     * straight into it (a beta = 1 GEMM: LoRA's and the base's input gradients, q, k and v's): one pass and one
     * temporary fewer than a product and an add. The sum has the input's shape and dtype, is contiguous, and nothing
     * else still to be used (the seed, another pending gradient, the node's incoming gradients) shares its storage.
     */
    public static Tensor gradientTarget(Tensor input) {
        Running r = RUNNING.get();
        Node producer = input.gradFn();
        if (r == null || producer == null || !input.requiresGrad() || !isInput(r.node, input)) {
            return null;
        }
        Tensor[] slot = r.pending.get(producer);
        Tensor sum = slot == null ? null : slot[input.gradOutput()];
        if (sum == null || sum.dtype() != input.dtype() || !sum.shape().equals(input.shape()) || !sum.isContiguous()) {
            return null;
        }
        if (r.seed != null && r.seed.storage() == sum.storage()) {
            return null;
        }
        for (Tensor g : r.consumed) {
            if (g != null && g.storage() == sum.storage()) {
                return null;
            }
        }
        for (Tensor[] other : r.pending.values()) {
            for (Tensor t : other) {
                if (t != null && t != sum && t.storage() == sum.storage()) {
                    return null;
                }
            }
        }
        r.handedOut.add(sum); // only a sum handed out counts as added into: another view of its storage is a new addend
        return sum;
    }

    /**
     * {@code -Djtune.leafGradientTargets=false} turns {@link #leafGradientTarget} off: every product then returns a
     * 16-bit gradient that a second launch converts. Whatever holds the leaf's gradient (an attached buffer, the plain
     * trainer's; a listener's redirect, ZeRO stage 2's bucket) takes the same fp32 path, so a world of one trains as
     * the plain trainer bit for bit (NcclWorldOfOneGpuTest; the twenty-fourth session found it broken while only an
     * attached buffer took it).
     */
    static final String LEAF_GRADIENT_TARGETS = "jtune.leafGradientTargets";

    /**
     * For a backward function: where to put {@code input}'s gradient itself, in the leaf's dtype, when input is a
     * cast of a leaf ({@link #castOfLeaf}) whose gradient already has a place: where its listener redirects it (ZeRO
     * stage 2's bucket; a buffer already handed to a reduction sends it aside), else its attached buffer (an
     * optimizer's, zeroed each step), both added into; or, for a leaf whose gradient streams to a sink (the host
     * offload's), a fresh buffer written and then handed to the sink. The function's product then puts it there (an
     * fp32 output from 16-bit operands: LoRA's weight gradients, no 16-bit gradient and no conversion launch) and
     * returns null for input; a listener is told, a sink handed the buffer, once the function returns, as for any
     * contribution. Null when it must return the gradient as usual (a leaf whose first contribution allocates its
     * gradient, among others).
     */
    static LeafGradient leafGradientTarget(Tensor input) {
        if (!Boolean.parseBoolean(System.getProperty(LEAF_GRADIENT_TARGETS, "true"))) { // read at each use: a test compares both ways
            return null;
        }
        Running r = RUNNING.get();
        Node producer = input.gradFn();
        if (r == null || producer == null || !producer.isCastOfLeaf() || !input.requiresGrad() || !isInput(r.node, input)) {
            return null;
        }
        Tensor leaf = producer.input(0);
        if (leaf.gradFn() != null || !leaf.requiresGrad()) {
            return null;
        }
        if (leaf.gradSink() != null) {
            if (!leaf.shape().equals(input.shape())) {
                return null;
            }
            // in backward's scope, as the cast accumulateLeaf would make for the sink
            LeafGradient fresh = new LeafGradient(leaf, Tensor.empty(input.shape(), leaf.dtype(), leaf.device()), false);
            r.sunk.add(fresh);
            return fresh;
        }
        GradientListener listener = leaf.gradListener();
        // as accumulateLeaf: where the listener says first (asking allocates a bucket at its first contribution, which
        // accumulateLeaf would do right after if this returns null), else the attached buffer
        Tensor aside = listener == null ? null : listener.redirect(leaf);
        Tensor grad = aside != null ? aside : leaf.hasAttachedGrad() ? leaf.grad() : null;
        if (grad == null || grad.isClosed() || !grad.isContiguous() || !grad.shape().equals(input.shape())) {
            return null;
        }
        if (listener != null) {
            r.targetedLeaves.add(leaf);
        }
        return new LeafGradient(leaf, grad, true);
    }

    private static boolean isInput(Node node, Tensor t) {
        for (int i = 0; i < node.inputCount(); i++) {
            if (node.input(i) == t) {
                return true;
            }
        }
        return false;
    }

    /** Whether a returned gradient is the pending sum itself (or a whole view of it): with the sum handed out, added into. */
    private static boolean addedInto(Tensor sum, Tensor gi) {
        return gi == sum || gi.storage() == sum.storage() && gi.offset() == sum.offset() && gi.isContiguous()
                && gi.shape().equals(sum.shape());
    }

    /** {@link #sharedElsewhere(Tensor, int, Tensor, Iterable, Tensor[])}, or one of the node's output gradients not yet freed. */
    private static boolean sharedElsewhere(Tensor gi, int index, Tensor seed, Iterable<Tensor> pending, Tensor[] returned, Tensor[] consumed) {
        for (Tensor g : consumed) {
            if (g != null && g != gi && g.storage() == gi.storage()) {
                return true;
            }
        }
        return sharedElsewhere(gi, index, seed, pending, returned);
    }

    /**
     * Whether the caller's seed, a pending gradient or one of the node's returned gradients (but the one at
     * {@code index}: -1 for none) shares gi's storage, so that freeing it would free something still to be used.
     */
    private static boolean sharedElsewhere(Tensor gi, int index, Tensor seed, Iterable<Tensor> pending, Tensor[] returned) {
        if (seed != null && seed.storage() == gi.storage()) {
            return true;
        }
        for (Tensor t : pending) {
            if (t.storage() == gi.storage()) {
                return true;
            }
        }
        for (int j = 0; j < returned.length; j++) {
            if (j != index && returned[j] != null && returned[j].storage() == gi.storage()) {
                return true;
            }
        }
        return false;
    }

    /** Nodes reachable from {@code top}, each after every node that consumes its output. */
    private static List<Node> topologicalOrder(Node top) {
        List<Node> postorder = new ArrayList<>();
        Set<Node> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        ArrayDeque<Object[]> stack = new ArrayDeque<>(); // {node, next input index}
        stack.push(new Object[] {top, 0});
        seen.add(top);
        while (!stack.isEmpty()) {
            Object[] frame = stack.peek();
            Node node = (Node) frame[0];
            int i = (Integer) frame[1];
            if (i < node.inputCount()) {
                frame[1] = i + 1;
                Tensor in = node.input(i);
                Node child = in == null ? null : in.gradFn();
                if (child != null && seen.add(child)) {
                    stack.push(new Object[] {child, 0});
                }
            } else {
                stack.pop();
                postorder.add(node);
            }
        }
        Collections.reverse(postorder);
        return postorder;
    }

    /**
     * Makes {@code grad} (a zeroed tensor of the leaf's shape, dtype and device, typically a view of a flat buffer
     * that an optimizer owns) the leaf's gradient: backward accumulates into it in place and {@link Tensor#zeroGrad}
     * zeroes it, so the gradient's memory is allocated once for the whole run.
     */
    public static void attachGradient(Tensor leaf, Tensor grad) {
        requireLeaf("attachGradient", leaf);
        if (!grad.shape().equals(leaf.shape()) || grad.dtype() != leaf.dtype() || !grad.device().equals(leaf.device())) {
            throw new AutogradException("attachGradient: " + grad.describe() + " does not match the leaf " + leaf.describe()
                    + " in shape, dtype and device");
        }
        freeOwnGradient(leaf);
        leaf.attachGrad(grad);
    }

    private static void requireLeaf(String op, Tensor leaf) {
        if (!leaf.requiresGrad() || leaf.gradFn() != null) {
            throw new AutogradException(op + ": " + leaf.describe() + " is not a leaf that requires grad");
        }
    }

    /** Frees the gradient the leaf accumulated itself (an attached one belongs to its buffer). */
    private static void freeOwnGradient(Tensor leaf) {
        Tensor old = leaf.grad();
        if (old != null && !leaf.hasAttachedGrad()) {
            old.close();
        }
    }

    /**
     * Where a leaf's gradient goes instead of {@link Tensor#grad()}: each contribution backward computes for the leaf
     * (one per use of the leaf in the graph, cast to the leaf's dtype), for instance to a host-side accumulator.
     */
    @FunctionalInterface
    public interface GradientSink {
        /**
         * Takes one contribution. {@code owned}: nothing else refers to the contribution's storage, and the sink takes
         * it: it may adopt it into a scope of its own to keep it past this call (a copy still in flight), and closes
         * it when done. Otherwise the sink must be done with the contribution when it returns.
         */
        void accept(Tensor contribution, boolean owned);
    }

    /**
     * A {@link GradientSink} that may also take a row-sparse contribution, as an embedding lookup's backward produces:
     * {@code gradient[ids[i], :] += rows[i, :]}, where the dense form would be a [vocab, dim] table of mostly zeros (a
     * 262,144 x 640 one for Gemma 3 270M, against 8,192 rows of 640 at 8K tokens).
     */
    public interface RowGradientSink extends GradientSink {
        /**
         * Takes {@code rows} [N, D] (the leaf's dtype) for rows {@code ids} (I32 [N]; duplicates add) of the leaf, or
         * returns false to get the dense contribution through {@link #accept} instead. Neither tensor is the sink's: it
         * copies what it keeps past the call.
         */
        boolean acceptRows(Tensor ids, Tensor rows);
    }

    /**
     * For a backward function whose gradient for {@code table} is row-sparse: when {@code table} is a leaf that requires
     * grad and streams to a {@link RowGradientSink} that takes {@code rows} for {@code ids}, hands them over and returns
     * true (the function then returns no dense gradient for it); otherwise false.
     */
    public static boolean streamRows(Tensor table, Tensor ids, Tensor rows) {
        if (table.gradFn() != null || !table.requiresGrad() || !(table.gradSink() instanceof RowGradientSink sink)) {
            return false;
        }
        if (rows.rank() != 2 || rows.dim(0) != ids.numel() || rows.dim(1) != table.dim(-1)) {
            throw new AutogradException("streamRows: rows " + rows.describe() + " do not match ids " + ids.describe()
                    + " and table " + table.describe());
        }
        if (rows.dtype() != table.dtype()) {
            Tensor cast = rows.cast(table.dtype());
            try {
                return sink.acceptRows(ids, cast);
            } finally {
                cast.storage().close();
            }
        }
        return sink.acceptRows(ids, rows);
    }

    /**
     * Sends every gradient contribution of {@code leaf} to {@code sink} instead of accumulating it in
     * {@link Tensor#grad()} (which frees any gradient the leaf holds and stays null); {@code null} restores the default.
     */
    public static void streamGradient(Tensor leaf, GradientSink sink) {
        requireLeaf("streamGradient", leaf);
        freeOwnGradient(leaf);
        leaf.streamGrad(sink);
    }

    /**
     * Told after each contribution backward adds into a leaf's {@link Tensor#grad()} (not for a leaf that streams to a
     * {@link GradientSink}: the sink sees each contribution itself), and asked before it where it goes. Runs on the
     * thread running backward, with the contribution's work queued on the device's stream.
     */
    @FunctionalInterface
    public interface GradientListener {
        /**
         * Where the next contribution to {@code leaf} is added: null for its gradient, or a tensor of the gradient's
         * shape and dtype (a gradient already handed to a reduction in flight must not change: its late contributions
         * go aside).
         */
        default Tensor redirect(Tensor leaf) {
            return null;
        }

        /** A contribution to {@code leaf} was added (where {@link #redirect} said). */
        void added(Tensor leaf);
    }

    /**
     * Tells {@code listener} after each contribution backward adds into {@code leaf}'s gradient (one a use of the leaf
     * in the graph, checkpointed recomputations included); {@code null} stops telling. A data-parallel step learns from
     * it when a gradient is complete, and reduces it over the ranks while backward goes on.
     */
    public static void listenGradient(Tensor leaf, GradientListener listener) {
        requireLeaf("listenGradient", leaf);
        leaf.listenGrad(listener);
    }

    /**
     * leaf.grad += g, allocating the gradient in the leaf's own scope the first time, or g to the leaf's sink. g may
     * have another dtype than the leaf (a cast's backward hands a 16-bit gradient to an fp32 leaf as it is): it is
     * converted as it is added. When {@code owned} (nothing else refers to g's storage) g is freed once used.
     */
    private static void accumulateLeaf(Tensor leaf, Tensor g, boolean owned) {
        GradientSink sink = leaf.gradSink();
        if (sink != null) {
            Tensor gg = g.dtype() == leaf.dtype() ? g : g.cast(leaf.dtype());
            if (gg != g && owned) {
                g.storage().close();
            }
            sink.accept(gg, gg != g || owned);
            return;
        }
        GradientListener listener = leaf.gradListener();
        Tensor aside = listener == null ? null : listener.redirect(leaf);
        Tensor grad = aside != null ? aside : leaf.grad();
        if (grad != null && !grad.isClosed()) {
            Ops.accumulateInto(grad, g);
        } else {
            Scope owner = leaf.storage().owner();
            if (owner == null || owner.isClosed()) {
                throw new AutogradException("backward: the leaf " + leaf.describe() + " has no open scope to hold its gradient");
            }
            try (Scope.Entered e = owner.enter(); Scope.Entered c = Scope.countAs(MemoryCategory.GRADIENTS)) {
                leaf.setGrad(Ops.copy(g, leaf.dtype()));
            }
        }
        if (owned) {
            g.storage().close();
        }
        if (listener != null) {
            listener.added(leaf);
        }
    }

    // ------------------------------------------------------------------ checkpoint

    /**
     * {@code leaf.cast(dtype)}, made once per checkpoint: inside a checkpoint's first run the cast is kept, and the
     * recomputation in backward reuses it (its gradient reaches the leaf as a cast's would) instead of casting again.
     * For small trainable weights cast to a compute dtype (LoRA's A and B): the kept copies cost their size until
     * backward and save a launch each. Outside a checkpoint, or for a non-leaf, a plain cast.
     */
    public static Tensor castKept(Tensor leaf, DType dtype) {
        return KeptResults.cast(leaf, dtype);
    }

    /**
     * Until the handle closes, {@link #castKept}{@code (leaf, cast.dtype())} returns the given cast of each leaf (its
     * gradient reaching the leaf as a cast's would), in and out of checkpoints: casts made together in one launch
     * (nn.ComputeCopies) instead of one each. The caller keeps them alive and equal to the leaves' values while the handle
     * is open (make them after the leaves last changed; close it before they change again).
     */
    public static Scope.Entered provideCasts(java.util.Map<Tensor, Tensor> castOfLeaf) {
        return KeptResults.provide(castOfLeaf);
    }

    /**
     * {@code compute.get()} made once per checkpoint: inside a checkpoint's first run the results are kept (in the scope
     * current at the checkpoint's call), and its recomputation in backward gets them back by call order instead of
     * computing again; {@code key} names the call (op, shapes, settings), and a recomputation whose call does not match
     * computes. For an op whose forward costs much more than its results' size (a global attention layer: quadratic in
     * the sequence, results linear), whose backward needs only its inputs and those results. Outside a checkpoint, or in
     * a tiled one, it computes. The caller attaches its own backward to what it gets (views of the kept tensors).
     */
    public static Tensor[] keptResults(String key, java.util.function.Supplier<Tensor[]> compute) {
        return KeptResults.results(key, compute);
    }

    /**
     * Recomputation checkpointing: runs {@code fn} now without recording, keeping only its inputs and output,
     * and runs it again during backward to differentiate it (its parameters' gradients accumulate then). Trades
     * one extra forward for not storing fn's intermediate activations. fn must be deterministic (random ops take
     * explicit seeds in jtune, so dropout is).
     */
    public static Tensor checkpoint(Function<Tensor[], Tensor> fn, Tensor... inputs) {
        return checkpoint(fn, ActivationStore.DEVICE, inputs);
    }

    /**
     * {@link #checkpoint(Function, Tensor...)} with the inputs kept by {@code store} between forward and backward (for
     * instance in host memory), restored when the recomputation starts.
     */
    public static Tensor checkpoint(Function<Tensor[], Tensor> fn, ActivationStore store, Tensor... inputs) {
        Tensor out;
        KeptResults kept = new KeptResults(Scope.current(), true);
        try (Scope tmp = Scope.open("checkpoint"); GradMode off = noGrad()) {
            Tensor o;
            try (Scope.Entered recording = kept.activate(false)) {
                o = fn.apply(inputs);
            }
            if (o.storage().owner() != tmp) {
                o = o.copy(); // fn returned a view of something it did not create
            }
            out = tmp.keep(o);
        }
        if (!isEnabled()) {
            kept.handOver();
            return out;
        }
        Tensor[] saved = inputs.clone();
        ActivationStore.Stashed[] stashed = new ActivationStore.Stashed[saved.length];
        for (int i = 0; i < saved.length; i++) {
            stashed[i] = store.stash(saved[i]);
        }
        Node node = new Node("checkpoint", saved, gradOut -> {
            try (Scope recompute = Scope.open("recompute"); GradMode on = enableGrad(); Scope.Entered replaying = kept.activate(true)) {
                Tensor[] detached = new Tensor[saved.length];
                InputGradient[] inputGradients = new InputGradient[saved.length];
                for (int i = 0; i < saved.length; i++) {
                    detached[i] = stashed[i].restore().detach();
                    if (saved[i].requiresGrad()) {
                        detached[i].requiresGrad(true);
                        inputGradients[i] = new InputGradient(recompute);
                        streamGradient(detached[i], inputGradients[i]);
                    }
                }
                Tensor o = fn.apply(detached);
                if (o.requiresGrad()) {
                    backward(o, gradOut, Graph.FREE);
                }
                Tensor[] grads = new Tensor[saved.length];
                for (int i = 0; i < saved.length; i++) {
                    grads[i] = inputGradients[i] == null ? null : inputGradients[i].sum();
                    if (grads[i] != null) {
                        recompute.keep(grads[i]); // made in (or taken into) this scope: handed to the outer backward
                    }
                }
                return grads;
            } finally {
                kept.free();
            }
        });
        out.setGradFn(node);
        return out;
    }
}

package dev.jtune.engine.nn;

import dev.jtune.engine.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.SequencedMap;

/**
 * A node of a model's tree, as PyTorch's {@code nn.Module}: named parameters of its own and named child modules,
 * both in registration order. A parameter's full name joins the local names on its path with dots
 * ({@code model.layers.0.self_attn.q_proj.weight}), so a tree built with HF's local names has HF's parameter names,
 * and loading, quantizing, adapting, merging and exporting walk it instead of keeping lists beside it.
 *
 * <p>Modules hold parameters, never memory: every tensor belongs to the scope current when it was made.
 */
public abstract class Module {
    private final SequencedMap<String, Parameter> parameters = new LinkedHashMap<>();
    private final SequencedMap<String, Module> children = new LinkedHashMap<>();

    /** Registers a parameter of this module under its local name (no value yet: the caller loads or initialises it). */
    protected final Parameter parameter(String name, dev.jtune.engine.Shape shape) {
        checkName(name);
        Parameter p = new Parameter(name, shape);
        parameters.put(name, p);
        return p;
    }

    /** Registers {@code child} under its local name; returns it. */
    protected final <M extends Module> M child(String name, M child) {
        checkName(name);
        children.put(name, java.util.Objects.requireNonNull(child, "child"));
        return child;
    }

    private void checkName(String name) {
        if (name == null || name.isEmpty() || name.contains(".")) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": a local name is non-empty and has no dot, got '" + name + "'");
        }
        if (parameters.containsKey(name) || children.containsKey(name)) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": '" + name + "' is already registered");
        }
    }

    /** This module's own parameters by local name. */
    public final SequencedMap<String, Parameter> localParameters() {
        return Collections.unmodifiableSequencedMap(parameters);
    }

    /** The direct children by local name. */
    public final SequencedMap<String, Module> children() {
        return Collections.unmodifiableSequencedMap(children);
    }

    /**
     * Every parameter of the tree by full dotted name, as PyTorch's {@code named_parameters}: a module's own
     * parameters first, then each child's, depth first in registration order.
     */
    public final SequencedMap<String, Parameter> namedParameters() {
        SequencedMap<String, Parameter> out = new LinkedHashMap<>();
        collectParameters("", out);
        return Collections.unmodifiableSequencedMap(out);
    }

    private void collectParameters(String prefix, SequencedMap<String, Parameter> out) {
        parameters.forEach((name, p) -> out.put(prefix + name, p));
        children.forEach((name, c) -> c.collectParameters(prefix + name + ".", out));
    }

    /** Every module of the tree by full dotted name, this one first under "" (PyTorch's {@code named_modules}). */
    public final SequencedMap<String, Module> namedModules() {
        SequencedMap<String, Module> out = new LinkedHashMap<>();
        collectModules("", out);
        return Collections.unmodifiableSequencedMap(out);
    }

    private void collectModules(String name, SequencedMap<String, Module> out) {
        out.put(name, this);
        children.forEach((n, c) -> c.collectModules(name.isEmpty() ? n : name + "." + n, out));
    }

    /** The modules of one type by full dotted name, in tree order (every {@link Linear}, for instance). */
    public final <M extends Module> SequencedMap<String, M> modules(Class<M> type) {
        SequencedMap<String, M> out = new LinkedHashMap<>();
        namedModules().forEach((name, m) -> {
            if (type.isInstance(m)) {
                out.put(name, type.cast(m));
            }
        });
        return Collections.unmodifiableSequencedMap(out);
    }

    /** The module at a dotted path below this one ("" is this one); an unknown path names the closest existing module. */
    public final Module module(String path) {
        Module m = this;
        if (path.isEmpty()) {
            return m;
        }
        String walked = "";
        for (String part : path.split("\\.", -1)) {
            Module next = m.children.get(part);
            if (next == null) {
                throw new IllegalArgumentException(getClass().getSimpleName() + " has no module '" + path + "'"
                        + (walked.isEmpty() ? "" : ": '" + walked + "' has no child '" + part + "'")
                        + " (children there: " + m.children.keySet() + ")");
            }
            walked = walked.isEmpty() ? part : walked + "." + part;
            m = next;
        }
        return m;
    }

    /** The module at a dotted path, which must be of {@code type}. */
    public final <M extends Module> M module(String path, Class<M> type) {
        Module m = module(path);
        if (!type.isInstance(m)) {
            throw new IllegalArgumentException("module '" + path + "' is a " + m.getClass().getSimpleName() + ", not a " + type.getSimpleName());
        }
        return type.cast(m);
    }

    /**
     * Every parameter as a dense tensor by full name, as PyTorch's {@code state_dict}: dense parameters are the
     * tensors themselves (no copy); a module holding a parameter in another form (an NF4 weight) gives a dense copy
     * made in the current scope.
     */
    public final SequencedMap<String, Tensor> stateDict() {
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        namedModules().forEach((name, m) -> m.parameters.forEach(
                (local, p) -> out.put(name.isEmpty() ? local : name + "." + local, m.denseValue(p))));
        return Collections.unmodifiableSequencedMap(out);
    }

    /** A parameter of this module as a dense tensor; modules that store a parameter in another form override this. */
    protected Tensor denseValue(Parameter p) {
        return p.tensor();
    }

    /**
     * Whether anything in the tree trains: a dense parameter that requires a gradient (NF4 weights are frozen), or an
     * adapter on a linear module (LoRA beside a frozen weight: a gradient must reach it through the module).
     */
    public final boolean trains() {
        for (Parameter p : namedParameters().values()) {
            if (p.isTrained()) {
                return true;
            }
        }
        return modules(Linear.class).values().stream().anyMatch(l -> l.adapter() != null);
    }

    /** Bytes of the parameters' values (an NF4 value: codes and scales), over the whole tree. */
    public final long parameterBytes() {
        long n = 0;
        for (Parameter p : namedParameters().values()) {
            n += p.bytes();
        }
        return n;
    }
}

package dev.jtune.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.SequencedSet;

/**
 * Owns memory, so that the garbage collector never decides when GPU memory is freed. Scopes nest per thread:
 * {@code try (var step = Scope.open("step")) { ... }} allocates every tensor created inside into {@code step},
 * and closing it frees them all (in reverse order). {@link #keep(Tensor)} hands a result to the enclosing scope.
 */
public final class Scope implements AutoCloseable {
    private static final ThreadLocal<ArrayDeque<Scope>> STACK = ThreadLocal.withInitial(ArrayDeque::new);
    private static final ThreadLocal<MemoryCategory> CATEGORY_OVERRIDE = new ThreadLocal<>();

    private final String name;
    private final MemoryCategory category;
    private final Scope parent;
    private final Thread thread;
    private final SequencedSet<Storage> owned = new LinkedHashSet<>();
    private boolean closed;

    private Scope(String name, MemoryCategory category, Scope parent) {
        this.name = name;
        this.category = category;
        this.parent = parent;
        this.thread = Thread.currentThread();
    }

    /** Opens a scope nested in the current one; its tensors are counted under {@link MemoryCategory#OTHER}. */
    public static Scope open(String name) {
        return open(name, null);
    }

    /** Opens a nested scope whose allocations are counted under {@code category} (null: the parent's). */
    public static Scope open(String name, MemoryCategory category) {
        ArrayDeque<Scope> stack = STACK.get();
        Scope parent = stack.peek();
        MemoryCategory c = category != null ? category : parent != null ? parent.category : MemoryCategory.OTHER;
        Scope s = new Scope(name, c, parent);
        stack.push(s);
        return s;
    }

    /** The innermost open scope of this thread. */
    public static Scope current() {
        Scope s = STACK.get().peek();
        if (s == null) {
            throw new IllegalStateException("no open Scope on thread '" + Thread.currentThread().getName()
                    + "': create tensors inside try (var scope = Scope.open(\"name\")) { ... }");
        }
        return s;
    }

    public String name() {
        return name;
    }

    /**
     * Makes this (open) scope the current one until the returned handle is closed, without closing the scope
     * then: how memory that must outlive an inner scope is allocated where it belongs (a parameter's gradient
     * in the parameter's scope, optimizer state in the optimizer's).
     */
    public Entered enter() {
        checkOpen("enter");
        ArrayDeque<Scope> stack = STACK.get();
        stack.push(this);
        return () -> {
            if (stack.peek() == this) {
                stack.pop();
            } else {
                stack.removeFirstOccurrence(this);
            }
        };
    }

    /** Handle of {@link #enter()} and {@link #countAs}: closing it restores the previous state. */
    public interface Entered extends AutoCloseable {
        @Override
        void close();
    }

    /** Until the handle is closed, allocations on this thread are counted under {@code category}. */
    public static Entered countAs(MemoryCategory category) {
        MemoryCategory previous = CATEGORY_OVERRIDE.get();
        CATEGORY_OVERRIDE.set(category);
        return () -> CATEGORY_OVERRIDE.set(previous);
    }

    /** The category new allocations on this thread are counted under. */
    static MemoryCategory allocationCategory(Scope scope) {
        MemoryCategory c = CATEGORY_OVERRIDE.get();
        return c != null ? c : scope.category;
    }

    public MemoryCategory category() {
        return category;
    }

    public boolean isClosed() {
        return closed;
    }

    /** Bytes of storage this scope owns now. */
    public long ownedBytes() {
        long sum = 0;
        for (Storage s : owned) {
            sum += s.bytes();
        }
        return sum;
    }

    /** Number of storages this scope owns now. */
    public int ownedCount() {
        return owned.size();
    }

    /** Takes ownership of a storage (moving it from the scope that held it). */
    public <S extends Storage> S adopt(S storage) {
        checkOpen("adopt");
        Scope old = storage.owner();
        if (old != null) {
            old.owned.remove(storage);
        }
        owned.add(storage);
        storage.owner(this);
        return storage;
    }

    /** Moves a tensor's storage to the enclosing scope, so it outlives this one. Returns the tensor. */
    public Tensor keep(Tensor tensor) {
        checkOpen("keep");
        if (parent == null) {
            throw new IllegalStateException("scope '" + name + "' has no enclosing scope to keep a tensor in");
        }
        tensor.checkOpen("keep");
        parent.adopt(tensor.storage());
        return tensor;
    }

    void forget(Storage storage) {
        owned.remove(storage);
    }

    void checkOpen(String what) {
        if (closed) {
            throw new ClosedException(what + ": scope '" + name + "' is closed");
        }
    }

    /** Frees every storage this scope still owns; scopes opened inside it and still open are closed first. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        if (Thread.currentThread() != thread) {
            throw new IllegalStateException("scope '" + name + "' was opened on thread '" + thread.getName()
                    + "' and must be closed there");
        }
        ArrayDeque<Scope> stack = STACK.get();
        while (!stack.isEmpty() && stack.peek() != this) {
            stack.peek().close();
        }
        stack.remove(this);
        closed = true;
        List<Storage> toFree = new ArrayList<>(owned.reversed());
        owned.clear();
        RuntimeException first = null;
        for (Storage s : toFree) {
            try {
                s.owner(null);
                s.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return "Scope[" + name + ", " + category + ", " + owned.size() + " storages" + (closed ? ", closed]" : "]");
    }
}

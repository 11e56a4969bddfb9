package dev.jtune.engine;

/**
 * The gradient of a recomputation's input ({@link Autograd#checkpoint}, {@link TiledCheckpoint}), collected from the
 * inner backward's contributions as a leaf's own gradient would sum them (the first as it is, the next added in place:
 * the same bits), without the leaf's copy of the first: an owned contribution that is the whole of its storage is
 * taken over into {@code scope}; otherwise it is copied there, or into {@code target} when one is given.
 */
final class InputGradient implements Autograd.GradientSink {
    private final Scope scope;
    private final Tensor target;
    private Tensor sum;

    /** Collects into a tensor of {@code scope}. */
    InputGradient(Scope scope) {
        this(scope, null);
    }

    /** Collects into {@code target} (contiguous, the input's shape and dtype), which needs no zeroing. */
    InputGradient(Scope scope, Tensor target) {
        this.scope = scope;
        this.target = target;
    }

    @Override
    public void accept(Tensor contribution, boolean owned) {
        if (sum != null) {
            Ops.addInPlace(sum, contribution);
        } else if (target != null) {
            Ops.copyInto(contribution, target);
            sum = target;
        } else if (owned && wholeStorage(contribution)) {
            scope.adopt(contribution.storage());
            sum = contribution;
            return;
        } else {
            try (Scope.Entered e = scope.enter()) {
                sum = Ops.copy(contribution, contribution.dtype());
            }
        }
        if (owned) {
            contribution.storage().close();
        }
    }

    /** The sum, or null when no contribution came. */
    Tensor sum() {
        return sum;
    }

    private static boolean wholeStorage(Tensor t) {
        return t.offset() == 0 && t.isContiguous() && t.dtype().bytesFor(t.numel()) == t.storage().bytes();
    }
}

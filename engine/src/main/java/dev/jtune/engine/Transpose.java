package dev.jtune.engine;

/**
 * Which operands of a matrix product enter it transposed (their last two axes swapped): {@code op(a) @ op(b)}.
 * A transposed operand is read in place, never copied.
 */
public enum Transpose {
    NONE, A, B, BOTH;

    /** Whether the left operand is transposed. */
    public boolean a() {
        return this == A || this == BOTH;
    }

    /** Whether the right operand is transposed. */
    public boolean b() {
        return this == B || this == BOTH;
    }
}

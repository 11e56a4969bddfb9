package dev.jtune.gemma.testing;

import dev.jtune.engine.Tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** How the golden tests compare a tensor with HF's: the error's norm relative to the reference's. */
public final class Goldens {
    private Goldens() {
    }

    /** {@code ||got - ref|| / ||ref||} in double (NaN if {@code got} holds one); the element counts must agree. */
    public static double relativeError(Tensor got, Tensor ref) {
        assertEquals(ref.numel(), got.numel(), "element count of " + got + " vs " + ref);
        double[] a = got.toDoubleArray();
        double[] b = ref.toDoubleArray();
        double num = 0;
        double den = 0;
        for (int i = 0; i < a.length; i++) {
            if (Double.isNaN(a[i])) {
                return Double.NaN;
            }
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }
}

package dev.jtune.gemma.testing;

import dev.jtune.engine.Tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The golden tests' fixtures (test resources) and how they compare a tensor with HF's: the error's norm relative to the reference's. */
public final class Goldens {
    private Goldens() {
    }

    /** The test resource at {@code path} ("gemma3-tiny/golden.json") as a file. */
    public static java.nio.file.Path fixture(String path) {
        java.net.URL url = Goldens.class.getResource("/" + path);
        if (url == null) {
            throw new IllegalStateException("no test resource /" + path);
        }
        try {
            return java.nio.file.Path.of(url.toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
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

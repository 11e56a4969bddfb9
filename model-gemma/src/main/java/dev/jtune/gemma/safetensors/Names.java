package dev.jtune.gemma.safetensors;

import java.util.Comparator;

/** Name ordering shared by reader and writer. */
final class Names {
    private Names() {
    }

    /**
     * Code point order, which is the byte order of the UTF-8 encodings: how Rust and Python sort strings
     * ({@link String#compareTo} compares UTF-16 units, which differs for characters above U+FFFF).
     */
    static final Comparator<String> CODE_POINT_ORDER = (a, b) -> {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Boolean.compare(i < a.length(), j < b.length());
    };
}

package dev.jtune.train.args;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A memory size as {@code --max_memory} takes it: a whole number of bytes, or a number with a unit, decimal
 * (KB, MB, GB, TB: powers of 1000, so {@code 16GB} is 16·10⁹ bytes, as disk and card makers count) or binary
 * (KiB, MiB, GiB, TiB: powers of 1024, so {@code 16GiB} is 16·2³⁰), the unit in any case and optionally after a
 * space; {@code B} alone means bytes. Fractions are allowed with a unit ({@code 1.5GB}) and rounded down to a byte.
 *
 * @param bytes the size in bytes, positive
 * @param text  how it was written, kept for messages and saved arguments (it parses back to the same bytes)
 */
public record MemorySize(long bytes, String text) {
    private static final Pattern FORM = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*([kmgt]i?b|b)?");

    public MemorySize {
        if (bytes <= 0) {
            throw new IllegalArgumentException("a memory size must be positive: " + bytes);
        }
    }

    /** Parses {@code 16GB}, {@code 16GiB}, {@code 512 MiB}, {@code 1000000}; anything else is an {@link IllegalArgumentException} saying what is accepted. */
    public static MemorySize parse(String raw) {
        String t = raw.trim();
        Matcher m = FORM.matcher(t.toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            throw new IllegalArgumentException("is not a memory size: use a number of bytes or a number with a unit,"
                    + " KB/MB/GB/TB (powers of 1000: 16GB = 16000000000 bytes) or KiB/MiB/GiB/TiB (powers of 1024: 16GiB = 17179869184 bytes)");
        }
        String unit = m.group(2) == null ? "b" : m.group(2);
        if (unit.equals("b") && m.group(1).contains(".")) {
            throw new IllegalArgumentException("is not a whole number of bytes: give a unit (1.5GB) or whole bytes");
        }
        java.math.BigDecimal value = new java.math.BigDecimal(m.group(1)).multiply(java.math.BigDecimal.valueOf(multiplier(unit)));
        if (value.compareTo(java.math.BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
            throw new IllegalArgumentException("is too large (at most " + Long.MAX_VALUE + " bytes)");
        }
        long bytes = value.longValue();
        if (bytes <= 0) {
            throw new IllegalArgumentException("must be at least one byte");
        }
        return new MemorySize(bytes, t);
    }

    private static long multiplier(String unit) {
        boolean binary = unit.length() == 3;
        long base = binary ? 1024 : 1000;
        int power = switch (unit.charAt(0)) {
            case 'k' -> 1;
            case 'm' -> 2;
            case 'g' -> 3;
            case 't' -> 4;
            default -> 0;
        };
        long r = 1;
        for (int i = 0; i < power; i++) {
            r *= base;
        }
        return r;
    }

    /** The size in GiB and in the user's spelling: {@code 16GB (14.90 GiB)}. */
    public String describe() {
        return String.format(Locale.ROOT, "%s (%.2f GiB)", text, bytes / (double) (1L << 30));
    }

    @Override
    public String toString() {
        return text;
    }
}

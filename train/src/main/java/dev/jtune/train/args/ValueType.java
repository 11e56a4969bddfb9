package dev.jtune.train.args;

import dev.jtune.JtuneException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * How a flag's value is read from text (command line, config file, saved args) and written back. Every
 * {@link #format} parses back to an equal value, which is what the JSON round trip relies on.
 *
 * @param label    how --help names the type
 * @param javaType the type of the parsed value (the TrainArgs component's type, boxed)
 * @param textual  whether the value is free text (a path, a name): "none" is then a value, not "unset"
 */
record ValueType<T>(String label, Class<?> javaType, boolean textual, Parser<T> parser, Function<T, String> formatter,
                    Function<T, Object> jsonWriter) {

    /** A value that does not parse or is refused; the message completes "--flag value ...". */
    static final class BadValue extends JtuneException {
        BadValue(String reason) {
            super(reason, null, null, false);
        }
    }

    @FunctionalInterface
    interface Parser<T> {
        T parse(String raw);
    }

    T parse(String raw) {
        try {
            return parser.parse(raw);
        } catch (BadValue e) {
            throw e;
        } catch (RuntimeException e) {
            throw new BadValue(e.getMessage() == null ? "is not a valid " + label : e.getMessage());
        }
    }

    @SuppressWarnings("unchecked")
    String format(Object value) {
        return value == null ? "none" : formatter.apply((T) value);
    }

    @SuppressWarnings("unchecked")
    Object toJson(Object value) {
        return value == null ? null : jsonWriter.apply((T) value);
    }

    // ---- the types ----------------------------------------------------------------------------------------------

    static final ValueType<String> STRING = new ValueType<>("string", String.class, true, s -> s, s -> s, s -> s);

    static final ValueType<Path> PATH = new ValueType<>("path", Path.class, true, s -> {
        if (s.isBlank()) {
            throw new BadValue("is empty: a path is needed");
        }
        return Path.of(s);
    }, Path::toString, Path::toString);

    /** A path that may be left empty ({@code --lora_weight_path ""}, as LLaVA-style scripts pass it): empty is none. */
    static final ValueType<Path> OPTIONAL_PATH = new ValueType<>("path", Path.class, true, s -> s.isBlank() ? null : Path.of(s),
            Path::toString, Path::toString);

    /** {@code --deepspeed}: a file, inline JSON or base64 JSON, kept as given (read by {@link DeepSpeedConfig}); empty is none. */
    static final ValueType<String> DEEPSPEED = new ValueType<>("path|json", String.class, true, s -> s.isBlank() ? null : s,
            s -> s, s -> s);

    static final ValueType<Integer> INT = new ValueType<>("int", Integer.class, false, s -> {
        try {
            return Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            throw new BadValue("is not an integer");
        }
    }, String::valueOf, i -> i);

    static final ValueType<Double> FLOAT = new ValueType<>("float", Double.class, false, s -> {
        double d;
        try {
            d = Double.parseDouble(s.trim());
        } catch (NumberFormatException e) {
            throw new BadValue("is not a number");
        }
        if (!Double.isFinite(d)) {
            throw new BadValue("is not a finite number");
        }
        return d;
    }, ValueType::formatDouble, d -> d);

    /** HF's string_to_bool: yes/true/t/y/1 and no/false/f/n/0, any case. */
    static final ValueType<Boolean> BOOL = new ValueType<>("bool", Boolean.class, false, s -> {
        Boolean b = bool(s);
        if (b == null) {
            throw new BadValue("is not a boolean (true/false, yes/no, 1/0)");
        }
        return b;
    }, b -> b ? "True" : "False", b -> b);

    /** Module name spans: a Python list string {@code "['lm_head', 'embed_tokens']"} or {@code lm_head,embed_tokens}. */
    static final ValueType<List<String>> NAME_LIST = new ValueType<>("list", List.class, false, ValueType::nameList,
            l -> l.isEmpty() ? "[]" : String.join(",", l), l -> List.copyOf(l));

    static final ValueType<String> DEVICE = new ValueType<>("auto|cpu|cuda|cuda:N", String.class, false, s -> {
        String d = s.trim().toLowerCase(Locale.ROOT);
        if (!Pattern.matches("auto|cpu|cuda|cuda:\\d{1,3}", d)) {
            throw new BadValue("is not a device: use auto, cpu, cuda or cuda:N");
        }
        return d;
    }, s -> s, s -> s);

    static final ValueType<MemorySize> MEMORY_SIZE = new ValueType<>("size", MemorySize.class, false, MemorySize::parse,
            MemorySize::text, MemorySize::text);

    static final ValueType<Resume> RESUME = new ValueType<>("path|latest|auto|false", Resume.class, true, Resume::parse,
            Resume::flagValue, Resume::flagValue);

    /** HF's report_to integrations: refused by name, since none of them is available offline. */
    private static final Set<String> INTEGRATIONS = new LinkedHashSet<>(List.of("wandb", "tensorboard", "mlflow",
            "comet_ml", "clearml", "neptune", "azure_ml", "codecarbon", "dagshub", "dvclive", "flyte", "swanlab",
            "trackio"));

    /** {@code --report_to}: none, all, or a comma-separated list of jsonl and html. */
    static final ValueType<List<ReportTarget>> REPORT_TO = new ValueType<>("none|jsonl|html|all", List.class, false,
            ValueType::reportTargets,
            l -> l.isEmpty() ? "none" : l.stream().map(Choice::flagValue).collect(Collectors.joining(",")),
            l -> l.stream().map(Choice::flagValue).toList());

    /** The value parses as a boolean or is not one (null), HF's spellings. */
    static Boolean bool(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "yes", "true", "t", "y", "1" -> Boolean.TRUE;
            case "no", "false", "f", "n", "0" -> Boolean.FALSE;
            default -> null;
        };
    }

    /**
     * A choice among an enum's constants, spelled as {@link Choice#flagValue()} (any case). {@code refusal} gives the
     * reason a known-but-refused value is refused, or null for a value that is simply unknown.
     */
    static <E extends Enum<E> & Choice> ValueType<E> choice(Class<E> type, Function<String, String> refusal) {
        E[] constants = type.getEnumConstants();
        String label = Arrays.stream(constants).map(Choice::flagValue).collect(Collectors.joining("|"));
        return new ValueType<>(label, type, false, s -> {
            String v = s.trim().toLowerCase(Locale.ROOT);
            for (E e : constants) {
                if (e.flagValue().equals(v)) {
                    return e;
                }
            }
            String reason = refusal.apply(v);
            if (reason != null) {
                throw new BadValue("is refused: " + reason);
            }
            throw new BadValue("is not one of " + label.replace("|", ", ")
                    + Suggest.didYouMean(v, Arrays.stream(constants).map(Choice::flagValue).toList(), ""));
        }, Choice::flagValue, Choice::flagValue);
    }

    /** An integer restricted to a few values, with reasons for known-but-refused ones. */
    static ValueType<Integer> intChoice(List<Integer> allowed, Map<Integer, String> refused) {
        String label = allowed.stream().map(String::valueOf).collect(Collectors.joining("|"));
        return new ValueType<>(label, Integer.class, false, s -> {
            int v = INT.parse(s);
            if (allowed.contains(v)) {
                return v;
            }
            String reason = refused.get(v);
            if (reason != null) {
                throw new BadValue("is refused: " + reason);
            }
            throw new BadValue("is not one of " + label.replace("|", ", "));
        }, String::valueOf, i -> i);
    }

    private static List<String> nameList(String raw) {
        String s = raw.trim();
        if (s.startsWith("[") != s.endsWith("]")) {
            throw new BadValue("has an unbalanced bracket: write ['lm_head','embed_tokens'] or lm_head,embed_tokens");
        }
        if (s.startsWith("[")) {
            s = s.substring(1, s.length() - 1);
        }
        List<String> names = new ArrayList<>();
        for (String part : s.split(",", -1)) {
            String p = part.trim();
            if (p.length() >= 2 && (p.charAt(0) == '\'' || p.charAt(0) == '"') && p.charAt(p.length() - 1) == p.charAt(0)) {
                p = p.substring(1, p.length() - 1).trim();
            }
            if (p.isEmpty()) {
                continue;
            }
            if (!Pattern.matches("[A-Za-z0-9_.\\-]+", p)) {
                throw new BadValue("has '" + p + "', which is not a module name span (letters, digits, _ . -)");
            }
            if (!names.contains(p)) {
                names.add(p);
            }
        }
        return List.copyOf(names);
    }

    private static List<ReportTarget> reportTargets(String raw) {
        String s = raw.trim();
        if (s.startsWith("[") && s.endsWith("]")) {
            s = s.substring(1, s.length() - 1);
        }
        Set<ReportTarget> targets = new LinkedHashSet<>();
        List<String> refused = new ArrayList<>();
        for (String part : s.split(",", -1)) {
            String p = part.trim().replace("'", "").replace("\"", "").toLowerCase(Locale.ROOT);
            switch (p) {
                case "", "none" -> { }
                case "all" -> targets.addAll(List.of(ReportTarget.values()));
                default -> {
                    ReportTarget t = Arrays.stream(ReportTarget.values()).filter(r -> r.flagValue().equals(p)).findFirst().orElse(null);
                    if (t != null) {
                        targets.add(t);
                    } else if (INTEGRATIONS.contains(p)) {
                        refused.add(p);
                    } else {
                        throw new BadValue("has '" + p + "', which is not one of none, jsonl, html, all");
                    }
                }
            }
        }
        if (!refused.isEmpty()) {
            throw new BadValue("is refused: " + String.join(" and ", refused) + (refused.size() == 1 ? " is" : " are")
                    + " not available (jtune runs offline, with no Python integrations); use jsonl and/or html, which"
                    + " write metrics.jsonl and report.html into output_dir");
        }
        List<ReportTarget> ordered = new ArrayList<>();
        for (ReportTarget t : ReportTarget.values()) {
            if (targets.contains(t)) {
                ordered.add(t);
            }
        }
        return List.copyOf(ordered);
    }

    /**
     * Python's repr of a float: the shortest text that parses back exactly, plain between 1e-4 and 1e16, else
     * scientific with a two-digit exponent (5e-05, 1e-08, 0.0001, 3.0, 0.999).
     */
    static String formatDouble(double d) {
        if (d == 0) {
            return (1 / d < 0) ? "-0.0" : "0.0";
        }
        java.math.BigDecimal b = new java.math.BigDecimal(Double.toString(d)).stripTrailingZeros();
        int exponent = b.precision() - b.scale() - 1;
        if (exponent >= -4 && exponent < 16) {
            String plain = b.toPlainString();
            return plain.contains(".") ? plain : plain + ".0";
        }
        String digits = b.unscaledValue().abs().toString();
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return (d < 0 ? "-" : "") + mantissa + "e" + (exponent < 0 ? "-" : "+")
                + String.format(Locale.ROOT, "%02d", Math.abs(exponent));
    }
}

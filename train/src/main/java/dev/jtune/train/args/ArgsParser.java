package dev.jtune.train.args;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Turns a command line (plus a preset and a config file) into {@link TrainArgs}, collecting every problem.
 *
 * <p>Syntax, as HfArgumentParser: {@code --flag value} or {@code --flag=value}; booleans also bare ({@code --bf16})
 * or followed by a boolean word ({@code --bf16 False}); {@code --no_flag} sets a boolean whose default is true to
 * false; dashes may replace underscores ({@code --learning-rate}). A flag given twice: the last wins.
 */
final class ArgsParser {
    private ArgsParser() {
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** One flag = value, wherever it came from. {@code raw} null: JSON null, which means the default. */
    private record Assignment(Flag flag, String raw, Origin origin) {
    }

    /** Where a value came from, for messages. */
    private record Origin(String description, boolean commandLine) {
        static final Origin COMMAND_LINE = new Origin("command line", true);

        String suffix() {
            return commandLine ? "" : " (" + description + ")";
        }
    }

    static CommandLine parse(String[] args, Map<String, String> env) {
        return parse(args, env, CommandLine.Purpose.TRAIN);
    }

    static CommandLine parse(String[] args, Map<String, String> env, CommandLine.Purpose purpose) {
        Objects.requireNonNull(args, "args");
        List<String> problems = new ArrayList<>();
        List<Assignment> cli = new ArrayList<>();
        boolean help = tokenize(args, cli, problems);
        if (help) {
            return new CommandLine.Help(HelpText.render());
        }

        // the preset and the config file, named on the command line (the config may name the preset)
        Preset preset = null;
        Path configFile = null;
        for (Assignment a : cli) {
            if (a.flag == Flag.PRESET && a.raw != null) {
                preset = (Preset) parseQuietly(a);
            } else if (a.flag == Flag.CONFIG && a.raw != null) {
                configFile = (Path) parseQuietly(a);
            }
        }
        List<Assignment> config = List.of();
        if (configFile != null) {
            config = readConfigFile(configFile, problems);
            if (preset == null) {
                for (Assignment a : config) {
                    if (a.flag == Flag.PRESET && a.raw != null) {
                        preset = (Preset) parseQuietly(a);
                    }
                }
            }
        }
        List<Assignment> all = new ArrayList<>();
        if (preset != null) {
            all.addAll(presetAssignments(preset));
        }
        all.addAll(config);
        all.addAll(cli);

        List<String> warnings = new ArrayList<>();
        Resolved r = resolve(all, problems, warnings);

        Map<Flag, String> given = new EnumMap<>(Flag.class);
        r.origins.forEach((f, o) -> given.put(f, o.description));
        deepSpeed(r, problems, warnings).forEach((f, o) -> given.putIfAbsent(f, o));

        // --model_id -> a local directory, offline
        if (r.values.get(Flag.MODEL_PATH) == null && r.values.get(Flag.MODEL_ID) != null) {
            try {
                r.values.put(Flag.MODEL_PATH, ModelLocator.resolve((String) r.values.get(Flag.MODEL_ID),
                        (Path) r.values.get(Flag.CACHE_DIR), env));
            } catch (ArgsException e) {
                problems.addAll(e.problems());
            }
        }
        TrainArgs a = TrainArgs.of(r.values);
        problems.addAll(a.contradictions(purpose));
        problems.addAll(a.missingFiles());
        if (r.fp16 && a.bf16()) {
            problems.add(Flag.FP16.cli() + " and " + Flag.BF16.cli() + " contradict each other: choose one (and only "
                    + Flag.BF16.cli() + " is built)");
        }
        String allocConf = env.get("PYTORCH_CUDA_ALLOC_CONF");
        if (allocConf != null) {
            warnings.add("PYTORCH_CUDA_ALLOC_CONF=" + allocConf + " is ignored: jtune's own allocator uses expandable"
                    + " segments by default (where the GPU supports virtual memory)");
        }
        if (!problems.isEmpty()) {
            throw new ArgsException(dedupe(problems));
        }
        return new CommandLine.Train(a, warnings, new GivenFlags(given));
    }

    /** Saved arguments or any JSON object of flag -> value: types, ranges, contradictions; no file checks. */
    static TrainArgs fromJson(String json, String what) {
        List<String> problems = new ArrayList<>();
        List<Assignment> assignments = jsonAssignments(json, new Origin(what, false), problems);
        Preset preset = null;
        for (Assignment a : assignments) {
            if (a.flag == Flag.PRESET && a.raw != null) {
                preset = (Preset) parseQuietly(a);
            }
        }
        List<Assignment> all = new ArrayList<>();
        if (preset != null) {
            all.addAll(presetAssignments(preset));
        }
        all.addAll(assignments);
        Resolved r = resolve(all, problems, new ArrayList<>());
        TrainArgs a = TrainArgs.of(r.values);
        problems.addAll(a.contradictions());
        if (!problems.isEmpty()) {
            throw new ArgsException(dedupe(problems));
        }
        return a;
    }

    // ---- the command line -----------------------------------------------------------------------------------------

    /** Reads the tokens into assignments; true if --help was asked for. */
    private static boolean tokenize(String[] args, List<Assignment> out, List<String> problems) {
        boolean help = false;
        for (int i = 0; i < args.length; i++) {
            String token = args[i];
            if (token == null) {
                problems.add("a null argument");
                continue;
            }
            if (token.equals("-h") || token.equals("--help")) {
                help = true;
                continue;
            }
            if (!token.startsWith("--") || token.length() == 2) {
                problems.add("unexpected argument '" + token + "': flags start with -- (see --help)");
                continue;
            }
            String body = token.substring(2);
            String value = null;
            int eq = body.indexOf('=');
            if (eq >= 0) {
                value = body.substring(eq + 1);
                body = body.substring(0, eq);
            }
            String name = body.replace('-', '_');
            Flag flag = Flag.byName(name);
            if (flag == null && name.startsWith("no_")) {
                Flag negated = Flag.byName(name.substring(3));
                if (negated != null && negated.isBoolean() && Boolean.TRUE.equals(negated.defaultValue())) {
                    if (value != null) {
                        problems.add(token + ": --no_" + negated.flagName() + " takes no value");
                    } else {
                        out.add(new Assignment(negated, "false", Origin.COMMAND_LINE));
                    }
                    continue;
                }
            }
            if (flag == null) {
                problems.add(unknownFlag("--" + body, name, ""));
                if (value == null && i + 1 < args.length && args[i + 1] != null && !args[i + 1].startsWith("--")) {
                    i++; // its value, most likely: not a second problem
                }
                continue;
            }
            if (flag == Flag.HELP) {
                help = true;
                continue;
            }
            if (value == null) {
                String next = i + 1 < args.length ? args[i + 1] : null;
                if (flag.isBoolean()) {
                    if (next != null && ValueType.bool(next) != null) {
                        value = next;
                        i++;
                    } else {
                        value = "true";
                    }
                } else if (next == null || next.startsWith("--")) {
                    problems.add(flag.cli() + " needs a value (" + flag.typeLabel() + ")");
                    continue;
                } else {
                    value = next;
                    i++;
                }
            }
            out.add(new Assignment(flag, value, Origin.COMMAND_LINE));
        }
        return help;
    }

    private static String unknownFlag(String spelled, String name, String where) {
        return "unknown flag " + spelled + where + Suggest.didYouMean(name, Flag.allNames(), "--");
    }

    // ---- config files and presets -------------------------------------------------------------------------------

    private static List<Assignment> readConfigFile(Path file, List<String> problems) {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            problems.add(Flag.CONFIG.cli() + " " + file + " cannot be read: " + e.getMessage());
            return List.of();
        }
        return jsonAssignments(text, new Origin("config file " + file, false), problems);
    }

    private static List<Assignment> presetAssignments(Preset preset) {
        try (InputStream in = ArgsParser.class.getResourceAsStream(preset.resource())) {
            if (in == null) {
                throw new IllegalStateException("preset resource " + preset.resource() + " is missing from the jar");
            }
            List<String> problems = new ArrayList<>();
            List<Assignment> a = jsonAssignments(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8),
                    new Origin("preset " + preset.flagValue(), false), problems);
            if (!problems.isEmpty()) {
                throw new IllegalStateException("preset " + preset.flagValue() + " is broken: " + problems);
            }
            return a;
        } catch (IOException e) {
            throw new IllegalStateException("reading preset " + preset.resource(), e);
        }
    }

    /** The flag values of a preset, as its resource spells them, in its order (for --help). */
    static List<Map.Entry<String, String>> presetValues(Preset preset) {
        List<Map.Entry<String, String>> l = new ArrayList<>();
        for (Assignment a : presetAssignments(preset)) {
            l.add(Map.entry(a.flag.flagName(), a.flag.format(a.flag.parse(a.raw))));
        }
        return l;
    }

    private static List<Assignment> jsonAssignments(String text, Origin origin, List<String> problems) {
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            problems.add(origin.description + " is not valid JSON: " + e.getOriginalMessage());
            return List.of();
        }
        if (!(root instanceof ObjectNode object)) {
            problems.add(origin.description + " must be a JSON object of flag -> value");
            return List.of();
        }
        List<Assignment> out = new ArrayList<>();
        for (Map.Entry<String, JsonNode> e : object.properties()) {
            String key = e.getKey();
            String name = key.startsWith("--") ? key.substring(2) : key;
            name = name.replace('-', '_');
            Flag flag = Flag.byName(name);
            if (flag == null) {
                problems.add(unknownFlag("'" + key + "'", name, " in " + origin.description));
                continue;
            }
            if (flag == Flag.HELP) {
                problems.add("'" + key + "' in " + origin.description + ": --help belongs on the command line");
                continue;
            }
            // "config" is kept: saved arguments record the file they came from. Config files never nest: only the
            // command line's --config is read, and it overrides this value.
            JsonNode v = e.getValue();
            String raw;
            if (v.isNull()) {
                raw = null;
            } else if (v.isArray()) {
                List<String> items = new ArrayList<>();
                v.forEach(item -> items.add(item.asText()));
                raw = String.join(",", items);
            } else if (v.isObject()) {
                problems.add(flag.cli() + " in " + origin.description + " is a JSON object; a " + flag.typeLabel() + " is needed");
                continue;
            } else {
                raw = v.asText();
            }
            out.add(new Assignment(flag, raw, origin));
        }
        return out;
    }

    // ---- values -----------------------------------------------------------------------------------------------------

    private static final class Resolved {
        final Map<Flag, Object> values = new EnumMap<>(Flag.class);
        final Map<Flag, Origin> origins = new EnumMap<>(Flag.class);
        boolean fp16;
    }

    /** Applies assignments in order over the defaults; refused, ignored and bad values become problems and warnings. */
    private static Resolved resolve(List<Assignment> assignments, List<String> problems, List<String> warnings) {
        Resolved r = new Resolved();
        for (Flag f : Flag.implemented()) {
            r.values.put(f, f.defaultValue());
        }
        Set<Flag> warned = new LinkedHashSet<>();
        for (Assignment a : assignments) {
            Flag f = a.flag;
            Object value;
            if (a.raw == null) {
                value = f.defaultValue();
            } else if (f.nullable() && !f.textual() && isNone(a.raw)) {
                value = null;
            } else {
                try {
                    value = f.parse(a.raw);
                } catch (ValueType.BadValue e) {
                    problems.add(f.cli() + " " + shown(a.raw) + a.origin.suffix() + " " + e.getMessage());
                    continue;
                }
            }
            switch (f.support()) {
                case IMPLEMENTED -> {
                    r.values.put(f, value);
                    r.origins.put(f, a.origin);
                }
                case IGNORED -> {
                    if (warned.add(f)) {
                        warnings.add(f.cli() + a.origin.suffix() + " is ignored: " + f.reason());
                    }
                }
                case REFUSED -> {
                    if (f == Flag.FP16) {
                        r.fp16 = Boolean.TRUE.equals(value);
                    }
                    if (!f.harmlessValues().contains(value)) {
                        String given = f.isBoolean() ? "" : " " + shown(a.raw);
                        problems.add(f.cli() + given + a.origin.suffix() + " is refused: " + f.reason());
                    }
                }
                case ACTION -> throw new IllegalStateException(f.cli());
            }
        }
        for (Flag f : Flag.implemented()) {
            Object v = r.values.get(f);
            String bad = f.check(v);
            if (bad != null) {
                Origin o = r.origins.get(f);
                problems.add(f.cli() + " " + f.format(v) + (o == null ? "" : o.suffix()) + " " + bad);
                r.values.put(f, f.defaultValue()); // keep checking the rest against something sane
            }
        }
        return r;
    }

    /**
     * Reads the --deepspeed config, if any, checks it against the resolved flags and lets it set the flags it decides
     * (see {@link DeepSpeedConfig}). Only the command line does this: saved arguments already hold its effect.
     * Returns the flags the config decides (set or pinned), each with the config as its origin.
     */
    private static Map<Flag, String> deepSpeed(Resolved r, List<String> problems, List<String> warnings) {
        String value = (String) r.values.get(Flag.DEEPSPEED);
        if (value == null) {
            return Map.of();
        }
        DeepSpeedConfig ds;
        try {
            Origin o = r.origins.get(Flag.DEEPSPEED);
            ds = DeepSpeedConfig.read(value, o == null ? "" : o.suffix());
        } catch (ArgsException e) {
            problems.addAll(e.problems());
            return Map.of();
        }
        Map<Flag, String> given = new EnumMap<>(Flag.class);
        r.origins.forEach((f, o) -> given.put(f, o.description));
        Map<Flag, String> decided = new EnumMap<>(Flag.class);
        for (Flag f : ds.apply(r.values, given, problems, warnings)) {
            decided.put(f, ds.description());
        }
        return decided;
    }

    /** A value as messages show it: quoted if empty or if it has spaces or quotes. */
    static String shown(String raw) {
        if (!raw.isEmpty() && raw.chars().noneMatch(c -> Character.isWhitespace(c) || c == '\'' || c == '"')) {
            return raw;
        }
        return raw.indexOf('\'') >= 0 ? '"' + raw + '"' : "'" + raw + "'";
    }

    private static boolean isNone(String raw) {
        String s = raw.trim().toLowerCase(Locale.ROOT);
        return s.equals("none") || s.equals("null");
    }

    /** The value, or null if it does not parse (reported when the assignment is applied). */
    private static Object parseQuietly(Assignment a) {
        try {
            return a.flag.parse(a.raw);
        } catch (ValueType.BadValue e) {
            return null;
        }
    }

    private static List<String> dedupe(List<String> problems) {
        return List.copyOf(new LinkedHashSet<>(problems));
    }
}

package dev.jtune.train.args;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The --help text, rendered from the {@link Flag} table: deterministic, no widths from the terminal. */
final class HelpText {
    private HelpText() {
    }

    private static final int COLUMN = 46;

    static String render() {
        StringBuilder sb = new StringBuilder();
        sb.append("""
                usage: jtune [--flag value | --flag=value]...

                Fine-tunes Gemma 3 with the flag names of HF TrainingArguments and of the Gemma3-Finetune
                (LLaVA-style) training scripts, so their command lines translate one to one.
                Booleans: --bf16, --bf16 True, --bf16=false. Precedence: defaults < --preset < --config file
                < command line. All problems are reported together.
                """);
        for (Flag.Group g : Flag.Group.values()) {
            sb.append('\n').append(g.title()).append(":\n");
            for (Flag f : Flag.values()) {
                if (f.group() == g) {
                    sb.append(line(f)).append('\n');
                }
            }
        }
        sb.append("\nPresets (--preset NAME; --config and the command line override them):\n");
        for (Preset p : Preset.values()) {
            StringBuilder values = new StringBuilder();
            for (Map.Entry<String, String> e : ArgsParser.presetValues(p)) {
                values.append(values.isEmpty() ? "" : " ").append(e.getKey()).append('=').append(e.getValue());
            }
            sb.append(String.format(Locale.ROOT, "  %-26s %s%n", p.flagValue(), values));
        }
        sb.append("""

                Flags marked [ignored] are accepted for the Gemma3-Finetune scripts and do nothing (with a warning);
                flags marked [refused] are errors, except the values listed as accepted.

                The output directory (--output_dir) holds one run:
                  - every checkpoint-N stores the run's identity (model, tokenizer, data, LoRA shape, bits, optimizer,
                    seed, batch size, accumulation, max_seq_length); rerunning the same command resumes from the
                    newest checkpoint, and a different run is refused, naming what differs. The ways out:
                    --overwrite_output_dir (removes what jtune wrote there, nothing else) or another --output_dir.
                    Learning rate, schedule, cadence, device and checkpointing may change on resume (with a note).
                  - the final step is always checkpointed: a finished run rerun in place says so and does nothing;
                    a larger --max_steps continues it (no longer bit-exact with an uninterrupted run).
                  - a damaged checkpoint (checked by CRC32C, fields and finite weights) is named with the newest
                    valid one and the flag that resumes from it; metrics.jsonl restarts from the checkpoint.
                  - an --output_dir that is a file, or is or holds --model_path, is refused before loading.

                Notes:
                  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True is not needed (and ignored): jtune's own
                  allocator uses expandable segments by default where the GPU supports virtual memory.
                  There is no network: %s is found in the HF cache only (%s, $HF_HUB_CACHE,
                  $HF_HOME/hub, ~/.cache/huggingface/hub); %s takes any local checkpoint directory.
                """.formatted(Flag.MODEL_ID.cli(), Flag.CACHE_DIR.cli(), Flag.MODEL_PATH.cli()));
        return sb.toString().replace("\r", "");
    }

    private static String line(Flag f) {
        StringBuilder left = new StringBuilder("  ");
        List<String> names = f.names();
        for (int i = 0; i < names.size(); i++) {
            left.append(i == 0 ? "" : ", ").append("--").append(names.get(i));
        }
        if (!f.typeLabel().isEmpty()) {
            left.append(' ').append(typeWord(f));
        }
        StringBuilder right = new StringBuilder();
        switch (f.support()) {
            case IMPLEMENTED -> right.append(f.help()).append(f.required() ? " (required)"
                    : " (default: " + f.format(f.defaultValue()) + ")");
            case IGNORED -> right.append("[ignored] ").append(f.reason());
            case REFUSED -> {
                right.append("[refused] ").append(f.reason());
                if (!f.harmlessValues().isEmpty()) {
                    right.append(" (accepted: ");
                    for (int i = 0; i < f.harmlessValues().size(); i++) {
                        Object h = f.harmlessValues().get(i);
                        right.append(i == 0 ? "" : ", ").append(h instanceof String s && s.isEmpty() ? "''" : f.format(h));
                    }
                    right.append(')');
                }
            }
            case ACTION -> right.append(f.help());
        }
        String l = left.toString();
        return l.length() < COLUMN ? String.format(Locale.ROOT, "%-" + COLUMN + "s%s", l, right) : l + "  " + right;
    }

    /** int, float, bool, path, string in capitals; choice lists as they are ({no|steps|epoch}). */
    private static String typeWord(Flag f) {
        String label = f.typeLabel();
        return switch (label) {
            case "int", "float", "bool", "path", "string", "list" -> label.toUpperCase(Locale.ROOT);
            case "path|json" -> "FILE|JSON";
            default -> "{" + label + "}";
        };
    }
}

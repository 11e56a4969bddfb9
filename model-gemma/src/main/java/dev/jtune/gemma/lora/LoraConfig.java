package dev.jtune.gemma.lora;

import java.util.List;

/**
 * Which linear modules get LoRA adapters and how: rank r, alpha (the update is scaled by alpha / r), dropout on
 * the adapter's input, target module names (matched against the last component of a module name, as peft
 * does: "q_proj" matches "model.layers.3.self_attn.q_proj"), name spans that exclude a module when they occur
 * anywhere in its name (the seed's {@code --lora_namespan_exclude "['lm_head','embed_tokens']"}), and
 * {@code numLoraModules}: only the last N matching modules (-1: all).
 */
public record LoraConfig(int rank, double alpha, double dropout, List<String> targetModules, List<String> excludeNamespans,
                         int numLoraModules) {
    /** All seven linear projections of a Gemma 3 layer. */
    public static final List<String> ALL_LINEAR = List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

    /** The linear projections of a SigLIP encoder layer (Gemma 3's vision tower): what {@code --vision_lora} adapts. */
    public static final List<String> SIGLIP_LINEAR = List.of("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2");

    public LoraConfig {
        if (rank <= 0) {
            throw new IllegalArgumentException("LoRA rank must be positive, got " + rank);
        }
        if (!(alpha > 0)) {
            throw new IllegalArgumentException("LoRA alpha must be positive, got " + alpha);
        }
        if (!(dropout >= 0 && dropout < 1)) {
            throw new IllegalArgumentException("LoRA dropout must be in [0, 1), got " + dropout);
        }
        if (targetModules == null || targetModules.isEmpty()) {
            throw new IllegalArgumentException("LoRA needs at least one target module");
        }
        if (numLoraModules == 0 || numLoraModules < -1) {
            throw new IllegalArgumentException("numLoraModules must be -1 (all) or positive, got " + numLoraModules);
        }
        targetModules = List.copyOf(targetModules);
        excludeNamespans = excludeNamespans == null ? List.of() : List.copyOf(excludeNamespans);
    }

    public static LoraConfig of(int rank, double alpha) {
        return new LoraConfig(rank, alpha, 0.0, ALL_LINEAR, List.of("lm_head", "embed_tokens"), -1);
    }

    public double scale() {
        return alpha / rank;
    }

    /** Whether module {@code name} is targeted (before numLoraModules is applied). */
    public boolean matches(String name) {
        for (String span : excludeNamespans) {
            if (name.contains(span)) {
                return false;
            }
        }
        String last = name.substring(name.lastIndexOf('.') + 1);
        for (String t : targetModules) {
            if (t.equals(name) || t.equals(last) || name.endsWith("." + t)) {
                return true;
            }
        }
        return false;
    }
}

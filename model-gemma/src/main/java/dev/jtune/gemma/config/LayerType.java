package dev.jtune.gemma.config;

/** Gemma 3's two kinds of decoder layer: local sliding-window attention, and global (full causal) attention. */
public enum LayerType {
    /** "sliding_attention": attends to the last {@code sliding_window} positions; rope theta = the local base (10k). */
    SLIDING("sliding_attention"),
    /** "full_attention": attends to every earlier position; rope theta = the global base (1M), possibly scaled. */
    FULL("full_attention");

    private final String hfName;

    LayerType(String hfName) {
        this.hfName = hfName;
    }

    /** The name transformers uses in {@code layer_types} and {@code rope_parameters}. */
    public String hfName() {
        return hfName;
    }

    /** Parses a transformers layer type name; null when it is not one. */
    public static LayerType fromHfName(String name) {
        for (LayerType t : values()) {
            if (t.hfName.equals(name)) {
                return t;
            }
        }
        return null;
    }
}

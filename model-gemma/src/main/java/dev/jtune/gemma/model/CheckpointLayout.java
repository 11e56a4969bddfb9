package dev.jtune.gemma.model;

import dev.jtune.gemma.safetensors.SafeTensorsModel;

import java.nio.file.Path;

/**
 * Where a checkpoint keeps each tower, by the key layouts transformers has written: a text-only Gemma3ForCausalLM
 * ({@code model.*}), Gemma3ForConditionalGeneration before transformers 4.52 ({@code language_model.model.*},
 * {@code vision_tower.vision_model.*}, {@code multi_modal_projector.*}) and since ({@code model.language_model.*},
 * {@code model.vision_tower.vision_model.*}, {@code model.multi_modal_projector.*}). Names in memory are the text
 * model's {@code model.*} and the towers' own; these prefixes map them to the file's.
 */
public enum CheckpointLayout {
    TEXT("model.", null, null),
    MULTIMODAL_LEGACY("language_model.model.", "vision_tower.", "multi_modal_projector."),
    MULTIMODAL("model.language_model.", "model.vision_tower.", "model.multi_modal_projector.");

    private final String text;
    private final String vision;
    private final String projector;

    CheckpointLayout(String text, String vision, String projector) {
        this.text = text;
        this.vision = vision;
        this.projector = projector;
    }

    /** The file's name of the text model's {@code model.}-relative name {@code name} ("embed_tokens.weight"). */
    public String text(String name) {
        return text + name;
    }

    /** The file's name of the vision tower's {@code name} ("vision_model.post_layernorm.weight"). */
    public String vision(String name) {
        requireMultimodal();
        return vision + name;
    }

    /** The file's name of the projector's {@code name} ("mm_input_projection_weight"). */
    public String projector(String name) {
        requireMultimodal();
        return projector + name;
    }

    public boolean multimodal() {
        return vision != null;
    }

    private void requireMultimodal() {
        if (vision == null) {
            throw new IllegalStateException("a text-only checkpoint has no vision tower or projector");
        }
    }

    /** The layout of {@code files}, told by where its embedding is; an error naming the three names tried. */
    public static CheckpointLayout of(SafeTensorsModel files, Path dir) {
        for (CheckpointLayout l : values()) {
            if (files.contains(l.text("embed_tokens.weight"))) {
                return l;
            }
        }
        throw new dev.jtune.engine.ShapeException("Gemma 3 checkpoint " + dir + " has no embedding: none of "
                + java.util.Arrays.stream(values()).map(l -> l.text("embed_tokens.weight")).toList());
    }
}

package dev.jtune.gemma.model;

import dev.jtune.engine.ShapeException;
import dev.jtune.gemma.safetensors.SafeTensorsModel;

import java.nio.file.Path;
import java.util.List;

/**
 * Where a checkpoint keeps each tower, by the key layouts transformers has written: the text model's {@code model.*}
 * under {@code model.} (Gemma3ForCausalLM), {@code language_model.model.} (Gemma3ForConditionalGeneration before
 * transformers 4.52, and as 5.x saves it again) or {@code model.language_model.} (4.52 to 4.x); the SigLIP tower under
 * {@code vision_tower.} or {@code model.vision_tower.}, with or without a {@code vision_model.} level (5.x dropped it);
 * the projector under {@code multi_modal_projector.} or {@code model.multi_modal_projector.}. Each prefix is told by
 * probing one tensor. Names in memory (a module's {@code namedParameters()}) are relative to the tower; these prefixes
 * map them to the file's.
 *
 * @param text      the prefix of the text model's names without their {@code model.} ("embed_tokens.weight")
 * @param vision    the prefix of the tower's names ("embeddings.patch_embedding.weight"), or null for a text-only file
 * @param projector the prefix of the projector's names, or null for a text-only file
 */
public record CheckpointLayout(String text, String vision, String projector) {
    private static final List<String> TEXT = List.of("model.", "language_model.model.", "model.language_model.");
    private static final List<String> VISION = List.of("vision_tower.", "vision_tower.vision_model.", "model.vision_tower.",
            "model.vision_tower.vision_model.");
    private static final List<String> PROJECTOR = List.of("multi_modal_projector.", "model.multi_modal_projector.");
    private static final String EMBED = "embed_tokens.weight";
    private static final String PATCHES = "embeddings.patch_embedding.weight";
    private static final String PROJECTION = "mm_input_projection_weight";

    /** The file's name of the text model's {@code model.}-relative {@code name}. */
    public String text(String name) {
        return text + name;
    }

    /** The file's name of the vision tower's {@code name}. */
    public String vision(String name) {
        requireMultimodal();
        return vision + name;
    }

    /** The file's name of the projector's {@code name}. */
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

    /** The file's names of the text model's embedding, in every layout (for callers that only need that tensor). */
    public static List<String> embeddingNames() {
        return TEXT.stream().map(p -> p + EMBED).toList();
    }

    /**
     * The layout of {@code files}: the text prefix by where the embedding is, the tower's and projector's (when the file
     * has them) by where their first tensor is. An error names the names tried.
     */
    public static CheckpointLayout of(SafeTensorsModel files, Path dir) {
        String text = probe(files, TEXT, EMBED);
        if (text == null) {
            throw new ShapeException("Gemma 3 checkpoint " + dir + " has no embedding: none of " + embeddingNames());
        }
        String vision = probe(files, VISION, PATCHES);
        String projector = probe(files, PROJECTOR, PROJECTION);
        if ((vision == null) != (projector == null)) {
            throw new ShapeException("Gemma 3 checkpoint " + dir + " has " + (vision == null ? "a projector but no vision tower (none of "
                    + VISION.stream().map(p -> p + PATCHES).toList() + ")" : "a vision tower but no projector (none of "
                    + PROJECTOR.stream().map(p -> p + PROJECTION).toList() + ")"));
        }
        return new CheckpointLayout(text, vision, projector);
    }

    private static String probe(SafeTensorsModel files, List<String> prefixes, String name) {
        for (String p : prefixes) {
            if (files.contains(p + name)) {
                return p;
            }
        }
        return null;
    }
}

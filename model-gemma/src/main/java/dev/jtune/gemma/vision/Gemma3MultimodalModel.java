package dev.jtune.gemma.vision;

import dev.jtune.engine.Autograd;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Ops;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.nn.DequantWorkspace;
import dev.jtune.engine.nn.Module;
import dev.jtune.engine.nn.Parameter;
import dev.jtune.engine.ops.Embedding;
import dev.jtune.gemma.config.ConfigException;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.model.CheckpointLayout;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.model.Gemma3TextModel;
import dev.jtune.gemma.model.TokenLayout;
import dev.jtune.gemma.safetensors.SafeTensorsModel;

import java.nio.file.Path;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Gemma 3's image-text model as HF's {@code Gemma3ForConditionalGeneration} computes it: the SigLIP tower encodes each
 * image, the projector pools and maps it to {@code mm_tokens_per_image} text-width features, the features replace the
 * embeddings of the image tokens (unscaled, where text embeddings are scaled by sqrt(hidden)), and the text model runs
 * with each image's run of tokens attending to itself both ways (causal elsewhere, sliding windows included).
 *
 * <p>A tree with HF's in-memory names: {@code model.vision_tower.*}, {@code model.multi_modal_projector.*},
 * {@code model.language_model.*} (the text model's {@code model.*}); the LM head is the tied embedding. The text side's
 * forward logic is {@link Gemma3Model}'s, over the same modules.
 */
public final class Gemma3MultimodalModel extends Module {
    private final Gemma3Model text;
    private final Gemma3VisionConfig vision;
    private final Inner model;
    /** The key layout of the checkpoint it was loaded from, which {@link #export} writes again; and that checkpoint. */
    private CheckpointLayout layout;
    private Path source;

    private Gemma3MultimodalModel(Gemma3Model text, Gemma3VisionConfig vision) {
        this.text = text;
        this.vision = vision;
        DequantWorkspace workspace = new DequantWorkspace(text.dtype(), text.device());
        this.model = child("model", new Inner(new SiglipVisionTower(vision, workspace),
                new MultiModalProjector(vision, text.config().hiddenSize()), text.model()));
    }

    /** HF's inner {@code Gemma3Model}: the tower, the projector and the language model, in HF's order. */
    static final class Inner extends Module {
        final SiglipVisionTower visionTower;
        final MultiModalProjector projector;

        Inner(SiglipVisionTower tower, MultiModalProjector projector, Gemma3TextModel language) {
            this.visionTower = child("vision_tower", tower);
            this.projector = child("multi_modal_projector", projector);
            child("language_model", language);
        }
    }

    /**
     * Loads a Gemma3ForConditionalGeneration checkpoint directory in either multimodal key layout
     * ({@link CheckpointLayout}), every weight converted to {@code dtype} on {@code device}; a missing or mis-shaped
     * tensor is an error naming it.
     */
    public static Gemma3MultimodalModel load(Path dir, Device device, DType dtype) {
        return load(dir, device, dtype, Gemma3Model.Loading.AS_IS);
    }

    /**
     * {@link #load(Path, Device, DType)} with the language model loaded as {@code loading} says (NF4, or its layers
     * on the host); the tower and projector stay in {@code dtype} on {@code device}.
     */
    public static Gemma3MultimodalModel load(Path dir, Device device, DType dtype, Gemma3Model.Loading loading) {
        Gemma3VisionConfig vc = Gemma3VisionConfig.read(dir).orElseThrow(() -> new ConfigException(dir.resolve("config.json").toString(),
                "vision_config", "missing: a text-only Gemma 3 has no vision tower (load it with Gemma3Model)"));
        Gemma3MultimodalModel m = new Gemma3MultimodalModel(Gemma3Model.load(dir, device, dtype, loading), vc);
        try (SafeTensorsModel files = SafeTensorsModel.open(dir); Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
            CheckpointLayout layout = CheckpointLayout.of(files, dir);
            if (!layout.multimodal()) {
                throw new ShapeException("Gemma 3 checkpoint " + dir + " holds only a text model (its config has a vision_config)");
            }
            java.util.Set<String> expected = new java.util.HashSet<>();
            for (Map.Entry<String, Parameter> e : m.model.visionTower.namedParameters().entrySet()) {
                expected.add(layout.vision(e.getKey()));
                Gemma3Model.load(files, dir, layout.vision(e.getKey()), e.getValue(), device, dtype);
            }
            for (Map.Entry<String, Parameter> e : m.model.projector.namedParameters().entrySet()) {
                expected.add(layout.projector(e.getKey()));
                Gemma3Model.load(files, dir, layout.projector(e.getKey()), e.getValue(), device, dtype);
            }
            for (String name : m.text.model().namedParameters().keySet()) { // "embed_tokens.weight", "layers.0...."
                expected.add(layout.text(name));
            }
            refuseUnexpected(files, dir, expected);
            m.layout = layout;
            m.source = dir;
        }
        return m;
    }

    /**
     * A model of the configuration in {@code dir}/config.json (a {@code "gemma3"} one, with a {@code vision_config})
     * with random weights: normal(0, 0.02) matrices, zero biases and Gemma norms (1 + w), LayerNorm scales 1 (the
     * language model as {@link Gemma3Model#random}). {@link #export} writes transformers 5's key layout and that
     * config.json. For benchmarks and tests of shapes and memory.
     */
    public static Gemma3MultimodalModel random(Path dir, Device device, DType dtype, long seed) {
        Gemma3VisionConfig vc = Gemma3VisionConfig.read(dir).orElseThrow(() -> new ConfigException(dir.resolve("config.json").toString(),
                "vision_config", "missing: not an image-text configuration"));
        Gemma3MultimodalModel m = random(dev.jtune.gemma.config.Gemma3Config.read(dir), vc, device, dtype, seed);
        m.layout = new CheckpointLayout("language_model.model.", "vision_tower.", "multi_modal_projector.");
        m.source = dir;
        return m;
    }

    /**
     * {@link #random(Path, Device, DType, long)} from the two configurations, without a source checkpoint (it does not
     * export): the memory planner's model on the meta device.
     */
    public static Gemma3MultimodalModel random(dev.jtune.gemma.config.Gemma3Config text, Gemma3VisionConfig vc, Device device, DType dtype, long seed) {
        Gemma3MultimodalModel m = new Gemma3MultimodalModel(Gemma3Model.random(text, device, dtype, seed), vc);
        try (Scope.Entered c = Scope.countAs(MemoryCategory.WEIGHTS)) {
            long s = seed + 1_000_003L;
            for (Map.Entry<String, Parameter> e : m.namedParameters().entrySet()) {
                if (e.getKey().startsWith(LANGUAGE_MODEL)) {
                    continue;
                }
                Parameter p = e.getValue();
                boolean layerNormScale = (e.getKey().contains("layer_norm") || e.getKey().contains("layernorm")) && e.getKey().endsWith(".weight");
                p.set(layerNormScale ? Tensor.full(p.shape(), 1.0, dtype, device) : p.shape().rank() == 1 ? Tensor.zeros(p.shape(), dtype, device)
                        : Tensor.normal(p.shape(), dtype, device, s++, 0, 0.02));
            }
        }
        return m;
    }

    /**
     * Writes the model as an HF checkpoint directory that the transformers which wrote its source reads back: every
     * tensor under the source's key layout ({@link CheckpointLayout}) in the model's dtype (NF4 weights dequantized),
     * sharded above {@code maxShardBytes}, and the source's config.json with its dtype naming the model's. Atomic per
     * file.
     */
    public void export(Path dir, long maxShardBytes) {
        if (source == null) {
            throw new IllegalStateException("an image-text model made from its configurations has no source checkpoint to export after");
        }
        try (Scope dense = Scope.open("export")) { // NF4 modules' dequantized copies live only while writing
            java.nio.file.Files.createDirectories(dir);
            dev.jtune.gemma.safetensors.SafeTensorsWriter writer = new dev.jtune.gemma.safetensors.SafeTensorsWriter().metadata("format", "pt");
            model.visionTower.stateDict().forEach((n, t) -> writer.add(layout.vision(n), t));
            model.projector.stateDict().forEach((n, t) -> writer.add(layout.projector(n), t));
            text.model().stateDict().forEach((n, t) -> writer.add(layout.text(n), t));
            writer.writeSharded(dir, maxShardBytes);
            com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
            com.fasterxml.jackson.databind.node.ObjectNode config = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(
                    source.resolve("config.json").toFile());
            String dtypeName = dev.jtune.gemma.config.Gemma3Config.hfDTypeName(text.dtype());
            config.put("dtype", dtypeName);
            if (config.has("torch_dtype")) {
                config.put("torch_dtype", dtypeName);
            }
            dev.jtune.engine.io.AtomicFiles.writeString(dir.resolve("config.json"), json.writerWithDefaultPrettyPrinter().writeValueAsString(config));
        } catch (java.io.IOException e) {
            throw new dev.jtune.gemma.safetensors.SafeTensorsException(dir, null, "exporting the image-text model failed", e);
        }
    }

    /** In-memory name prefixes ({@link #namedParameters()}) of the three parts, in HF's order. */
    public static final String VISION_TOWER = "model.vision_tower.";
    public static final String PROJECTOR = "model.multi_modal_projector.";
    public static final String LANGUAGE_MODEL = "model.language_model.";

    /**
     * The name under which {@link #export} writes (and {@link #load} read) the parameter named {@code name} in memory
     * ({@link #namedParameters()}): the source checkpoint's key layout.
     */
    public String fileName(String name) {
        if (layout == null) {
            throw new IllegalStateException("an image-text model made from its configurations has no file layout");
        }
        if (name.startsWith(VISION_TOWER)) {
            return layout.vision(name.substring(VISION_TOWER.length()));
        }
        if (name.startsWith(PROJECTOR)) {
            return layout.projector(name.substring(PROJECTOR.length()));
        }
        if (name.startsWith(LANGUAGE_MODEL)) {
            return layout.text(name.substring(LANGUAGE_MODEL.length()));
        }
        throw new IllegalArgumentException("not a parameter of Gemma3ForConditionalGeneration: " + name);
    }

    /**
     * Every tensor of the file must be one the model reads (the tied LM head may be stored too): an unexpected one
     * means another architecture or a config that does not match the weights, so loading stops naming it.
     */
    private static void refuseUnexpected(SafeTensorsModel files, Path dir, java.util.Set<String> expected) {
        java.util.List<String> unexpected = files.names().stream() // lm_head.weight or language_model.lm_head.weight: the tied head
                .filter(n -> !expected.contains(n) && !n.equals("lm_head.weight") && !n.equals("language_model.lm_head.weight")).sorted().toList();
        if (!unexpected.isEmpty()) {
            throw new ShapeException("Gemma 3 checkpoint " + dir + " has " + unexpected.size() + " tensor(s) this Gemma3ForConditionalGeneration"
                    + " does not read: " + (unexpected.size() > 5 ? unexpected.subList(0, 5) + " ..." : unexpected)
                    + " (is config.json the one these weights were saved with?)");
        }
    }

    /**
     * The linear module named {@code module}: the tower's and projector's by their names here
     * ({@code model.vision_tower.encoder.layers.0.self_attn.q_proj}), the language model's as {@link Gemma3Model#linear}
     * names them ({@code model.layers.0.self_attn.q_proj}), as LoRA adapters of this model are named.
     */
    public dev.jtune.engine.nn.Linear linear(String module) {
        return module.startsWith(VISION_TOWER) || module.startsWith(PROJECTOR) ? module(module, dev.jtune.engine.nn.Linear.class)
                : text.linear(module);
    }

    public Gemma3Model text() {
        return text;
    }

    public Gemma3VisionConfig visionConfig() {
        return vision;
    }

    public SiglipVisionTower visionTower() {
        return model.visionTower;
    }

    public MultiModalProjector projector() {
        return model.projector;
    }

    /** The tower's last hidden state [I, patches, vision_hidden] of pixels [I, C, S, S] (normalized, at the configured size). */
    public Tensor visionStates(Tensor pixels) {
        return visionStates(pixels, Gemma3Model.Options.defaults());
    }

    /** {@link #visionStates(Tensor)} under {@code options}' checkpointing and activation store (a trained tower's layers). */
    private Tensor visionStates(Tensor pixels, Gemma3Model.Options options) {
        return model.visionTower.forward(pixels.to(text.device()).cast(text.dtype()), options.checkpointing(), options.activations());
    }

    /**
     * Image features [I * mm_tokens_per_image, text_hidden]: each image's tokens in order, images in order. With the
     * tower and projector frozen (no weight of theirs requires a gradient) they run without autograd in a scope of their
     * own that keeps only the features: a scope frees what it owns only when it closes, so the tower's intermediates
     * would otherwise live until the micro-batch ends (8.2 GiB for one 896-pixel image of gemma-3-4b, on meta).
     */
    public Tensor imageFeatures(Tensor pixels) {
        return imageFeatures(pixels, Gemma3Model.Options.defaults());
    }

    /** {@link #imageFeatures(Tensor)}, a trained tower under {@code options}' checkpointing. */
    private Tensor imageFeatures(Tensor pixels, Gemma3Model.Options options) {
        if (!model.visionTower.trains() && !model.projector.trains()) {
            try (Autograd.GradMode off = Autograd.noGrad(); Scope features = Scope.open("frozen image features")) {
                return features.keep(projectedFeatures(pixels, options));
            }
        }
        return projectedFeatures(pixels, options);
    }

    private Tensor projectedFeatures(Tensor pixels, Gemma3Model.Options options) {
        Tensor f = model.projector.forward(visionStates(pixels, options));
        return f.reshape(f.dim(0) * f.dim(1), f.dim(2));
    }

    /**
     * The text model's input embeddings [B * T, hidden] for ids I32 [B, T] whose image tokens hold the images of
     * {@code pixels} (null: none), in reading order: the scaled token embeddings with each image token's row replaced by
     * the next image feature. A row gather over [token embeddings; features], so gradients reach both (and none the
     * replaced rows' token embedding). The count of image tokens must be images x mm_tokens_per_image.
     */
    public Tensor inputEmbeddings(Tensor ids, Tensor pixels) {
        return inputEmbeddings(ids, ids.toIntArray(), pixels, Gemma3Model.Options.defaults());
    }

    /** {@link #inputEmbeddings(Tensor, Tensor)} with the ids already on the host as {@code id}. */
    private Tensor inputEmbeddings(Tensor ids, int[] id, Tensor pixels, Gemma3Model.Options options) {
        int perImage = vision.mmTokensPerImage();
        long images = pixels == null ? 0 : pixels.dim(0);
        int imageTokens = 0;
        for (int v : id) {
            if (v == vision.imageToken()) {
                imageTokens++;
            }
        }
        if (imageTokens != images * perImage) {
            throw new ShapeException("Gemma 3 vision: " + imageTokens + " image tokens (id " + vision.imageToken() + ") in ids "
                    + ids.shape() + ", but " + images + " image(s) of " + perImage + " tokens each need " + images * perImage);
        }
        boolean outsideVocab = vision.imageToken() >= text.config().vocabSize();
        Tensor lookupIds = ids;
        if (outsideVocab) { // HF looks such image tokens up as id 0; their rows are replaced anyway
            int[] safe = id.clone();
            for (int i = 0; i < safe.length; i++) {
                if (safe[i] == vision.imageToken()) {
                    safe[i] = 0;
                }
            }
            lookupIds = Tensor.fromArray(safe, ids.shape(), DType.I32, Device.CPU);
        }
        Tensor embeds = text.embed(lookupIds);
        if (images == 0) {
            return embeds;
        }
        Tensor features = imageFeatures(pixels, options);
        int[] rows = new int[id.length];
        int next = id.length;
        for (int i = 0; i < id.length; i++) {
            rows[i] = id[i] == vision.imageToken() ? next++ : i;
        }
        Tensor table = Ops.concat(0, embeds, features.cast(embeds.dtype()));
        return Embedding.lookup(table, Tensor.fromArray(rows, Shape.of(id.length), DType.I32, text.device()));
    }

    /**
     * The layout of ids [B, T]: one sample per row at positions 0..T-1, each run of image tokens a bidirectional group
     * (HF's token_type_ids mask: image tokens see their whole image, causal and sliding rules elsewhere).
     */
    public TokenLayout layout(Tensor ids) {
        return layout(ids, ids.toIntArray());
    }

    /** {@link #layout(Tensor)} with the ids already on the host as {@code id}. */
    private TokenLayout layout(Tensor ids, int[] id) {
        long b = ids.dim(0);
        int t = Math.toIntExact(ids.dim(1));
        int[] segments = new int[id.length];
        int[] groups = new int[id.length];
        int[] positions = new int[id.length];
        for (int r = 0; r < b; r++) {
            int group = -1;
            int runs = 0;
            for (int i = 0; i < t; i++) {
                int at = r * t + i;
                positions[at] = i;
                boolean image = id[at] == vision.imageToken();
                if (image && (i == 0 || id[at - 1] != vision.imageToken())) {
                    group = runs++;
                }
                groups[at] = image ? group : -1;
            }
        }
        return new TokenLayout(Tensor.fromArray(segments, ids.shape(), DType.I32, Device.CPU),
                Tensor.fromArray(groups, ids.shape(), DType.I32, Device.CPU), Tensor.fromArray(positions, ids.shape(), DType.I32, Device.CPU));
    }

    /**
     * Final-normed hidden states [B * T, hidden] of ids [B, T] with the images of {@code pixels} (see
     * {@link Gemma3Model#hidden}); a trained tower runs under {@code options}' checkpointing too.
     */
    public Tensor hidden(Tensor ids, Tensor pixels, Gemma3Model.Options options, Consumer<Tensor> observer) {
        int[] id = ids.toIntArray(); // read once for both (ids on a device cost a copy each)
        return text.hiddenFrom(inputEmbeddings(ids, id, pixels, options), ids, layout(ids, id), options, observer);
    }

    /**
     * A generation prompt's final hidden states [n, hidden] for ids I32 [1, n] holding the images of {@code pixels}
     * (null: none) in their image tokens, appending keys and values to {@code cache}: the features in place of the soft
     * tokens, each image bidirectional within itself, as the training forward; later tokens go through the language
     * model's {@link Gemma3Model#hiddenCached(Tensor, int, KvCache)}.
     */
    public Tensor promptHidden(Tensor ids, Tensor pixels, dev.jtune.gemma.model.KvCache cache) {
        int[] id = ids.toIntArray();
        return text.hiddenCached(inputEmbeddings(ids, id, pixels, Gemma3Model.Options.defaults()), layout(ids, id), 0, cache);
    }

    /** Logits [B * T, vocab] of final hidden states (the tied LM head). */
    public Tensor logits(Tensor hidden) {
        return text.logits(hidden);
    }

    /** HF's causal LM loss for labels [B, T] (-100 ignored; image tokens should be), divided by {@code normalizer} (0: the label count). */
    public Tensor loss(Tensor ids, Tensor pixels, Tensor labels, Gemma3Model.Options options, double normalizer) {
        return text.lossOf(hidden(ids, pixels, options, null), ids, labels, normalizer);
    }
}

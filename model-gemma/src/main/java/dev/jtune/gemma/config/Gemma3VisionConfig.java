package dev.jtune.gemma.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The image side of a {@code "gemma3"} (Gemma3ForConditionalGeneration) config: the SigLIP vision tower's
 * {@code vision_config} and the projector's geometry. transformers writes {@code vision_config} as a diff against
 * SiglipVisionConfig's defaults (the 4B config leaves out {@code layer_norm_eps} and {@code hidden_act}), so absent
 * fields take those defaults; the outer {@code mm_tokens_per_image} and token ids take Gemma3Config's.
 *
 * @param hiddenSize       the tower's width (1152 for Gemma 3)
 * @param intermediateSize its MLP's width
 * @param layers           encoder layers
 * @param heads            attention heads; the head size is {@code hiddenSize / heads} (72 for Gemma 3)
 * @param channels         image channels (3)
 * @param imageSize        the square input's side in pixels (896)
 * @param patchSize        the patch side (14): {@code (imageSize / patchSize)^2} patches per image
 * @param layerNormEps     the LayerNorms' eps, also the projector's RMSNorm's
 * @param hiddenAct        the MLP's activation, HF's name ("gelu_pytorch_tanh")
 * @param mmTokensPerImage tokens per image after the projector's pooling (256): a square number
 * @param boiToken         {@code <start_of_image>}'s id
 * @param eoiToken         {@code <end_of_image>}'s id
 * @param imageToken       {@code <image_soft_token>}'s id: the positions image features are scattered into
 */
public record Gemma3VisionConfig(int hiddenSize, int intermediateSize, int layers, int heads, int channels, int imageSize,
                                 int patchSize, double layerNormEps, String hiddenAct, int mmTokensPerImage, int boiToken,
                                 int eoiToken, int imageToken) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public Gemma3VisionConfig {
        String source = "vision config";
        for (int[] v : new int[][] {{hiddenSize}, {intermediateSize}, {layers}, {heads}, {channels}, {imageSize}, {patchSize}, {mmTokensPerImage}}) {
            if (v[0] <= 0) {
                throw new ConfigException(source, null, "sizes must be positive: " + summary(hiddenSize, intermediateSize, layers, heads,
                        channels, imageSize, patchSize, mmTokensPerImage));
            }
        }
        if (hiddenSize % heads != 0) {
            throw new ConfigException(source, "vision_config.num_attention_heads", heads + " heads do not divide hidden_size " + hiddenSize);
        }
        if (imageSize % patchSize != 0) {
            throw new ConfigException(source, "vision_config.patch_size", "patch size " + patchSize + " does not divide image_size " + imageSize);
        }
        int side = tokensPerSide(mmTokensPerImage);
        int patches = imageSize / patchSize;
        if (side * side != mmTokensPerImage || patches % side != 0) {
            throw new ConfigException(source, "mm_tokens_per_image", mmTokensPerImage + " is not a square whose side divides the "
                    + patches + " patches per image side");
        }
        if (!(layerNormEps > 0)) {
            throw new ConfigException(source, "vision_config.layer_norm_eps", "must be positive, got " + layerNormEps);
        }
        if (!hiddenAct.equals("gelu_pytorch_tanh")) { // Gemma 3's; the erf GELU has no kernel here yet
            throw new ConfigException(source, "vision_config.hidden_act", "unsupported activation \"" + hiddenAct
                    + "\" (expected \"gelu_pytorch_tanh\")");
        }
    }

    private static String summary(int... v) {
        return java.util.Arrays.toString(v);
    }

    private static int tokensPerSide(int tokens) {
        return (int) Math.round(Math.sqrt(tokens));
    }

    /** The attention head size. */
    public int headDim() {
        return hiddenSize / heads;
    }

    /** Patches along one side of an image. */
    public int patchesPerSide() {
        return imageSize / patchSize;
    }

    /** Patches (the tower's tokens) per image. */
    public int patches() {
        return patchesPerSide() * patchesPerSide();
    }

    /** Image tokens along one side after pooling. */
    public int tokensPerSide() {
        return tokensPerSide(mmTokensPerImage);
    }

    /** The pooling window's side: patches per side over tokens per side. */
    public int poolSize() {
        return patchesPerSide() / tokensPerSide();
    }

    /** The vision side of {@code dir/config.json}, or empty for a text-only config (no {@code vision_config}). */
    public static Optional<Gemma3VisionConfig> read(Path dir) {
        Path file = Files.isDirectory(dir) ? dir.resolve("config.json") : dir;
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (JsonProcessingException e) {
            throw new ConfigException(file.toString(), null, "not well-formed JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new ConfigException(file.toString(), null, "cannot be read: " + e.getMessage(), e);
        }
        return fromJson(root, file.toString());
    }

    /** The vision side of a parsed config, or empty without {@code vision_config}; {@code source} names it in errors. */
    public static Optional<Gemma3VisionConfig> fromJson(JsonNode root, String source) {
        JsonNode v = root == null ? null : root.get("vision_config");
        if (v == null || v.isNull()) {
            return Optional.empty();
        }
        if (!v.isObject()) {
            throw new ConfigException(source, "vision_config", "not an object: " + v);
        }
        JsonNode mt = v.get("model_type");
        if (mt != null && !mt.isNull() && !"siglip_vision_model".equals(mt.asText())) {
            throw new ConfigException(source, "vision_config.model_type", "unsupported vision model " + mt + " (expected \"siglip_vision_model\")");
        }
        try {
            // SiglipVisionConfig's defaults, then Gemma3Config's for the outer keys
            return Optional.of(new Gemma3VisionConfig(integer(source, v, "vision_config.", "hidden_size", 768),
                    integer(source, v, "vision_config.", "intermediate_size", 3072), integer(source, v, "vision_config.", "num_hidden_layers", 12),
                    integer(source, v, "vision_config.", "num_attention_heads", 12), integer(source, v, "vision_config.", "num_channels", 3),
                    integer(source, v, "vision_config.", "image_size", 224), integer(source, v, "vision_config.", "patch_size", 16),
                    number(source, v, "vision_config.", "layer_norm_eps", 1e-6), text(source, v, "vision_config.", "hidden_act", "gelu_pytorch_tanh"),
                    integer(source, root, "", "mm_tokens_per_image", 256), integer(source, root, "", "boi_token_index", 255_999),
                    integer(source, root, "", "eoi_token_index", 256_000), imageToken(source, root)));
        } catch (ConfigException e) {
            if (e.source() != null && !e.source().equals("vision config")) {
                throw e;
            }
            throw new ConfigException(source, e.field(), e.problem(), e);
        }
    }

    /** {@code image_token_index}, or the newer {@code image_token_id}; Gemma3Config's default 262144. */
    private static int imageToken(String source, JsonNode root) {
        JsonNode v = root.get("image_token_index");
        return v != null && !v.isNull() ? integer(source, root, "", "image_token_index", 0) : integer(source, root, "", "image_token_id", 262_144);
    }

    private static int integer(String source, JsonNode node, String prefix, String key, int dflt) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw new ConfigException(source, prefix + key, "expected an integer, found " + v);
        }
        return v.asInt();
    }

    private static double number(String source, JsonNode node, String prefix, String key, double dflt) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isNumber()) {
            throw new ConfigException(source, prefix + key, "expected a number, found " + v);
        }
        return v.asDouble();
    }

    private static String text(String source, JsonNode node, String prefix, String key, String dflt) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isTextual()) {
            throw new ConfigException(source, prefix + key, "expected a string, found " + v);
        }
        return v.asText();
    }
}

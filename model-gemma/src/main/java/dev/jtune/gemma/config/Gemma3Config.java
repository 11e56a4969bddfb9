package dev.jtune.gemma.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Numerics;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/**
 * The architecture of a Gemma 3 text model, read from a Hugging Face {@code config.json}.
 *
 * <p>Formats understood:
 * <ul>
 *   <li>{@code model_type} "gemma3_text" (Gemma3ForCausalLM: 270M, 1B), or "gemma3" (Gemma3ForConditionalGeneration:
 *   4B, 12B, 27B) whose text model is under {@code text_config} (whose own {@code model_type} is absent or
 *   "gemma3_text"). transformers writes {@code text_config} as a diff against Gemma3TextConfig's defaults (the 4B
 *   config lists only hidden_size, intermediate_size, num_hidden_layers, rope_scaling, sliding_window), so missing
 *   keys there take those defaults. A top-level "gemma3_text" config always lists its shape: vocab_size, hidden_size,
 *   intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads and head_dim are required.</li>
 *   <li>RoPE, transformers &lt; 5: {@code rope_theta} (global layers), {@code rope_local_base_freq} (sliding layers),
 *   {@code rope_scaling} (null, or {"rope_type": "linear", "factor": 8.0} in 4B+; it applies to the global layers
 *   only, as in transformers, whose sliding-layer rotary embedding is always "default").</li>
 *   <li>RoPE, transformers 5: {@code rope_parameters} = {"full_attention": {"rope_type", "rope_theta", ["factor"]},
 *   "sliding_attention": {...}}; where it omits a value the older keys, then the defaults, fill in.</li>
 *   <li>Layer kinds: {@code layer_types}, else {@code sliding_window_pattern} / {@code _sliding_window_pattern} (default
 *   6): layer i (0-based) is global iff (i + 1) % pattern == 0.</li>
 *   <li>{@code eos_token_id} as an int, a list, or null; {@code dtype} (transformers 5) or {@code torch_dtype}.</li>
 * </ul>
 * Only rope types "default" and "linear" are supported (linear: positions divided by the factor, i.e. inverse
 * frequencies divided by it); only the activation "gelu_pytorch_tanh".
 *
 * @param modelType                 the top-level model_type: "gemma3_text", or "gemma3" for a multimodal checkpoint
 *                                  (whose text weights live under a language-model prefix)
 * @param ropeScalingFactor         linear RoPE scaling of the global (full-attention) layers; 1.0 when none
 * @param ropeScalingFactorLocal    linear RoPE scaling of the sliding layers; 1.0 in every released model
 * @param finalLogitSoftcapping     tanh soft-capping of the logits, or null (none in Gemma 3)
 * @param attnLogitSoftcapping      tanh soft-capping of attention scores, or null (none in Gemma 3)
 * @param torchDtype                the checkpoint's dtype name ("bfloat16", ...), or null when the config has none
 */
public record Gemma3Config(
        String modelType,
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numKeyValueHeads,
        int headDim,
        double queryPreAttnScalar,
        double rmsNormEps,
        int slidingWindow,
        List<LayerType> layerTypes,
        double ropeThetaGlobal,
        double ropeThetaLocal,
        double ropeScalingFactor,
        double ropeScalingFactorLocal,
        Double finalLogitSoftcapping,
        Double attnLogitSoftcapping,
        int maxPositionEmbeddings,
        boolean tieWordEmbeddings,
        int bosTokenId,
        List<Integer> eosTokenIds,
        int padTokenId,
        String hiddenActivation,
        String torchDtype,
        boolean attentionBias,
        boolean useBidirectionalAttention) {

    public static final String TEXT_MODEL_TYPE = "gemma3_text";
    public static final String MULTIMODAL_MODEL_TYPE = "gemma3";
    public static final String GELU_TANH = "gelu_pytorch_tanh";

    // Gemma3TextConfig's defaults (transformers), used where a config omits a key
    static final int DEFAULT_VOCAB = 262_208;
    static final int DEFAULT_HIDDEN = 2304;
    static final int DEFAULT_INTERMEDIATE = 9216;
    static final int DEFAULT_LAYERS = 26;
    static final int DEFAULT_HEADS = 8;
    static final int DEFAULT_KV_HEADS = 4;
    static final int DEFAULT_HEAD_DIM = 256;
    static final double DEFAULT_QUERY_PRE_ATTN_SCALAR = 256;
    static final double DEFAULT_RMS_NORM_EPS = 1e-6;
    static final int DEFAULT_SLIDING_WINDOW = 4096;
    static final int DEFAULT_SLIDING_WINDOW_PATTERN = 6;
    static final double DEFAULT_ROPE_THETA = 1_000_000.0;
    static final double DEFAULT_ROPE_LOCAL_BASE_FREQ = 10_000.0;
    static final int DEFAULT_MAX_POSITIONS = 131_072;
    static final int DEFAULT_BOS = 2;
    static final int DEFAULT_EOS = 1;
    static final int DEFAULT_PAD = 0;

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    /** Validates every value (also for configs built in code); errors are {@link ConfigException}s naming the field. */
    public Gemma3Config {
        positive("vocab_size", vocabSize);
        positive("hidden_size", hiddenSize);
        positive("intermediate_size", intermediateSize);
        positive("num_hidden_layers", numHiddenLayers);
        positive("num_attention_heads", numAttentionHeads);
        positive("num_key_value_heads", numKeyValueHeads);
        positive("head_dim", headDim);
        positive("sliding_window", slidingWindow);
        positive("max_position_embeddings", maxPositionEmbeddings);
        if (numAttentionHeads % numKeyValueHeads != 0) {
            throw new ConfigException(null, "num_key_value_heads", "must divide num_attention_heads (expected a divisor of "
                    + numAttentionHeads + ", found " + numKeyValueHeads + ")");
        }
        if (headDim % 2 != 0) {
            throw new ConfigException(null, "head_dim", "must be even for rotary embeddings (found " + headDim + ")");
        }
        positive("query_pre_attn_scalar", queryPreAttnScalar);
        positive("rms_norm_eps", rmsNormEps);
        positive("rope_theta", ropeThetaGlobal);
        positive("rope_local_base_freq", ropeThetaLocal);
        positive("rope scaling factor (full_attention)", ropeScalingFactor);
        positive("rope scaling factor (sliding_attention)", ropeScalingFactorLocal);
        if (finalLogitSoftcapping != null) {
            positive("final_logit_softcapping", finalLogitSoftcapping);
        }
        if (attnLogitSoftcapping != null) {
            positive("attn_logit_softcapping", attnLogitSoftcapping);
        }
        if (layerTypes == null || layerTypes.size() != numHiddenLayers
                || layerTypes.stream().anyMatch(java.util.Objects::isNull)) { // List.of(...).contains(null) throws
            throw new ConfigException(null, "layer_types", "expected one entry per layer (" + numHiddenLayers + "), found "
                    + (layerTypes == null ? "none" : layerTypes.size() + ": " + layerTypes));
        }
        layerTypes = List.copyOf(layerTypes);
        eosTokenIds = eosTokenIds == null ? List.of() : List.copyOf(eosTokenIds);
        if (!GELU_TANH.equals(hiddenActivation)) {
            throw new ConfigException(null, "hidden_activation", "unsupported activation (expected \"" + GELU_TANH
                    + "\", found " + (hiddenActivation == null ? "null" : "\"" + hiddenActivation + "\"") + ")");
        }
        if (modelType == null) {
            modelType = TEXT_MODEL_TYPE;
        }
    }

    private static void positive(String field, double v) {
        if (!(v > 0) || Double.isInfinite(v)) {
            throw new ConfigException(null, field, "must be a positive number (found " + v + ")");
        }
    }

    // ---------------------------------------------------------------- reading

    /** Reads {@code path}: a config.json, or a checkpoint directory holding one. */
    public static Gemma3Config read(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve("config.json") : path;
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new ConfigException(file.toString(), null, "no such file", e);
        } catch (IOException e) {
            throw new ConfigException(file.toString(), null, "cannot read: " + e, e);
        }
        return parse(text, file.toString());
    }

    /** Parses config.json text; {@code source} names it in errors (a file name). */
    /** Configurations shipped in the jar (real models' config.json): "gemma-3-270m", "gemma-3-1b-it", "gemma-3-4b-it" (the multimodal config: its text tower). */
    public static Gemma3Config builtIn(String name) {
        String resource = "/dev/jtune/gemma/configs/" + name + ".json";
        try (java.io.InputStream in = Gemma3Config.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new ConfigException(resource, null, "no built-in configuration named '" + name
                        + "' (built in: gemma-3-270m, gemma-3-1b-it, gemma-3-4b-it)");
            }
            return parse(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8), "built-in " + name);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("reading " + resource, e);
        }
    }

    /**
     * This configuration as a transformers-5 {@code config.json} of a {@code Gemma3ForCausalLM} text model
     * (per-layer-type {@code rope_parameters} and {@code layer_types}), which HF and {@link #parse} both read.
     */
    public String toHfJson() {
        com.fasterxml.jackson.databind.node.ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("Gemma3ForCausalLM");
        c.put("attention_bias", attentionBias);
        c.put("attention_dropout", 0.0);
        if (attnLogitSoftcapping == null) {
            c.putNull("attn_logit_softcapping");
        } else {
            c.put("attn_logit_softcapping", attnLogitSoftcapping);
        }
        c.put("bos_token_id", bosTokenId);
        if (torchDtype != null) {
            c.put("dtype", torchDtype);
        }
        if (eosTokenIds.size() == 1) {
            c.put("eos_token_id", eosTokenIds.get(0));
        } else {
            eosTokenIds.forEach(c.putArray("eos_token_id")::add);
        }
        if (finalLogitSoftcapping == null) {
            c.putNull("final_logit_softcapping");
        } else {
            c.put("final_logit_softcapping", finalLogitSoftcapping);
        }
        c.put("head_dim", headDim);
        c.put("hidden_activation", hiddenActivation);
        c.put("hidden_size", hiddenSize);
        c.put("initializer_range", 0.02);
        c.put("intermediate_size", intermediateSize);
        com.fasterxml.jackson.databind.node.ArrayNode lt = c.putArray("layer_types");
        layerTypes.forEach(t -> lt.add(t.hfName()));
        c.put("max_position_embeddings", maxPositionEmbeddings);
        c.put("model_type", TEXT_MODEL_TYPE);
        c.put("num_attention_heads", numAttentionHeads);
        c.put("num_hidden_layers", numHiddenLayers);
        c.put("num_key_value_heads", numKeyValueHeads);
        c.put("pad_token_id", padTokenId);
        if (queryPreAttnScalar == Math.rint(queryPreAttnScalar)) {
            c.put("query_pre_attn_scalar", (long) queryPreAttnScalar); // transformers 5 validates it as an int
        } else {
            c.put("query_pre_attn_scalar", queryPreAttnScalar);
        }
        c.put("rms_norm_eps", rmsNormEps);
        com.fasterxml.jackson.databind.node.ObjectNode rope = c.putObject("rope_parameters");
        ropeJson(rope.putObject(LayerType.FULL.hfName()), ropeThetaGlobal, ropeScalingFactor);
        ropeJson(rope.putObject(LayerType.SLIDING.hfName()), ropeThetaLocal, ropeScalingFactorLocal);
        c.put("sliding_window", slidingWindow);
        c.put("tie_word_embeddings", tieWordEmbeddings);
        c.put("use_bidirectional_attention", useBidirectionalAttention);
        c.put("use_cache", true);
        c.put("vocab_size", vocabSize);
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(c);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("serialising a Gemma 3 config", e);
        }
    }

    private static void ropeJson(com.fasterxml.jackson.databind.node.ObjectNode n, double theta, double factor) {
        n.put("rope_theta", theta);
        if (factor == 1.0) {
            n.put("rope_type", "default");
        } else {
            n.put("rope_type", "linear");
            n.put("factor", factor);
        }
    }

    public static Gemma3Config parse(String json, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new ConfigException(source, null, "not well-formed JSON: " + e.getOriginalMessage()
                    + " (at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")", e);
        }
        return fromJson(root, source);
    }

    /** Builds a config from parsed JSON; {@code source} names it in errors. */
    public static Gemma3Config fromJson(JsonNode root, String source) {
        if (root == null || !root.isObject()) {
            throw new ConfigException(source, null, "expected a JSON object, found " + (root == null ? "nothing" : root.getNodeType()));
        }
        JsonNode mt = root.get("model_type");
        if (mt == null || !mt.isTextual()) {
            throw new ConfigException(source, "model_type", (mt == null ? "missing" : "not a string: " + mt)
                    + " (expected \"" + TEXT_MODEL_TYPE + "\" or \"" + MULTIMODAL_MODEL_TYPE + "\")");
        }
        String modelType = mt.asText();
        Fields f;
        if (modelType.equals(TEXT_MODEL_TYPE)) {
            f = new Fields(source, "", root, null, true);
        } else if (modelType.equals(MULTIMODAL_MODEL_TYPE)) {
            JsonNode tc = root.get("text_config");
            if (tc == null || !tc.isObject()) {
                throw new ConfigException(source, "text_config", (tc == null ? "missing" : "not an object")
                        + " (a \"gemma3\" config keeps its text model there)");
            }
            JsonNode tmt = tc.get("model_type");
            if (tmt != null && !tmt.isNull() && !TEXT_MODEL_TYPE.equals(tmt.asText())) {
                throw new ConfigException(source, "text_config.model_type", "unsupported model type (expected \""
                        + TEXT_MODEL_TYPE + "\" or none, found " + tmt + ")");
            }
            f = new Fields(source, "text_config.", tc, root, false);
        } else {
            throw new ConfigException(source, "model_type", "unsupported model type \"" + modelType + "\" (expected \""
                    + TEXT_MODEL_TYPE + "\" for Gemma3ForCausalLM or \"" + MULTIMODAL_MODEL_TYPE
                    + "\" for Gemma3ForConditionalGeneration)");
        }
        try {
            return build(modelType, f);
        } catch (ConfigException e) {
            if (e.source() != null) {
                throw e;
            }
            String field = e.field() == null || f.prefix.isEmpty() || e.field().contains(" ") ? e.field() : f.prefix + e.field();
            throw new ConfigException(source, field, e.problem(), e);
        }
    }

    private static Gemma3Config build(String modelType, Fields f) {
        int layers = f.integer("num_hidden_layers", DEFAULT_LAYERS);
        List<LayerType> layerTypes = layerTypes(f, layers);

        // rope: transformers 5's rope_parameters first, then the older keys, then the defaults
        JsonNode rp = f.text.get("rope_parameters");
        JsonNode ropeFull = null;
        JsonNode ropeSliding = null;
        if (rp != null && !rp.isNull()) {
            if (!rp.isObject()) {
                throw new ConfigException(f.source, f.prefix + "rope_parameters", "expected an object, found " + rp.getNodeType());
            }
            if (rp.has(LayerType.FULL.hfName()) || rp.has(LayerType.SLIDING.hfName())) {
                ropeFull = rp.get(LayerType.FULL.hfName());
                ropeSliding = rp.get(LayerType.SLIDING.hfName());
            } else {
                ropeFull = rp; // one set of parameters: transformers treats it as the global layers'
            }
        }
        double thetaGlobal = ropeValue(f, ropeFull, "rope_parameters.full_attention", "rope_theta", DEFAULT_ROPE_THETA);
        double thetaLocal = ropeValue(f, ropeSliding, "rope_parameters.sliding_attention", "rope_local_base_freq",
                DEFAULT_ROPE_LOCAL_BASE_FREQ);
        double factorGlobal = 1.0;
        JsonNode legacyScaling = f.text.get("rope_scaling");
        if (legacyScaling != null && !legacyScaling.isNull()) {
            factorGlobal = scalingFactor(f, "rope_scaling", legacyScaling);
        }
        if (ropeFull != null && (ropeFull.has("rope_type") || ropeFull.has("type"))) {
            factorGlobal = scalingFactor(f, "rope_parameters.full_attention", ropeFull);
        }
        double factorLocal = 1.0;
        if (ropeSliding != null && (ropeSliding.has("rope_type") || ropeSliding.has("type"))) {
            factorLocal = scalingFactor(f, "rope_parameters.sliding_attention", ropeSliding);
        }

        String dtype = f.optionalString("dtype");
        if (dtype == null) {
            dtype = f.optionalString("torch_dtype");
        }
        return new Gemma3Config(
                modelType,
                f.integer("vocab_size", DEFAULT_VOCAB),
                f.integer("hidden_size", DEFAULT_HIDDEN),
                f.integer("intermediate_size", DEFAULT_INTERMEDIATE),
                layers,
                f.integer("num_attention_heads", DEFAULT_HEADS),
                f.integer("num_key_value_heads", DEFAULT_KV_HEADS),
                f.integer("head_dim", DEFAULT_HEAD_DIM),
                f.number("query_pre_attn_scalar", DEFAULT_QUERY_PRE_ATTN_SCALAR),
                f.number("rms_norm_eps", DEFAULT_RMS_NORM_EPS),
                f.integer("sliding_window", DEFAULT_SLIDING_WINDOW),
                layerTypes,
                thetaGlobal,
                thetaLocal,
                factorGlobal,
                factorLocal,
                f.nullableNumber("final_logit_softcapping"),
                f.nullableNumber("attn_logit_softcapping"),
                f.integer("max_position_embeddings", DEFAULT_MAX_POSITIONS),
                f.bool("tie_word_embeddings", true),
                f.tokenId("bos_token_id", DEFAULT_BOS),
                f.tokenIds("eos_token_id", DEFAULT_EOS),
                f.tokenId("pad_token_id", DEFAULT_PAD),
                f.string("hidden_activation", GELU_TANH),
                dtype,
                f.bool("attention_bias", false),
                f.bool("use_bidirectional_attention", false));
    }

    private static List<LayerType> layerTypes(Fields f, int layers) {
        JsonNode lt = f.text.get("layer_types");
        if (lt != null && !lt.isNull()) {
            if (!lt.isArray()) {
                throw new ConfigException(f.source, f.prefix + "layer_types", "expected a list, found " + lt.getNodeType());
            }
            if (lt.size() != layers) {
                throw new ConfigException(f.source, f.prefix + "layer_types", "expected one entry per layer (num_hidden_layers = "
                        + layers + "), found " + lt.size());
            }
            List<LayerType> out = new ArrayList<>(layers);
            for (int i = 0; i < lt.size(); i++) {
                LayerType t = lt.get(i).isTextual() ? LayerType.fromHfName(lt.get(i).asText()) : null;
                if (t == null) {
                    throw new ConfigException(f.source, f.prefix + "layer_types[" + i + "]", "unsupported layer type (expected \""
                            + LayerType.SLIDING.hfName() + "\" or \"" + LayerType.FULL.hfName() + "\", found " + lt.get(i) + ")");
                }
                out.add(t);
            }
            return out;
        }
        String key = f.text.has("sliding_window_pattern") ? "sliding_window_pattern" : "_sliding_window_pattern";
        int pattern = f.integer(key, DEFAULT_SLIDING_WINDOW_PATTERN);
        if (pattern < 1) {
            throw new ConfigException(f.source, f.prefix + key, "must be at least 1 (found " + pattern + ")");
        }
        return layerTypesFromPattern(layers, pattern);
    }

    /** transformers' rule: layer i (0-based) is full attention iff (i + 1) % pattern == 0, else sliding. */
    public static List<LayerType> layerTypesFromPattern(int layers, int pattern) {
        List<LayerType> out = new ArrayList<>(layers);
        for (int i = 0; i < layers; i++) {
            out.add((i + 1) % pattern == 0 ? LayerType.FULL : LayerType.SLIDING);
        }
        return Collections.unmodifiableList(out);
    }

    private static double ropeValue(Fields f, JsonNode params, String where, String legacyKey, double dflt) {
        if (params != null && !params.isNull()) {
            if (!params.isObject()) {
                throw new ConfigException(f.source, f.prefix + where, "expected an object, found " + params.getNodeType());
            }
            JsonNode t = params.get("rope_theta");
            if (t != null && !t.isNull()) {
                if (!t.isNumber()) {
                    throw new ConfigException(f.source, f.prefix + where + ".rope_theta", "expected a number, found " + t);
                }
                return t.asDouble();
            }
        }
        return f.number(legacyKey, dflt);
    }

    private static double scalingFactor(Fields f, String where, JsonNode scaling) {
        if (!scaling.isObject()) {
            throw new ConfigException(f.source, f.prefix + where, "expected an object like {\"rope_type\": \"linear\", \"factor\": 8.0}, found "
                    + scaling.getNodeType());
        }
        JsonNode type = scaling.has("rope_type") ? scaling.get("rope_type") : scaling.get("type");
        String t = type == null || type.isNull() ? "default" : type.asText();
        switch (t) {
            case "default":
                return 1.0;
            case "linear": {
                JsonNode factor = scaling.get("factor");
                if (factor == null || !factor.isNumber() || !(factor.asDouble() > 0)) {
                    throw new ConfigException(f.source, f.prefix + where + ".factor", "linear rope scaling needs a positive factor, found "
                            + (factor == null ? "none" : factor));
                }
                return factor.asDouble();
            }
            default:
                throw new ConfigException(f.source, f.prefix + where + ".rope_type", "unsupported rope type \"" + t
                        + "\" (supported: \"default\", \"linear\")");
        }
    }

    /**
     * Field access with the lookup rules: the text config first; for a multimodal config the top level next (token
     * ids, dtype, tying live there); then the default, unless the field is required (top-level text configs).
     */
    private static final class Fields {
        final String source;
        final String prefix;
        final JsonNode text;
        final JsonNode outer;
        final boolean shapeRequired;

        Fields(String source, String prefix, JsonNode text, JsonNode outer, boolean shapeRequired) {
            this.source = source;
            this.prefix = prefix;
            this.text = text;
            this.outer = outer;
            this.shapeRequired = shapeRequired;
        }

        private static final List<String> REQUIRED = List.of("vocab_size", "hidden_size", "intermediate_size",
                "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim");

        /** The node for {@code key} (text config, else the outer config for a few shared keys), or null. */
        JsonNode get(String key) {
            JsonNode v = text.get(key);
            if ((v == null || v.isNull()) && outer != null && OUTER_KEYS.contains(key)) {
                v = outer.get(key);
            }
            if ((v == null || v.isNull()) && shapeRequired && REQUIRED.contains(key)) {
                throw new ConfigException(source, prefix + key, "missing required field (expected "
                        + (key.equals("head_dim") ? "the attention head dimension" : "a positive integer") + ")");
            }
            return v == null || v.isNull() ? null : v;
        }

        private static final List<String> OUTER_KEYS = List.of("bos_token_id", "eos_token_id", "pad_token_id",
                "tie_word_embeddings", "dtype", "torch_dtype");

        int integer(String key, int dflt) {
            JsonNode v = get(key);
            if (v == null) {
                return dflt;
            }
            if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                throw new ConfigException(source, prefix + key, "expected an integer, found " + v);
            }
            return v.asInt();
        }

        double number(String key, double dflt) {
            JsonNode v = get(key);
            if (v == null) {
                return dflt;
            }
            if (!v.isNumber()) {
                throw new ConfigException(source, prefix + key, "expected a number, found " + v);
            }
            return v.asDouble();
        }

        Double nullableNumber(String key) {
            JsonNode v = get(key);
            if (v == null) {
                return null;
            }
            if (!v.isNumber()) {
                throw new ConfigException(source, prefix + key, "expected a number or null, found " + v);
            }
            return v.asDouble();
        }

        boolean bool(String key, boolean dflt) {
            JsonNode v = get(key);
            if (v == null) {
                return dflt;
            }
            if (!v.isBoolean()) {
                throw new ConfigException(source, prefix + key, "expected true or false, found " + v);
            }
            return v.asBoolean();
        }

        String string(String key, String dflt) {
            String s = optionalString(key);
            return s == null ? dflt : s;
        }

        String optionalString(String key) {
            JsonNode v = get(key);
            if (v == null) {
                return null;
            }
            if (!v.isTextual()) {
                throw new ConfigException(source, prefix + key, "expected a string, found " + v);
            }
            return v.asText();
        }

        int tokenId(String key, int dflt) {
            JsonNode v = get(key);
            if (v == null) {
                return dflt;
            }
            if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0) {
                throw new ConfigException(source, prefix + key, "expected a token id (a non-negative integer), found " + v);
            }
            return v.asInt();
        }

        List<Integer> tokenIds(String key, int dflt) {
            JsonNode v = get(key);
            if (v == null) {
                return List.of(dflt);
            }
            List<Integer> out = new ArrayList<>();
            if (v.isArray()) {
                for (JsonNode e : v) {
                    if (!e.isIntegralNumber() || !e.canConvertToInt() || e.asInt() < 0) {
                        throw new ConfigException(source, prefix + key, "expected token ids (non-negative integers), found " + v);
                    }
                    out.add(e.asInt());
                }
                return out;
            }
            if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0) {
                throw new ConfigException(source, prefix + key, "expected a token id or a list of them, found " + v);
            }
            return List.of(v.asInt());
        }
    }

    // ---------------------------------------------------------------- derived values

    /** Whether this came from a multimodal ("gemma3") config: its text weights sit under a language-model prefix. */
    public boolean isMultimodal() {
        return MULTIMODAL_MODEL_TYPE.equals(modelType);
    }

    public LayerType layerType(int layer) {
        checkLayer(layer);
        return layerTypes.get(layer);
    }

    /** Whether {@code layer} (0-based) uses sliding-window attention. */
    public boolean isSliding(int layer) {
        return layerType(layer) == LayerType.SLIDING;
    }

    /** RoPE base of {@code layer}: {@link #ropeThetaLocal} for sliding layers, {@link #ropeThetaGlobal} for global ones. */
    public double ropeTheta(int layer) {
        return isSliding(layer) ? ropeThetaLocal : ropeThetaGlobal;
    }

    /**
     * Linear RoPE scaling of {@code layer} (1.0 = none): rotate position p by the angles of position p / factor, i.e.
     * inverse frequencies {@code 1 / (theta^(2i/headDim) * factor)}. Gemma 3 4B+ scale their global layers by 8.
     */
    public double ropeScalingFactor(int layer) {
        return isSliding(layer) ? ropeScalingFactorLocal : ropeScalingFactor;
    }

    /** Scale of attention scores: {@code queryPreAttnScalar^-0.5} (not headDim^-0.5: 27B differs). */
    public double attentionScale() {
        return 1.0 / Math.sqrt(queryPreAttnScalar);
    }

    /** The embedding normalizer {@code sqrt(hiddenSize)}, exact. See {@link #embeddingScale(DType)} for what HF multiplies by. */
    public double embeddingScale() {
        return Math.sqrt(hiddenSize);
    }

    /**
     * The embedding normalizer as transformers applies it to a model whose embedding weights are {@code dtype}:
     * it builds {@code torch.tensor(hidden_size ** 0.5)} (float32) and casts it to the weights' dtype before
     * multiplying, so a bf16 model scales by sqrt(hidden) rounded to float32 and then to bf16
     * (270M: sqrt(640) = 25.298 becomes 25.25; 1B: sqrt(1152) = 33.94 becomes 34.0). F64 gives the exact value.
     */
    public double embeddingScale(DType dtype) {
        double exact = Math.sqrt(hiddenSize);
        return switch (dtype) {
            case F64 -> exact;
            case F32 -> (float) exact;
            case BF16, F16 -> Numerics.roundTo(dtype, (float) exact);
            default -> throw new IllegalArgumentException("embeddingScale: " + dtype + " is not a floating dtype for weights");
        };
    }

    /** Width of the query projection: heads x head_dim (may differ from hidden_size: 1024 vs 640 in 270M). */
    public int qDim() {
        return numAttentionHeads * headDim;
    }

    /** Width of the key and value projections: kv heads x head_dim. */
    public int kvDim() {
        return numKeyValueHeads * headDim;
    }

    /** Query heads per key/value head. */
    public int queryGroups() {
        return numAttentionHeads / numKeyValueHeads;
    }

    /**
     * This configuration with {@code dtype} as its checkpoint dtype ({@link #torchDtype}, written as config.json's
     * {@code dtype}): a checkpoint's config must name the dtype of the tensors written beside it.
     */
    public Gemma3Config withWeightDType(DType dtype) {
        return new Gemma3Config(modelType, vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads,
                numKeyValueHeads, headDim, queryPreAttnScalar, rmsNormEps, slidingWindow, layerTypes, ropeThetaGlobal,
                ropeThetaLocal, ropeScalingFactor, ropeScalingFactorLocal, finalLogitSoftcapping, attnLogitSoftcapping,
                maxPositionEmbeddings, tieWordEmbeddings, bosTokenId, eosTokenIds, padTokenId, hiddenActivation,
                hfDTypeName(dtype), attentionBias, useBidirectionalAttention);
    }

    /** torch's name of a weight dtype, as config.json writes it: "bfloat16", "float32", "float16", "float64". */
    public static String hfDTypeName(DType dtype) {
        return switch (dtype) {
            case BF16 -> "bfloat16";
            case F32 -> "float32";
            case F16 -> "float16";
            case F64 -> "float64";
            default -> throw new IllegalArgumentException("a checkpoint's weights are floating point, not " + dtype);
        };
    }

    /** The engine dtype named by {@link #torchDtype} ("bfloat16", "float32", "float16", "float64"), if any. */
    public Optional<DType> weightDType() {
        if (torchDtype == null) {
            return Optional.empty();
        }
        return Optional.ofNullable(switch (torchDtype) {
            case "bfloat16" -> DType.BF16;
            case "float32", "float" -> DType.F32;
            case "float16", "half" -> DType.F16;
            case "float64", "double" -> DType.F64;
            default -> null;
        });
    }

    /** Layers of {@code type}, ascending. */
    public List<Integer> layersOf(LayerType type) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < layerTypes.size(); i++) {
            if (layerTypes.get(i) == type) {
                out.add(i);
            }
        }
        return out;
    }

    private void checkLayer(int layer) {
        if (layer < 0 || layer >= numHiddenLayers) {
            throw new IndexOutOfBoundsException("layer " + layer + " out of range: the model has " + numHiddenLayers + " layers");
        }
    }
}

package dev.jtune.gemma.config;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Gemma3ConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    static Path resource(String name) {
        try {
            return Path.of(Gemma3ConfigTest.class.getClassLoader().getResource(name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static List<LayerType> types(String pattern) {
        return pattern.chars().mapToObj(c -> c == 'F' ? LayerType.FULL : LayerType.SLIDING).toList();
    }

    @Test
    void tinyInTransformers5Format() {
        Gemma3Config c = Gemma3Config.read(resource("gemma3-tiny/config.json"));
        assertEquals("gemma3_text", c.modelType());
        assertFalse(c.isMultimodal());
        assertEquals(512, c.vocabSize());
        assertEquals(64, c.hiddenSize());
        assertEquals(256, c.intermediateSize());
        assertEquals(6, c.numHiddenLayers());
        assertEquals(4, c.numAttentionHeads());
        assertEquals(1, c.numKeyValueHeads());
        assertEquals(32, c.headDim());
        assertEquals(128, c.qDim());
        assertEquals(32, c.kvDim());
        assertEquals(4, c.queryGroups());
        assertEquals(32.0, c.queryPreAttnScalar());
        assertEquals(1e-6, c.rmsNormEps());
        assertEquals(16, c.slidingWindow());
        assertEquals(types("SSSSSF"), c.layerTypes());
        assertEquals(1_000_000.0, c.ropeThetaGlobal());
        assertEquals(10_000.0, c.ropeThetaLocal());
        assertEquals(10_000.0, c.ropeTheta(0));
        assertEquals(1_000_000.0, c.ropeTheta(5));
        assertEquals(1.0, c.ropeScalingFactor());
        assertEquals(1.0, c.ropeScalingFactor(5));
        assertNull(c.finalLogitSoftcapping());
        assertNull(c.attnLogitSoftcapping());
        assertEquals(512, c.maxPositionEmbeddings());
        assertTrue(c.tieWordEmbeddings());
        assertEquals(2, c.bosTokenId());
        assertEquals(List.of(1), c.eosTokenIds());
        assertEquals(0, c.padTokenId());
        assertEquals("gelu_pytorch_tanh", c.hiddenActivation());
        assertEquals("bfloat16", c.torchDtype());
        assertEquals(Optional.of(DType.BF16), c.weightDType());
        assertFalse(c.attentionBias());
        assertFalse(c.useBidirectionalAttention());
        assertEquals(1 / Math.sqrt(32), c.attentionScale());
        assertEquals(8.0, c.embeddingScale());
        assertEquals(8.0, c.embeddingScale(DType.BF16));
        assertTrue(c.isSliding(0));
        assertFalse(c.isSliding(5));
        assertThrows(IndexOutOfBoundsException.class, () -> c.isSliding(6));
        // a directory works too
        assertEquals(c, Gemma3Config.read(resource("gemma3-tiny")));
    }

    @Test
    void gemma3_270mInTheOlderFormat() {
        Gemma3Config c = Gemma3Config.read(resource("configs/gemma-3-270m.config.json"));
        assertEquals(262_144, c.vocabSize());
        assertEquals(640, c.hiddenSize());
        assertEquals(2048, c.intermediateSize());
        assertEquals(18, c.numHiddenLayers());
        assertEquals(4, c.numAttentionHeads());
        assertEquals(1, c.numKeyValueHeads());
        assertEquals(256, c.headDim());
        assertEquals(1024, c.qDim());
        assertEquals(512, c.slidingWindow());
        assertEquals(List.of(5, 11, 17), c.layersOf(LayerType.FULL));
        assertEquals(1_000_000.0, c.ropeThetaGlobal());
        assertEquals(10_000.0, c.ropeThetaLocal());
        assertEquals(1.0, c.ropeScalingFactor());
        assertTrue(c.tieWordEmbeddings(), "absent: transformers' default");
        assertEquals(List.of(1), c.eosTokenIds());
        assertEquals("bfloat16", c.torchDtype());
        assertEquals(32768, c.maxPositionEmbeddings());
        assertEquals(1.0 / 16, c.attentionScale());
        // sqrt(640) = 25.2982...: float32 25.298222, bf16 25.25 (what a bf16 model multiplies by)
        assertEquals(Math.sqrt(640), c.embeddingScale());
        assertEquals(25.25, c.embeddingScale(DType.BF16));
        assertEquals((float) Math.sqrt(640), c.embeddingScale(DType.F32));
        assertEquals(25.296875, c.embeddingScale(DType.F16));
    }

    @Test
    void gemma3_1bWithOnlyASlidingWindowPattern() {
        Gemma3Config c = Gemma3Config.read(resource("configs/gemma-3-1b-it.config.json"));
        assertEquals(26, c.numHiddenLayers());
        assertEquals(List.of(5, 11, 17, 23), c.layersOf(LayerType.FULL));
        assertEquals(22, c.layersOf(LayerType.SLIDING).size());
        assertEquals(1152, c.hiddenSize());
        assertEquals(6912, c.intermediateSize());
        assertEquals(List.of(1, 106), c.eosTokenIds());
        assertEquals(10_000.0, c.ropeThetaLocal(), "an int in the file");
        assertEquals(1_000_000.0, c.ropeThetaGlobal());
        assertEquals(34.0, c.embeddingScale(DType.BF16)); // sqrt(1152) = 33.941
        assertEquals(1.0 / 16, c.attentionScale());
    }

    @Test
    void layerTypesFromPatternFollowTransformers() {
        assertEquals(types("SSSSSFSSSSSFSS"), Gemma3Config.layerTypesFromPattern(14, 6));
        assertEquals(types("SFSF"), Gemma3Config.layerTypesFromPattern(4, 2));
        assertEquals(types("FFF"), Gemma3Config.layerTypesFromPattern(3, 1));
    }

    /** Shaped like gemma-3-4b-it's config.json: text_config is a diff against Gemma3TextConfig's defaults. */
    private static final String MULTIMODAL_4B = """
            {
              "architectures": ["Gemma3ForConditionalGeneration"],
              "boi_token_index": 255999,
              "eoi_token_index": 256000,
              "eos_token_id": [1, 106],
              "image_token_index": 262144,
              "initializer_range": 0.02,
              "mm_tokens_per_image": 256,
              "model_type": "gemma3",
              "text_config": {
                "hidden_size": 2560,
                "intermediate_size": 10240,
                "model_type": "gemma3_text",
                "num_hidden_layers": 34,
                "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                "sliding_window": 1024
              },
              "torch_dtype": "bfloat16",
              "transformers_version": "4.50.0.dev0",
              "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model", "num_hidden_layers": 27}
            }
            """;

    @Test
    void multimodalConfigWithTextConfig() {
        Gemma3Config c = Gemma3Config.parse(MULTIMODAL_4B, "gemma-3-4b-it/config.json");
        assertEquals("gemma3", c.modelType());
        assertTrue(c.isMultimodal());
        assertEquals(2560, c.hiddenSize());
        assertEquals(10240, c.intermediateSize());
        assertEquals(34, c.numHiddenLayers());
        assertEquals(1024, c.slidingWindow());
        // Gemma3TextConfig's defaults fill the rest
        assertEquals(262_208, c.vocabSize());
        assertEquals(8, c.numAttentionHeads());
        assertEquals(4, c.numKeyValueHeads());
        assertEquals(256, c.headDim());
        assertEquals(256.0, c.queryPreAttnScalar());
        assertEquals(131_072, c.maxPositionEmbeddings());
        assertEquals(List.of(5, 11, 17, 23, 29), c.layersOf(LayerType.FULL));
        // linear rope scaling on the global layers only
        assertEquals(8.0, c.ropeScalingFactor());
        assertEquals(8.0, c.ropeScalingFactor(5));
        assertEquals(1.0, c.ropeScalingFactor(0));
        assertEquals(1.0, c.ropeScalingFactorLocal());
        assertEquals(1_000_000.0, c.ropeTheta(5));
        assertEquals(10_000.0, c.ropeTheta(4));
        // top-level token ids and dtype apply to the text model
        assertEquals(List.of(1, 106), c.eosTokenIds());
        assertEquals("bfloat16", c.torchDtype());
        assertTrue(c.tieWordEmbeddings());
    }

    @Test
    void multimodalInTransformers5FormatWithoutTextModelType() {
        String json = """
                {"model_type": "gemma3", "dtype": "float32",
                 "text_config": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4,
                   "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64, "vocab_size": 1000,
                   "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                   "rope_parameters": {
                     "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 500000.0},
                     "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}},
                   "eos_token_id": 7, "tie_word_embeddings": false}}
                """;
        Gemma3Config c = Gemma3Config.parse(json, "mm.json");
        assertEquals(types("SFSF"), c.layerTypes());
        assertEquals(500_000.0, c.ropeThetaGlobal());
        assertEquals(20_000.0, c.ropeThetaLocal());
        assertEquals(4.0, c.ropeScalingFactor(1));
        assertEquals(1.0, c.ropeScalingFactor(0));
        assertEquals(List.of(7), c.eosTokenIds());
        assertFalse(c.tieWordEmbeddings());
        assertEquals(Optional.of(DType.F32), c.weightDType());
        assertEquals((float) Math.sqrt(128), c.embeddingScale(DType.F32));
    }

    private ObjectNode tiny() throws IOException {
        return (ObjectNode) JSON.readTree(resource("gemma3-tiny/config.json").toFile());
    }

    private ConfigException refused(ObjectNode json) throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, json.toString());
        return assertThrows(ConfigException.class, () -> Gemma3Config.read(file));
    }

    private void refused(ObjectNode json, String field, String... says) throws IOException {
        ConfigException e = refused(json);
        String m = e.getMessage();
        assertTrue(m.contains("config.json"), "names the file: " + m);
        if (field != null) {
            assertEquals(field, e.field(), m);
            assertTrue(m.contains(field), "names the field: " + m);
        }
        for (String s : says) {
            assertTrue(m.contains(s), "says '" + s + "': " + m);
        }
    }

    @Test
    void unsupportedModelType() throws IOException {
        refused(tiny().put("model_type", "llama"), "model_type", "llama", "gemma3_text");
        ObjectNode noType = tiny();
        noType.remove("model_type");
        refused(noType, "model_type", "missing");
        ObjectNode mm = (ObjectNode) JSON.readTree(MULTIMODAL_4B);
        ((ObjectNode) mm.get("text_config")).put("model_type", "gemma2");
        refused(mm, "text_config.model_type", "gemma2");
        ObjectNode noText = (ObjectNode) JSON.readTree(MULTIMODAL_4B);
        noText.remove("text_config");
        refused(noText, "text_config", "missing");
    }

    @Test
    void missingRequiredFields() throws IOException {
        for (String field : List.of("head_dim", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads")) {
            ObjectNode c = tiny();
            c.remove(field);
            refused(c, field, "missing");
        }
    }

    @Test
    void invalidValues() throws IOException {
        refused(tiny().put("hidden_activation", "gelu"), "hidden_activation", "gelu_pytorch_tanh", "\"gelu\"");
        refused(tiny().put("hidden_size", "64"), "hidden_size", "integer");
        refused(tiny().put("hidden_size", 64.5), "hidden_size", "integer");
        refused(tiny().put("num_key_value_heads", 3), "num_key_value_heads", "divide");
        refused(tiny().put("head_dim", 0), "head_dim", "positive");
        ObjectNode lt = tiny();
        lt.putArray("layer_types").add("sliding_attention");
        refused(lt, "layer_types", "6");
        ObjectNode lt2 = tiny();
        ((com.fasterxml.jackson.databind.node.ArrayNode) lt2.get("layer_types")).set(2, JSON.getNodeFactory().textNode("chunked_attention"));
        refused(lt2, "layer_types[2]", "chunked_attention");
        ObjectNode yarn = tiny();
        ((ObjectNode) yarn.get("rope_parameters").get("full_attention")).put("rope_type", "yarn");
        refused(yarn, "rope_parameters.full_attention.rope_type", "yarn", "linear");
        ObjectNode linearNoFactor = tiny();
        ((ObjectNode) linearNoFactor.get("rope_parameters").get("full_attention")).put("rope_type", "linear");
        refused(linearNoFactor, "rope_parameters.full_attention.factor", "factor");
        refused(tiny().put("eos_token_id", "one"), "eos_token_id", "token id");
        ObjectNode mm = (ObjectNode) JSON.readTree(MULTIMODAL_4B);
        ((ObjectNode) mm.get("text_config")).put("num_key_value_heads", 3);
        refused(mm, "text_config.num_key_value_heads", "divide");
        Path bad = dir.resolve("broken.json");
        Files.writeString(bad, "{\"model_type\": ");
        ConfigException e = assertThrows(ConfigException.class, () -> Gemma3Config.read(bad));
        assertTrue(e.getMessage().contains("broken.json") && e.getMessage().contains("JSON"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> Gemma3Config.read(dir.resolve("nope.json")));
        assertTrue(e.getMessage().contains("nope.json"), e.getMessage());
    }

    @Test
    void olderFormatRopeScaling() throws IOException {
        ObjectNode c = (ObjectNode) JSON.readTree(resource("configs/gemma-3-1b-it.config.json").toFile());
        c.putObject("rope_scaling").put("rope_type", "linear").put("factor", 8.0);
        Gemma3Config g = Gemma3Config.fromJson(c, "x");
        assertEquals(8.0, g.ropeScalingFactor(5));
        assertEquals(1.0, g.ropeScalingFactor(4));
        c.putObject("rope_scaling").put("type", "linear").put("factor", 2.0); // the oldest spelling
        assertEquals(2.0, Gemma3Config.fromJson(c, "x").ropeScalingFactor(5));
    }

    @Test
    void generationConfig() {
        GenerationConfig g = GenerationConfig.read(resource("gemma3-tiny"));
        assertEquals(2, g.bosTokenId());
        assertEquals(List.of(1), g.eosTokenIds());
        assertEquals(0, g.padTokenId());
        assertNull(g.temperature());
    }

    /**
     * The built-in gemma-3-4b-it: the multimodal config, whose text tower (text_config, the rest Gemma3TextConfig's
     * defaults) has 4B's sizes, and about 3.88 B parameters counted here from the sizes (tied embedding; q, k, v, o;
     * gate, up, down; four layer norms of hidden and the q and k norms of head_dim per layer; the final norm).
     */
    @Test
    void builtIn4bIsTheTextTowerOfTheMultimodalConfig() {
        Gemma3Config c = Gemma3Config.builtIn("gemma-3-4b-it");
        assertEquals("gemma3", c.modelType());
        assertEquals(2560, c.hiddenSize());
        assertEquals(10240, c.intermediateSize());
        assertEquals(34, c.numHiddenLayers());
        assertEquals(8, c.numAttentionHeads());
        assertEquals(4, c.numKeyValueHeads());
        assertEquals(256, c.headDim());
        assertEquals(262208, c.vocabSize());
        assertEquals(1024, c.slidingWindow());
        assertEquals(8.0, c.ropeScalingFactor(5)); // layer 6 is global (pattern 6): linear scaling 8
        assertTrue(c.tieWordEmbeddings());
        long h = c.hiddenSize();
        long perLayer = h * c.headDim() * (2L * c.numAttentionHeads() + 2L * c.numKeyValueHeads())
                + 3 * h * c.intermediateSize() + 4 * h + 2L * c.headDim();
        long params = (long) c.vocabSize() * h + c.numHiddenLayers() * perLayer + h;
        assertEquals(3_880_263_168L, params);
        assertTrue(Math.abs(params / 1e9 - 3.88) < 0.01, "text tower parameters: " + params);
    }
}

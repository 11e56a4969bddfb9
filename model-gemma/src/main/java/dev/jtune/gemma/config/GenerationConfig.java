package dev.jtune.gemma.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The parts of a {@code generation_config.json} a trainer and sampler use. Gemma 3 instruction-tuned checkpoints
 * stop on several ids here ([1, 106]: {@code <eos>}, {@code <end_of_turn>}) even where config.json lists one.
 * Every value is null (or empty) when the file does not set it.
 */
public record GenerationConfig(Integer bosTokenId, List<Integer> eosTokenIds, Integer padTokenId, Boolean doSample,
                               Double temperature, Integer topK, Double topP) {

    private static final ObjectMapper JSON = new ObjectMapper();

    public GenerationConfig {
        eosTokenIds = eosTokenIds == null ? List.of() : List.copyOf(eosTokenIds);
    }

    /** Reads {@code path}: a generation_config.json, or a checkpoint directory holding one. */
    public static GenerationConfig read(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve("generation_config.json") : path;
        String source = file.toString();
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (NoSuchFileException e) {
            throw new ConfigException(source, null, "no such file", e);
        } catch (JsonProcessingException e) {
            throw new ConfigException(source, null, "not well-formed JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new ConfigException(source, null, "cannot read: " + e, e);
        }
        if (root == null || !root.isObject()) {
            throw new ConfigException(source, null, "expected a JSON object");
        }
        return new GenerationConfig(integer(source, root, "bos_token_id"), ids(source, root, "eos_token_id"),
                integer(source, root, "pad_token_id"), root.hasNonNull("do_sample") ? root.get("do_sample").asBoolean() : null,
                number(source, root, "temperature"), integer(source, root, "top_k"), number(source, root, "top_p"));
    }

    private static Integer integer(String source, JsonNode root, String key) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw new ConfigException(source, key, "expected an integer, found " + v);
        }
        return v.asInt();
    }

    private static Double number(String source, JsonNode root, String key) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isNumber()) {
            throw new ConfigException(source, key, "expected a number, found " + v);
        }
        return v.asDouble();
    }

    private static List<Integer> ids(String source, JsonNode root, String key) {
        JsonNode v = root.get(key);
        List<Integer> out = new ArrayList<>();
        if (v == null || v.isNull()) {
            return out;
        }
        for (JsonNode e : v.isArray() ? v : List.of(v)) {
            if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                throw new ConfigException(source, key, "expected a token id or a list of them, found " + v);
            }
            out.add(e.asInt());
        }
        return out;
    }
}

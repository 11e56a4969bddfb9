package dev.jtune.gemma.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * A checkpoint: one {@code model.safetensors}, or shards listed by {@code model.safetensors.index.json}
 * ({@code {"metadata": {...}, "weight_map": {tensor: shard file}}}), behind one {@link SafeTensorsReader}.
 * Shards are opened (mapped and validated) lazily, the first time one of their tensors is asked for, and then
 * checked against the index: every tensor the index assigns to a shard must be in it. Thread-safe.
 *
 * <p>{@link #open(Path)} accepts a directory, a {@code .safetensors} file, or an index file. In a directory it looks,
 * as transformers does, first for {@code model.safetensors}, then for {@code model.safetensors.index.json}, then
 * for a PEFT adapter's {@code adapter_model.safetensors}; failing those, a directory holding exactly one
 * {@code *.safetensors} file opens that one.
 */
public final class SafeTensorsModel implements SafeTensorsReader {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";
    /** What peft's save_pretrained writes for an adapter. */
    public static final String ADAPTER_FILE = "adapter_model.safetensors";

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    private final Path path;
    private final Path index;
    private final Map<String, String> metadata;
    /** tensor -> shard file name (relative to the index's directory); null for a single file. */
    private final Map<String, String> weightMap;
    private final List<String> shardNames;
    private final List<String> names;
    private final Map<String, SafeTensorsFile> open = new ConcurrentHashMap<>();
    private volatile boolean closed;

    private SafeTensorsModel(Path path, Path index, Map<String, String> metadata, Map<String, String> weightMap,
                             List<String> shardNames, List<String> names) {
        this.path = path;
        this.index = index;
        this.metadata = metadata;
        this.weightMap = weightMap;
        this.shardNames = shardNames;
        this.names = names;
    }

    /** Opens a checkpoint directory, a single {@code .safetensors} file, or a {@code *.index.json}. */
    public static SafeTensorsModel open(Path path) {
        if (Files.isDirectory(path)) {
            Path single = path.resolve(SINGLE_FILE);
            if (Files.isRegularFile(single)) {
                return single(single);
            }
            Path idx = path.resolve(INDEX_FILE);
            if (Files.isRegularFile(idx)) {
                return sharded(idx);
            }
            Path adapter = path.resolve(ADAPTER_FILE);
            if (Files.isRegularFile(adapter)) {
                return single(adapter);
            }
            List<Path> candidates;
            try (Stream<Path> s = Files.list(path)) {
                candidates = s.filter(p -> p.getFileName().toString().endsWith(".safetensors") && Files.isRegularFile(p))
                        .sorted().toList();
            } catch (IOException e) {
                throw new SafeTensorsException(path, null, "cannot list the directory: " + e, e);
            }
            if (candidates.size() == 1) {
                return single(candidates.getFirst());
            }
            throw new SafeTensorsException(path, null, "no checkpoint here: expected " + SINGLE_FILE + " or " + INDEX_FILE
                    + (candidates.isEmpty() ? " (the directory has no .safetensors file)"
                    : " (found several .safetensors files and no index: " + candidates.stream().map(p -> p.getFileName().toString()).toList() + ")"));
        }
        if (!Files.exists(path)) {
            throw new SafeTensorsException(path, null, "no such file or directory");
        }
        if (path.getFileName().toString().endsWith(".json")) {
            return sharded(path);
        }
        return single(path);
    }

    private static SafeTensorsModel single(Path file) {
        SafeTensorsFile f = SafeTensorsFile.open(file);
        SafeTensorsModel m = new SafeTensorsModel(file, null, f.metadata(), null,
                List.of(file.getFileName().toString()), f.names());
        m.open.put(file.getFileName().toString(), f);
        return m;
    }

    private static SafeTensorsModel sharded(Path indexPath) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(indexPath));
        } catch (NoSuchFileException e) {
            throw new SafeTensorsException(indexPath, null, "no such file", e);
        } catch (JsonProcessingException e) {
            throw new SafeTensorsException(indexPath, null, "not well-formed JSON: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " (at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")"), e);
        } catch (IOException e) {
            throw new SafeTensorsException(indexPath, null, "cannot read: " + e, e);
        }
        if (root == null || !root.isObject()) {
            throw new SafeTensorsException(indexPath, null, "expected a JSON object with \"weight_map\", found "
                    + (root == null ? "nothing" : root.getNodeType()));
        }
        JsonNode wm = root.get("weight_map");
        if (wm == null || !wm.isObject()) {
            throw new SafeTensorsException(indexPath, null, "\"weight_map\" is " + (wm == null ? "missing" : "not an object"));
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        JsonNode md = root.get("metadata");
        if (md != null && md.isObject()) {
            for (Map.Entry<String, JsonNode> e : md.properties()) {
                metadata.put(e.getKey(), e.getValue().isTextual() ? e.getValue().asText() : e.getValue().toString());
            }
        } else if (md != null && !md.isNull()) {
            throw new SafeTensorsException(indexPath, null, "\"metadata\" is not an object (found " + md.getNodeType() + ")");
        }
        Path dir = indexPath.toAbsolutePath().getParent();
        Map<String, String> weightMap = new LinkedHashMap<>();
        List<String> shards = new ArrayList<>();
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (Map.Entry<String, JsonNode> e : wm.properties()) {
            String tensor = e.getKey();
            JsonNode v = e.getValue();
            if (!v.isTextual() || v.asText().isEmpty()) {
                throw new SafeTensorsException(indexPath, tensor, "weight_map entry is not a shard file name (found " + v + ")");
            }
            String shard = v.asText();
            Path resolved = dir.resolve(shard).normalize();
            if (Path.of(shard).isAbsolute() || !resolved.getParent().equals(dir.normalize())) {
                throw new SafeTensorsException(indexPath, tensor, "shard \"" + shard
                        + "\" is not a file name in the index's directory (expected e.g. model-00001-of-00002.safetensors)");
            }
            if (seen.add(shard)) {
                if (!Files.isRegularFile(resolved)) {
                    throw new SafeTensorsException(indexPath, tensor, "shard " + shard + " does not exist (expected " + resolved + ")");
                }
                shards.add(shard);
            }
            weightMap.put(tensor, shard);
        }
        List<String> names = new ArrayList<>(weightMap.keySet());
        names.sort(Names.CODE_POINT_ORDER);
        return new SafeTensorsModel(indexPath, indexPath, Collections.unmodifiableMap(metadata),
                Collections.unmodifiableMap(weightMap), Collections.unmodifiableList(shards), Collections.unmodifiableList(names));
    }

    /** What was opened: the single file or the index. */
    public Path path() {
        return path;
    }

    public boolean isSharded() {
        return index != null;
    }

    /** The shard files (just the one for a single file), in the order the index first names them. */
    public List<Path> shardFiles() {
        Path dir = path.toAbsolutePath().getParent();
        return shardNames.stream().map(dir::resolve).toList();
    }

    /** The index's {@code metadata.total_size} (bytes of tensor data), or -1 when there is none. */
    public long totalSize() {
        String s = metadata.get("total_size");
        if (s == null || index == null) {
            return -1;
        }
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    @Override
    public List<String> names() {
        return names;
    }

    @Override
    public boolean contains(String name) {
        return weightMap == null ? open.values().iterator().next().contains(name) : weightMap.containsKey(name);
    }

    /** A single file's {@code __metadata__}, or the index's "metadata" (values that are not strings as JSON text). */
    @Override
    public Map<String, String> metadata() {
        return metadata;
    }

    @Override
    public TensorInfo info(String name) {
        return shard(name).info(name);
    }

    @Override
    public Path fileOf(String name) {
        return shard(name).path();
    }

    @Override
    public MemorySegment bytes(String name) {
        return shard(name).bytes(name);
    }

    /** The (opened) file holding {@code name}. */
    public SafeTensorsFile shard(String name) {
        if (closed) {
            throw new SafeTensorsException(path, name, "the checkpoint was closed");
        }
        if (weightMap == null) {
            SafeTensorsFile f = open.values().iterator().next();
            f.info(name); // throws naming the file when absent
            return f;
        }
        String shard = weightMap.get(name);
        if (shard == null) {
            throw new SafeTensorsException(index, name, "no such tensor in the index's weight_map (" + weightMap.size() + " tensors)");
        }
        SafeTensorsFile f = open.computeIfAbsent(shard, this::openShard);
        if (closed) { // closed while opening: do not leak the mapping
            close();
            throw new SafeTensorsException(path, name, "the checkpoint was closed");
        }
        return f;
    }

    private SafeTensorsFile openShard(String shard) {
        Path file = index.toAbsolutePath().getParent().resolve(shard);
        SafeTensorsFile f;
        try {
            f = SafeTensorsFile.open(file);
        } catch (SafeTensorsException e) {
            throw new SafeTensorsException(e.file(), e.tensor(), e.problem() + " [shard of " + index + "]", e);
        }
        for (Map.Entry<String, String> e : weightMap.entrySet()) {
            if (e.getValue().equals(shard) && !f.contains(e.getKey())) {
                f.close();
                throw new SafeTensorsException(file, e.getKey(), "missing: the index " + index + " places it in this shard, "
                        + "but the shard has no such tensor");
            }
        }
        return f;
    }

    /** Unmaps every opened shard. Idempotent. */
    @Override
    public void close() {
        closed = true;
        RuntimeException first = null;
        for (SafeTensorsFile f : open.values()) {
            try {
                f.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return "SafeTensorsModel[" + path + ", " + names.size() + " tensors in " + shardNames.size() + " file(s)]";
    }
}

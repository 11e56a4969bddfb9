package dev.jtune.gemma.safetensors;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.engine.Shape;
import dev.jtune.engine.ShapeException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * One safetensors file, memory-mapped read-only into a shared {@link Arena} (so tensors can be read from several
 * threads) and fully validated when opened, with the reference implementation's rules:
 * <ul>
 *   <li>8 bytes: the header length N, little-endian unsigned; N at most {@value #MAX_HEADER_BYTES} and 8 + N within
 *   the file;</li>
 *   <li>N bytes of UTF-8 JSON: one object, no duplicate keys, optionally padded with trailing spaces (writers pad to
 *   a multiple of 8); {@code "__metadata__"} maps strings to strings; every other key is a tensor with a known
 *   {@code dtype}, a {@code shape} of non-negative integers and {@code data_offsets} [begin, end] relative to the
 *   first byte after the header;</li>
 *   <li>end - begin = numel x element size; sorted by offset, the tensors tile the data region exactly: the first
 *   starts at 0, each starts where the previous ended (no overlap, no gap), and the last ends at the end of the file
 *   (a shorter file is truncated, a longer one has stray bytes).</li>
 * </ul>
 * Dtypes the engine lacks (I8, U16, F8_E4M3, ...) parse and can be read as bytes; only {@code load} refuses them.
 */
public final class SafeTensorsFile implements SafeTensorsReader {
    /** The reference implementation's limit on the header (100 MB). */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    static final String METADATA_KEY = "__metadata__";

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private final Path path;
    private final Arena arena;
    private final MemorySegment mapping;
    private final long headerLength;
    private final Map<String, String> metadata;
    private final Map<String, TensorInfo> tensors;
    private final List<String> sortedNames;
    private final List<TensorInfo> fileOrder;

    private SafeTensorsFile(Path path, Arena arena, MemorySegment mapping, long headerLength, Map<String, String> metadata,
                            Map<String, TensorInfo> tensors, List<TensorInfo> fileOrder) {
        this.path = path;
        this.arena = arena;
        this.mapping = mapping;
        this.headerLength = headerLength;
        this.metadata = metadata;
        this.tensors = tensors;
        this.fileOrder = fileOrder;
        List<String> names = new ArrayList<>(tensors.keySet());
        names.sort(Names.CODE_POINT_ORDER);
        this.sortedNames = Collections.unmodifiableList(names);
    }

    /** Maps and validates {@code path}; throws {@link SafeTensorsException} naming it (and the tensor) on any problem. */
    public static SafeTensorsFile open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment mapping;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                long size = ch.size();
                mapping = size == 0 ? MemorySegment.ofArray(new byte[0]) : ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            } catch (NoSuchFileException e) {
                throw new SafeTensorsException(path, null, "no such file", e);
            } catch (IOException e) {
                throw new SafeTensorsException(path, null, "cannot map: " + e, e);
            }
            return parse(path, arena, mapping);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private static SafeTensorsFile parse(Path path, Arena arena, MemorySegment mapping) {
        long fileSize = mapping.byteSize();
        if (fileSize < 8) {
            throw new SafeTensorsException(path, null, "the file is " + fileSize
                    + " bytes, too short for the 8-byte header length (expected at least 8 bytes)");
        }
        long n = mapping.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (n < 0 || n > MAX_HEADER_BYTES) {
            throw new SafeTensorsException(path, null, "header length " + Long.toUnsignedString(n)
                    + " exceeds the limit of " + MAX_HEADER_BYTES + " bytes (not a safetensors file, or corrupt)");
        }
        if (8 + n > fileSize) {
            throw new SafeTensorsException(path, null, "header length " + n + " reaches past the end of the file (expected 8 + "
                    + n + " = " + (8 + n) + " bytes at least, found " + fileSize + "): truncated or not a safetensors file");
        }
        byte[] headerBytes = mapping.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
        String header;
        try {
            header = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(headerBytes)).toString();
        } catch (CharacterCodingException e) {
            throw new SafeTensorsException(path, null, "the " + n + "-byte header is not valid UTF-8", e);
        }
        String trimmed = header.stripLeading();
        if (!trimmed.startsWith("{")) {
            throw new SafeTensorsException(path, null, "the header does not start with '{' (expected a JSON object, found "
                    + preview(header) + ")");
        }
        JsonNode root;
        try {
            root = JSON.readTree(header);
        } catch (JsonProcessingException e) {
            throw new SafeTensorsException(path, null, "the header is not well-formed JSON: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " (at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")"), e);
        }
        if (!(root instanceof ObjectNode obj)) {
            throw new SafeTensorsException(path, null, "the header is not a JSON object (found " + root.getNodeType() + ")");
        }

        long dataStart = 8 + n;
        long dataSize = fileSize - dataStart;
        Map<String, String> metadata = Map.of();
        record Raw(String name, SafeTensorsDType dtype, long[] shape, long begin, long end) {
        }
        List<Raw> raws = new ArrayList<>();
        for (Map.Entry<String, JsonNode> e : obj.properties()) {
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals(METADATA_KEY)) {
                metadata = parseMetadata(path, v);
                continue;
            }
            if (!v.isObject()) {
                throw new SafeTensorsException(path, name, "entry is not an object (expected {\"dtype\", \"shape\", "
                        + "\"data_offsets\"}, found " + v.getNodeType() + ")");
            }
            JsonNode dt = v.get("dtype");
            if (dt == null || !dt.isTextual()) {
                throw new SafeTensorsException(path, name, "\"dtype\" is " + (dt == null ? "missing" : "not a string: " + dt));
            }
            Optional<SafeTensorsDType> dtype = SafeTensorsDType.parse(dt.asText());
            if (dtype.isEmpty()) {
                throw new SafeTensorsException(path, name, "unknown dtype \"" + dt.asText() + "\" (expected one of "
                        + Arrays.toString(SafeTensorsDType.values()) + ")");
            }
            JsonNode sh = v.get("shape");
            if (sh == null || !sh.isArray()) {
                throw new SafeTensorsException(path, name, "\"shape\" is " + (sh == null ? "missing" : "not an array: " + sh));
            }
            long[] shape = new long[sh.size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = nonNegativeLong(path, name, "shape[" + i + "]", sh.get(i));
            }
            JsonNode off = v.get("data_offsets");
            if (off == null || !off.isArray() || off.size() != 2) {
                throw new SafeTensorsException(path, name, "\"data_offsets\" is " + (off == null ? "missing"
                        : "not a pair [begin, end]: " + off));
            }
            long begin = nonNegativeLong(path, name, "data_offsets[0]", off.get(0));
            long end = nonNegativeLong(path, name, "data_offsets[1]", off.get(1));
            raws.add(new Raw(name, dtype.get(), shape, begin, end));
        }

        raws.sort(Comparator.comparingLong(Raw::begin).thenComparingLong(Raw::end));
        Map<String, TensorInfo> tensors = new HashMap<>();
        List<TensorInfo> fileOrder = new ArrayList<>(raws.size());
        long expectedBegin = 0;
        String previous = null;
        for (Raw r : raws) {
            if (r.end < r.begin) {
                throw new SafeTensorsException(path, r.name, "data_offsets [" + r.begin + ", " + r.end + "] end before they begin");
            }
            long numel;
            long bytes;
            try {
                numel = 1;
                for (long d : r.shape) {
                    numel = Math.multiplyExact(numel, d);
                }
                bytes = r.dtype.bytesFor(numel);
            } catch (ArithmeticException e) {
                throw new SafeTensorsException(path, r.name, "shape " + Arrays.toString(r.shape) + " of " + r.dtype
                        + " overflows a 64-bit byte count");
            } catch (IllegalArgumentException e) {
                throw new SafeTensorsException(path, r.name, "shape " + Arrays.toString(r.shape) + ": " + e.getMessage());
            }
            if (r.end - r.begin != bytes) {
                throw new SafeTensorsException(path, r.name, "shape " + Arrays.toString(r.shape) + " of " + r.dtype
                        + " needs " + bytes + " bytes, but data_offsets [" + r.begin + ", " + r.end + "] hold "
                        + (r.end - r.begin));
            }
            if (r.begin < expectedBegin) {
                throw new SafeTensorsException(path, r.name, "data_offsets [" + r.begin + ", " + r.end + "] overlap tensor '"
                        + previous + "' (expected it to begin at " + expectedBegin + ", where '" + previous + "' ends)");
            }
            if (r.begin > expectedBegin) {
                throw new SafeTensorsException(path, r.name, "data_offsets [" + r.begin + ", " + r.end + "] leave a gap: bytes ["
                        + expectedBegin + ", " + r.begin + ") of the data region belong to no tensor (expected it to begin at "
                        + expectedBegin + (previous == null ? ", the start of the data" : ", where '" + previous + "' ends") + ")");
            }
            if (r.end > dataSize) {
                throw new SafeTensorsException(path, r.name, "data_offsets [" + r.begin + ", " + r.end
                        + "] reach past the end of the file (the data region holds " + dataSize + " bytes; expected a file of at least "
                        + (dataStart + r.end) + " bytes, found " + fileSize + "): truncated file");
            }
            Shape shape;
            try {
                shape = Shape.of(r.shape);
            } catch (ShapeException e) {
                throw new SafeTensorsException(path, r.name, "shape " + Arrays.toString(r.shape) + " is not representable: " + e.getMessage());
            }
            TensorInfo info = new TensorInfo(r.name, r.dtype.engineDType().orElse(null), shape, dataStart + r.begin,
                    r.end - r.begin, r.dtype);
            tensors.put(r.name, info);
            fileOrder.add(info);
            expectedBegin = r.end;
            previous = r.name;
        }
        if (expectedBegin != dataSize) {
            throw new SafeTensorsException(path, previous, (dataSize - expectedBegin) + " stray bytes after the last tensor"
                    + " (expected the data region to end at " + expectedBegin + ", found " + dataSize + " bytes)");
        }
        return new SafeTensorsFile(path, arena, mapping, n, metadata, Collections.unmodifiableMap(tensors),
                Collections.unmodifiableList(fileOrder));
    }

    private static Map<String, String> parseMetadata(Path path, JsonNode v) {
        if (v.isNull()) {
            return Map.of();
        }
        if (!v.isObject()) {
            throw new SafeTensorsException(path, null, "\"" + METADATA_KEY + "\" is not an object of strings (found "
                    + v.getNodeType() + ")");
        }
        Map<String, String> m = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : v.properties()) {
            if (!e.getValue().isTextual()) {
                throw new SafeTensorsException(path, null, "\"" + METADATA_KEY + "\"[\"" + e.getKey()
                        + "\"] is not a string (found " + e.getValue() + ")");
            }
            m.put(e.getKey(), e.getValue().asText());
        }
        return Collections.unmodifiableMap(m);
    }

    private static long nonNegativeLong(Path path, String tensor, String what, JsonNode v) {
        if (v == null || !v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() < 0) {
            throw new SafeTensorsException(path, tensor, what + " must be a non-negative integer, found " + v);
        }
        return v.asLong();
    }

    private static String preview(String s) {
        String p = s.length() > 40 ? s.substring(0, 40) + "..." : s;
        return "\"" + p.replaceAll("\\p{Cntrl}", "?") + "\"";
    }

    // ---------------------------------------------------------------- accessors

    public Path path() {
        return path;
    }

    /** The file's size in bytes. */
    public long fileSize() {
        return mapping.byteSize();
    }

    /** N, the header's length in bytes (padding included). */
    public long headerLength() {
        return headerLength;
    }

    /** Where the data region begins: 8 + N. */
    public long dataStart() {
        return 8 + headerLength;
    }

    /** The header JSON exactly as stored (padding included). */
    public String headerJson() {
        checkOpen(null);
        return new String(mapping.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
    }

    @Override
    public List<String> names() {
        return sortedNames;
    }

    /** The header entries in file (offset) order. */
    public List<TensorInfo> infos() {
        return fileOrder;
    }

    @Override
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    @Override
    public Map<String, String> metadata() {
        return metadata;
    }

    @Override
    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new SafeTensorsException(path, name, "no such tensor in this file (it has " + tensors.size() + " tensors"
                    + (sortedNames.isEmpty() ? "" : ", e.g. '" + sortedNames.getFirst() + "'") + ")");
        }
        return info;
    }

    @Override
    public Path fileOf(String name) {
        info(name);
        return path;
    }

    @Override
    public MemorySegment bytes(String name) {
        TensorInfo info = info(name);
        checkOpen(name);
        return mapping.asSlice(info.offset(), info.bytes());
    }

    private void checkOpen(String name) {
        if (!arena.scope().isAlive()) {
            throw new SafeTensorsException(path, name, "the file was closed");
        }
    }

    public boolean isOpen() {
        return arena.scope().isAlive();
    }

    /** Unmaps the file; segments from {@link #bytes} become unusable. Idempotent. */
    @Override
    public synchronized void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "SafeTensorsFile[" + path + ", " + tensors.size() + " tensors" + (isOpen() ? "]" : ", closed]");
    }
}

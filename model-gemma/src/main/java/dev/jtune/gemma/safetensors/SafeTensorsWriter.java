package dev.jtune.gemma.safetensors;

import dev.jtune.engine.DType;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Writes safetensors files the way the reference implementation does, so that they load anywhere (transformers,
 * safetensors, candle, ...) and re-writing a file's tensors with its metadata reproduces it byte for byte:
 * <ul>
 *   <li>tensors ordered by descending dtype alignment (the reference {@code Dtype} order: F64/I64 before F32/I32
 *   before BF16/F16 before U8/BOOL), then by name (code point order), and packed back to back;</li>
 *   <li>header: compact JSON, {@code "__metadata__"} first (omitted when there is no metadata), then the tensors in
 *   data order as {@code {"dtype":..,"shape":[..],"data_offsets":[begin,end]}}, padded with spaces to a multiple of 8
 *   bytes, so each tensor's data is aligned to its element size in the file;</li>
 *   <li>every file is written <b>atomically</b>: into a hidden temporary file in the destination's directory, forced
 *   to disk, then renamed over the destination (and the directory forced). On any failure (a tensor that cannot be
 *   read, a full disk) the temporary file is deleted and an existing destination is left untouched.</li>
 * </ul>
 * Tensor data is read only while writing, one tensor at a time: engine tensors (any device) are copied to host
 * then; mapped segments ({@link #copy}) are written without copying. Tensors must stay open until {@code write}.
 *
 * <p>{@link #writeSharded} splits the tensors (in the order they were added, as transformers walks a state dict)
 * into {@code model-00001-of-0000N.safetensors} files of at most {@code maxShardBytes} of data (a bigger tensor gets
 * a shard of its own) plus {@code model.safetensors.index.json}; with one shard it writes {@code model.safetensors}.
 */
public final class SafeTensorsWriter {

    /** Supplies a tensor's bytes when the writer gets to it: fill {@code dst} (exactly the tensor's size). */
    @FunctionalInterface
    public interface TensorSource {
        void copyTo(MemorySegment dst);
    }

    /** What {@link #writeSharded} wrote. {@code index} is null when everything fit in one file. */
    public record ShardedCheckpoint(List<Path> files, Path index, long totalSize, Map<String, String> weightMap) {
    }

    private record Entry(String name, SafeTensorsDType dtype, long[] shape, long bytes, Function<Arena, MemorySegment> data) {
    }

    private static final SecureRandom RANDOM = new SecureRandom();
    private static final Pattern SIZE = Pattern.compile("(?i)\\s*([0-9]+(?:\\.[0-9]+)?)\\s*([kmgt]i?b|b)?\\s*");

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final Map<String, Entry> entries = new LinkedHashMap<>();

    public SafeTensorsWriter() {
    }

    // ---------------------------------------------------------------- building

    /** Adds a {@code __metadata__} entry (transformers writes {@code "format": "pt"}). */
    public SafeTensorsWriter metadata(String key, String value) {
        if (key == null || value == null) {
            throw new IllegalArgumentException("metadata keys and values must not be null (" + key + " = " + value + ")");
        }
        metadata.put(key, value);
        return this;
    }

    public SafeTensorsWriter metadata(Map<String, String> entries) {
        entries.forEach(this::metadata);
        return this;
    }

    /** An engine tensor on any device (any layout); its bytes are read back when the file is written. */
    public SafeTensorsWriter add(String name, Tensor tensor) {
        SafeTensorsDType dtype;
        try {
            dtype = SafeTensorsDType.of(tensor.dtype());
        } catch (IllegalArgumentException e) {
            throw new SafeTensorsException(null, name, e.getMessage());
        }
        Shape shape = tensor.shape();
        long bytes = tensor.dtype().bytesFor(shape.numel());
        return put(new Entry(name, dtype, shape.toArray(), bytes, arena -> {
            MemorySegment seg = arena.allocate(Math.max(bytes, 1), 8).asSlice(0, bytes);
            try (Scope tmp = Scope.open("safetensors.write")) { // holds a contiguous copy of a strided view
                tensor.copyToHost(seg);
            }
            return seg;
        }));
    }

    /** Raw bytes in {@code dtype}'s little-endian layout. */
    public SafeTensorsWriter add(String name, DType dtype, Shape shape, byte[] data) {
        SafeTensorsDType st;
        try {
            st = SafeTensorsDType.of(dtype);
        } catch (IllegalArgumentException e) {
            throw new SafeTensorsException(null, name, e.getMessage());
        }
        return add(name, st, shape.toArray(), MemorySegment.ofArray(data.clone()));
    }

    /** Raw bytes of any safetensors dtype (for example a tensor copied from another file); not copied until written. */
    public SafeTensorsWriter add(String name, SafeTensorsDType dtype, long[] shape, MemorySegment data) {
        long bytes = bytesOf(name, dtype, shape);
        if (data.byteSize() != bytes) {
            throw new SafeTensorsException(null, name, "shape " + Arrays.toString(shape) + " of " + dtype + " needs " + bytes
                    + " bytes, found " + data.byteSize());
        }
        return put(new Entry(name, dtype, shape.clone(), bytes, arena -> data));
    }

    /** A tensor whose bytes {@code source} produces when the writer reaches it. */
    public SafeTensorsWriter add(String name, SafeTensorsDType dtype, long[] shape, TensorSource source) {
        long bytes = bytesOf(name, dtype, shape);
        return put(new Entry(name, dtype, shape.clone(), bytes, arena -> {
            MemorySegment seg = arena.allocate(Math.max(bytes, 1), 8).asSlice(0, bytes);
            source.copyTo(seg);
            return seg;
        }));
    }

    /** {@code name} from {@code from}, byte for byte, under the same name. */
    public SafeTensorsWriter copy(SafeTensorsReader from, String name) {
        return copy(from, name, name);
    }

    /** {@code name} from {@code from}, byte for byte, as {@code newName}. */
    public SafeTensorsWriter copy(SafeTensorsReader from, String name, String newName) {
        TensorInfo info = from.info(name);
        return add(newName, info.fileDType(), info.shape().toArray(), from.bytes(name));
    }

    /** Every tensor of {@code from} and its metadata. */
    public SafeTensorsWriter copyAll(SafeTensorsReader from) {
        metadata(from.metadata());
        for (String n : from.names()) {
            copy(from, n);
        }
        return this;
    }

    private static long bytesOf(String name, SafeTensorsDType dtype, long[] shape) {
        long numel = 1;
        try {
            for (long d : shape) {
                if (d < 0) {
                    throw new SafeTensorsException(null, name, "negative dimension in shape " + Arrays.toString(shape));
                }
                numel = Math.multiplyExact(numel, d);
            }
            return dtype.bytesFor(numel);
        } catch (ArithmeticException | IllegalArgumentException e) {
            throw new SafeTensorsException(null, name, "shape " + Arrays.toString(shape) + " of " + dtype + ": " + e.getMessage());
        }
    }

    private SafeTensorsWriter put(Entry e) {
        if (e.name == null) {
            throw new SafeTensorsException(null, null, "a tensor name is null");
        }
        if (e.name.equals(SafeTensorsFile.METADATA_KEY)) {
            throw new SafeTensorsException(null, e.name, "the name is reserved for the metadata");
        }
        if (entries.containsKey(e.name)) {
            throw new SafeTensorsException(null, e.name, "added twice");
        }
        entries.put(e.name, e);
        return this;
    }

    // ---------------------------------------------------------------- inspection

    /** Tensor names in the order they were added. */
    public List<String> names() {
        return List.copyOf(entries.keySet());
    }

    /** Total bytes of tensor data. */
    public long dataBytes() {
        long sum = 0;
        for (Entry e : entries.values()) {
            sum += e.bytes;
        }
        return sum;
    }

    /** Tensor names in the order a single file stores them (descending dtype alignment, then name). */
    public List<String> fileOrder() {
        return sorted(entries.values()).stream().map(Entry::name).toList();
    }

    /** The header a single file with every tensor would have: the JSON, padded with spaces to a multiple of 8 bytes. */
    public byte[] header() {
        return header(sorted(entries.values()), metadata);
    }

    private static List<Entry> sorted(Iterable<Entry> es) {
        List<Entry> list = new ArrayList<>();
        es.forEach(list::add);
        list.sort(Comparator.comparing((Entry e) -> e.dtype.ordinal(), Comparator.reverseOrder())
                .thenComparing(Entry::name, Names.CODE_POINT_ORDER));
        return list;
    }

    private static byte[] header(List<Entry> sortedEntries, Map<String, String> metadata) {
        StringBuilder sb = new StringBuilder(64 + 96 * sortedEntries.size());
        sb.append('{');
        boolean first = true;
        if (!metadata.isEmpty()) {
            Json.string(sb, SafeTensorsFile.METADATA_KEY, false);
            sb.append(":{");
            boolean f = true;
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                if (!f) {
                    sb.append(',');
                }
                f = false;
                Json.string(sb, m.getKey(), false);
                sb.append(':');
                Json.string(sb, m.getValue(), false);
            }
            sb.append('}');
            first = false;
        }
        long offset = 0;
        for (Entry e : sortedEntries) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            Json.string(sb, e.name, false);
            sb.append(":{\"dtype\":\"").append(e.dtype.name()).append("\",\"shape\":[");
            for (int i = 0; i < e.shape.length; i++) {
                if (i > 0) {
                    sb.append(',');
                }
                sb.append(e.shape[i]);
            }
            sb.append("],\"data_offsets\":[").append(offset).append(',').append(offset + e.bytes).append("]}");
            offset += e.bytes;
        }
        sb.append('}');
        byte[] json = sb.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    // ---------------------------------------------------------------- writing

    /** Writes every tensor and the metadata to {@code file}, atomically. */
    public void write(Path file) {
        Path dest = file.toAbsolutePath();
        Path tmp = writeTemp(dest, sorted(entries.values()), metadata);
        commit(tmp, dest);
        syncDirectory(dest.getParent());
    }

    /** {@link #writeSharded(Path, long, String)} with the base name "model". */
    public ShardedCheckpoint writeSharded(Path dir, long maxShardBytes) {
        return writeSharded(dir, maxShardBytes, "model");
    }

    /**
     * Writes a (possibly) sharded checkpoint into {@code dir}: {@code <base>-00001-of-0000N.safetensors} ... and
     * {@code <base>.safetensors.index.json} ({@code {"metadata": {"total_size": bytes}, "weight_map": {...}}}, keys
     * sorted, indented by 2, as transformers writes it), or just {@code <base>.safetensors} when one shard suffices.
     * Every shard goes to a temporary file first; only when all are on disk are they renamed into place, then the
     * index is written (atomically) last, so a failure while writing data leaves an existing checkpoint as it was.
     * Afterwards stale files of an earlier checkpoint with the same base name (other shard counts, the single file or
     * index of the other layout) are deleted, so that loaders do not pick them up.
     */
    public ShardedCheckpoint writeSharded(Path dir, long maxShardBytes, String baseName) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        Path d = dir.toAbsolutePath();
        // transformers' split (huggingface_hub split_state_dict_into_shards_factory), in insertion order
        List<List<Entry>> shards = new ArrayList<>();
        List<Entry> current = new ArrayList<>();
        long currentSize = 0;
        long total = 0;
        for (Entry e : entries.values()) {
            total += e.bytes;
            if (e.bytes > maxShardBytes) {
                shards.add(List.of(e));
                continue;
            }
            if (currentSize + e.bytes > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentSize = 0;
            }
            current.add(e);
            currentSize += e.bytes;
        }
        if (!current.isEmpty() || shards.isEmpty()) {
            shards.add(current);
        }
        int n = shards.size();
        List<Path> files = new ArrayList<>(n);
        Map<String, String> weightMap = new TreeMap<>(Names.CODE_POINT_ORDER);
        for (int i = 0; i < n; i++) {
            String fname = n == 1 ? baseName + ".safetensors"
                    : String.format(Locale.ROOT, "%s-%05d-of-%05d.safetensors", baseName, i + 1, n);
            files.add(d.resolve(fname));
            for (Entry e : shards.get(i)) {
                weightMap.put(e.name, fname);
            }
        }

        List<Path> temps = new ArrayList<>(n);
        try {
            for (int i = 0; i < n; i++) {
                temps.add(writeTemp(files.get(i), sorted(shards.get(i)), metadata));
            }
        } catch (RuntimeException | Error e) {
            temps.forEach(SafeTensorsWriter::deleteQuietly);
            throw e;
        }
        for (int i = 0; i < n; i++) {
            try {
                commit(temps.get(i), files.get(i));
            } catch (RuntimeException | Error e) {
                for (int j = i + 1; j < n; j++) {
                    deleteQuietly(temps.get(j));
                }
                throw e;
            }
        }
        Path index = null;
        if (n > 1) {
            index = d.resolve(baseName + ".safetensors.index.json");
            writeTextAtomically(index, indexJson(total, weightMap));
        }
        syncDirectory(d);
        removeStale(d, baseName, files, index);
        return new ShardedCheckpoint(List.copyOf(files), index, total, Collections.unmodifiableMap(weightMap));
    }

    private static String indexJson(long totalSize, Map<String, String> weightMap) {
        StringBuilder sb = new StringBuilder();
        sb.append("{\n  \"metadata\": {\n    \"total_size\": ").append(totalSize).append("\n  },\n  \"weight_map\": {");
        boolean first = true;
        for (Map.Entry<String, String> e : weightMap.entrySet()) {
            sb.append(first ? "\n" : ",\n").append("    ");
            first = false;
            Json.string(sb, e.getKey(), true);
            sb.append(": ");
            Json.string(sb, e.getValue(), true);
        }
        sb.append(first ? "}\n}\n" : "\n  }\n}\n");
        return sb.toString();
    }

    private static void removeStale(Path dir, String baseName, List<Path> written, Path index) {
        Pattern shard = Pattern.compile(Pattern.quote(baseName) + "-\\d{5}-of-\\d{5}\\.safetensors");
        Set<Path> keep = new java.util.HashSet<>(written);
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                String f = p.getFileName().toString();
                boolean stale = shard.matcher(f).matches() && !keep.contains(p)
                        || index == null && f.equals(baseName + ".safetensors.index.json")
                        || index != null && f.equals(baseName + ".safetensors");
                if (stale) {
                    Files.deleteIfExists(p);
                }
            }
        } catch (IOException e) {
            throw new SafeTensorsException(dir, null, "the checkpoint was written, but removing stale files of an earlier one failed: " + e, e);
        }
    }

    /** Writes one file's bytes into a new temporary file beside {@code dest}; returns it, forced to disk. */
    private static Path writeTemp(Path dest, List<Entry> sortedEntries, Map<String, String> metadata) {
        Path dir = dest.getParent();
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new SafeTensorsException(dest, null, "cannot create the directory " + dir + ": " + e, e);
        }
        Path tmp = tempBeside(dest);
        String current = null;
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            byte[] header = header(sortedEntries, metadata);
            ByteBuffer head = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(header.length).put(header).flip();
            writeFully(ch, head);
            long expected = 8L + header.length;
            for (Entry e : sortedEntries) {
                current = e.name;
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment seg = e.data.apply(arena);
                    if (seg.byteSize() != e.bytes) {
                        throw new SafeTensorsException(dest, e.name, "its data has " + seg.byteSize() + " bytes, expected " + e.bytes);
                    }
                    for (long off = 0; off < e.bytes; off += 1L << 30) {
                        writeFully(ch, seg.asSlice(off, Math.min(1L << 30, e.bytes - off)).asByteBuffer());
                    }
                }
                expected += e.bytes;
            }
            current = null;
            if (ch.position() != expected) {
                throw new SafeTensorsException(dest, null, "wrote " + ch.position() + " bytes, expected " + expected);
            }
            ch.force(true);
            return tmp;
        } catch (SafeTensorsException e) {
            deleteQuietly(tmp);
            if (dest.equals(e.file())) {
                throw e;
            }
            throw new SafeTensorsException(dest, current, "reading it failed: " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            deleteQuietly(tmp);
            throw new SafeTensorsException(dest, current, (current == null ? "write failed: " : "reading or writing it failed: ") + e, e);
        } catch (Error e) {
            deleteQuietly(tmp);
            throw e;
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    private static Path tempBeside(Path dest) {
        byte[] r = new byte[6];
        RANDOM.nextBytes(r);
        return dest.resolveSibling("." + dest.getFileName() + "." + HexFormat.of().formatHex(r) + ".tmp");
    }

    /** Renames {@code tmp} over {@code dest} atomically; deletes {@code tmp} when that fails. */
    private static void commit(Path tmp, Path dest) {
        try {
            try {
                Files.move(tmp, dest, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new SafeTensorsException(dest, null, "the file system cannot rename atomically (" + e.getMessage() + ")", e);
            }
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new SafeTensorsException(dest, null, "cannot move the written file into place: " + e, e);
        } catch (RuntimeException | Error e) {
            deleteQuietly(tmp);
            throw e;
        }
    }

    /** Writes {@code text} (UTF-8) to {@code dest} atomically (temporary file, force, rename). */
    static void writeTextAtomically(Path dest, String text) {
        Path tmp = tempBeside(dest);
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            writeFully(ch, ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8)));
            ch.force(true);
        } catch (IOException | RuntimeException e) {
            deleteQuietly(tmp);
            throw new SafeTensorsException(dest, null, "write failed: " + e, e);
        }
        commit(tmp, dest);
    }

    /** Forces a directory's entries (the renames) to disk; best effort where the platform cannot open directories. */
    private static void syncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // not possible on every platform (Windows); the files themselves were forced
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            // nothing more to do: the temporary file's name starts with '.' and ends with '.tmp'
        }
    }

    // ---------------------------------------------------------------- sizes

    /**
     * Parses a size as transformers' {@code max_shard_size} does: a number of bytes, or a number with a unit where
     * KB/MB/GB/TB are powers of 1000 and KiB/MiB/GiB/TiB powers of 1024 ("2GB" = 2,000,000,000; "5GiB").
     */
    public static long parseSize(String text) {
        Matcher m = SIZE.matcher(text);
        if (!m.matches()) {
            throw new IllegalArgumentException("not a size: '" + text + "' (expected e.g. 2GB, 500MB, 5GiB or a number of bytes)");
        }
        double v = Double.parseDouble(m.group(1));
        String unit = m.group(2) == null ? "b" : m.group(2).toLowerCase(Locale.ROOT);
        double mult = switch (unit) {
            case "b" -> 1;
            case "kb" -> 1e3;
            case "mb" -> 1e6;
            case "gb" -> 1e9;
            case "tb" -> 1e12;
            case "kib" -> 1L << 10;
            case "mib" -> 1L << 20;
            case "gib" -> 1L << 30;
            case "tib" -> 1L << 40;
            default -> throw new IllegalArgumentException("unknown unit in '" + text + "'");
        };
        return (long) (v * mult);
    }

    /** The JSON string escaping of serde_json (compact headers) and of Python's json with ensure_ascii (indexes). */
    static final class Json {
        private static final char[] HEX = "0123456789abcdef".toCharArray();

        private Json() {
        }

        static void string(StringBuilder sb, String s, boolean asciiOnly) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> sb.append("\\\"");
                    case '\\' -> sb.append("\\\\");
                    case '\n' -> sb.append("\\n");
                    case '\r' -> sb.append("\\r");
                    case '\t' -> sb.append("\\t");
                    case '\b' -> sb.append("\\b");
                    case '\f' -> sb.append("\\f");
                    default -> {
                        if (c < 0x20 || (asciiOnly && c > 0x7e)) {
                            sb.append("\\u").append(HEX[c >> 12 & 0xf]).append(HEX[c >> 8 & 0xf])
                                    .append(HEX[c >> 4 & 0xf]).append(HEX[c & 0xf]);
                        } else {
                            sb.append(c);
                        }
                    }
                }
            }
            sb.append('"');
        }
    }
}

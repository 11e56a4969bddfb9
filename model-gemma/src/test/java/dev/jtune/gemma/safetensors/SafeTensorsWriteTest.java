package dev.jtune.gemma.safetensors;

import dev.jtune.testing.Seeds;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsWriteTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static byte[] randomBytes(long n, long seed) {
        byte[] b = new byte[Math.toIntExact(n)];
        Seeds.random(seed).nextBytes(b);
        return b;
    }

    private List<String> dirListing() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    // ---------------------------------------------------------------- round trips

    @Test
    void everyEngineDtypeRoundTripsBitExactly() {
        Path file = dir.resolve("all.safetensors");
        Map<String, Shape> shapes = Map.of("a", Shape.of(3, 5), "b", Shape.of(0), "c", Shape.scalar(), "d", Shape.of(2, 0, 3),
                "e", Shape.of(7));
        DType[] dtypes = {DType.F64, DType.F32, DType.BF16, DType.F16, DType.I64, DType.I32, DType.U8};
        try (Scope s = Scope.open("test")) {
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt").metadata("note", "ünïcode ✓ \"quoted\"\n");
            Map<String, byte[]> expected = new java.util.HashMap<>();
            long seed = 1;
            for (DType dt : dtypes) {
                for (var e : shapes.entrySet()) {
                    String name = dt + "." + e.getKey();
                    byte[] bytes = randomBytes(dt.bytesFor(e.getValue().numel()), seed++);
                    expected.put(name, bytes);
                    // half through engine tensors, half as raw bytes
                    if (seed % 2 == 0) {
                        w.add(name, Tensor.fromBytes(bytes, e.getValue(), dt, Device.CPU));
                    } else {
                        w.add(name, dt, e.getValue(), bytes);
                    }
                }
            }
            w.write(file);
            try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
                assertEquals(Map.of("format", "pt", "note", "ünïcode ✓ \"quoted\"\n"), f.metadata());
                assertEquals(expected.size(), f.names().size());
                for (DType dt : dtypes) {
                    for (var e : shapes.entrySet()) {
                        String name = dt + "." + e.getKey();
                        TensorInfo info = f.info(name);
                        assertEquals(dt, info.dtype(), name);
                        assertEquals(e.getValue(), info.shape(), name);
                        assertArrayEquals(expected.get(name), f.bytes(name).toArray(ValueLayout.JAVA_BYTE), name);
                        Tensor t = f.load(name, Device.CPU, dt, e.getValue());
                        assertArrayEquals(expected.get(name), t.toByteArray(), name);
                        // aligned: descending-alignment order keeps every tensor's data aligned to its element size
                        assertEquals(0, info.offset() % (dt.bits() / 8), name);
                    }
                }
                assertEquals(0, f.headerLength() % 8);
            }
        }
    }

    @Test
    void everySafetensorsDtypeRoundTripsAsBytes() {
        Path file = dir.resolve("raw.safetensors");
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (SafeTensorsDType dt : SafeTensorsDType.values()) {
            long[] shape = {2, 4};
            w.add(dt.name().toLowerCase(), dt, shape, MemorySegment.ofArray(randomBytes(dt.bytesFor(8), dt.ordinal())));
            w.add(dt.name().toLowerCase() + ".empty", dt, new long[] {0, 3}, MemorySegment.ofArray(new byte[0]));
        }
        w.write(file);
        try (SafeTensorsFile f = SafeTensorsFile.open(file); Scope s = Scope.open("test")) {
            for (SafeTensorsDType dt : SafeTensorsDType.values()) {
                String name = dt.name().toLowerCase();
                assertEquals(dt, f.info(name).fileDType());
                assertArrayEquals(randomBytes(dt.bytesFor(8), dt.ordinal()), f.bytes(name).toArray(ValueLayout.JAVA_BYTE));
                if (dt.isLoadable()) {
                    Tensor t = f.load(name, Device.CPU);
                    assertEquals(dt == SafeTensorsDType.BOOL ? DType.U8 : dt.engineDType().orElseThrow(), t.dtype());
                } else {
                    SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> f.load(name, Device.CPU));
                    assertTrue(e.getMessage().contains("raw.safetensors") && e.getMessage().contains("'" + name + "'")
                            && e.getMessage().contains(dt.name()), e.getMessage());
                }
            }
        }
    }

    @Test
    void nonContiguousTensorsAreWrittenInRowMajorOrder() {
        Path file = dir.resolve("t.safetensors");
        try (Scope s = Scope.open("test")) {
            Tensor a = Tensor.fromArray(new float[] {1, 2, 3, 4, 5, 6}, Shape.of(2, 3), DType.F32, Device.CPU);
            Tensor at = a.transpose(0, 1);
            new SafeTensorsWriter().add("at", at).write(file);
            try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
                assertEquals(Shape.of(3, 2), f.info("at").shape());
                assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, f.load("at", Device.CPU).toFloatArray());
            }
        }
    }

    @Test
    void headerLayoutMatchesTheReference() throws IOException {
        // safetensors' own test_serialization: one F32 tensor "attn.0" [1, 2, 3] = 0..5
        ByteBuffer data = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 6; i++) {
            data.putFloat(i);
        }
        Path file = dir.resolve("ref.safetensors");
        new SafeTensorsWriter().add("attn.0", DType.F32, Shape.of(1, 2, 3), data.array()).write(file);
        byte[] expected = {64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
                116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
                58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
                101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, (byte) 128, 63,
                0, 0, 0, 64, 0, 0, 64, 64, 0, 0, (byte) 128, 64, 0, 0, (byte) 160, 64};
        assertArrayEquals(expected, Files.readAllBytes(file));
        // and test_empty: no tensors, no metadata -> "{}" padded with 6 spaces
        Path empty = dir.resolve("empty.safetensors");
        new SafeTensorsWriter().write(empty);
        assertArrayEquals(new byte[] {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32}, Files.readAllBytes(empty));
        try (SafeTensorsFile f = SafeTensorsFile.open(empty)) {
            assertTrue(f.names().isEmpty());
        }
    }

    @Test
    void orderIsDescendingAlignmentThenName() {
        SafeTensorsWriter w = new SafeTensorsWriter()
                .add("b", DType.U8, Shape.of(1), new byte[1])
                .add("a", DType.BF16, Shape.of(1), new byte[2])
                .add("z", DType.F32, Shape.of(1), new byte[4])
                .add("y", DType.I32, Shape.of(1), new byte[4])
                .add("\uD83D\uDE00", DType.F32, Shape.of(1), new byte[4]) // U+1F600 sorts after U+FFFD by code point
                .add("\uFFFD", DType.F32, Shape.of(1), new byte[4])
                .add("x", DType.F64, Shape.of(1), new byte[8]);
        assertEquals(List.of("x", "z", "\uFFFD", "\uD83D\uDE00", "y", "a", "b"), w.fileOrder());
        Path file = dir.resolve("order.safetensors");
        w.write(file);
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(w.fileOrder(), f.infos().stream().map(TensorInfo::name).toList());
            assertEquals(List.of("a", "b", "x", "y", "z", "\uFFFD", "\uD83D\uDE00"), f.names());
        }
    }

    /** Re-writing a transformers-written file's tensors with its metadata reproduces it byte for byte. */
    @Test
    void rewritingFixturesReproducesThemByteForByte() throws IOException {
        for (String name : List.of("gemma3-tiny/model.safetensors", "gemma3-tiny/golden.safetensors",
                "gemma3-tiny-lora/adapter_model.safetensors", "gemma3-tiny-lora/golden.safetensors")) {
            Path original = Fixtures.resource(name);
            Path copy = dir.resolve(original.getFileName() + ".copy");
            try (SafeTensorsFile f = SafeTensorsFile.open(original)) {
                new SafeTensorsWriter().copyAll(f).write(copy);
                assertEquals(-1, Files.mismatch(original, copy), name + " differs from its re-write");
                // the same through engine tensors (read back from device memory)
                Path viaTensors = dir.resolve(original.getFileName() + ".tensors");
                try (Scope s = Scope.open("rewrite")) {
                    SafeTensorsWriter w = new SafeTensorsWriter().metadata(f.metadata());
                    for (String n : f.names()) {
                        w.add(n, f.load(n, Device.CPU));
                    }
                    w.write(viaTensors);
                }
                assertEquals(-1, Files.mismatch(original, viaTensors), name + " differs when written from tensors");
                try (SafeTensorsFile g = SafeTensorsFile.open(copy)) {
                    JsonNode a = JSON.readTree(f.headerJson());
                    JsonNode b = JSON.readTree(g.headerJson());
                    assertEquals(a, b, "header JSON");
                    for (String n : f.names()) {
                        assertEquals(f.info(n).offset(), g.info(n).offset());
                        assertEquals(-1, f.bytes(n).mismatch(g.bytes(n)), n);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- sharding

    private SafeTensorsWriter shardable(int tensors) {
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
        for (int i = 0; i < tensors; i++) {
            w.add("layer." + i + ".weight", DType.F32, Shape.of(10, 10), randomBytes(400, i)); // 400 bytes each
        }
        return w;
    }

    @Test
    void shardedWriteAndRead() throws IOException {
        SafeTensorsWriter w = shardable(10).add("big", DType.BF16, Shape.of(1000), randomBytes(2000, 99));
        SafeTensorsWriter.ShardedCheckpoint ck = w.writeSharded(dir, 1000);
        // 2 per shard -> 5 shards of layers, and "big" (> max) alone: HF appends it when met, closing nothing
        assertEquals(6, ck.files().size());
        assertEquals(dir.resolve("model.safetensors.index.json"), ck.index());
        assertEquals(10 * 400 + 2000, ck.totalSize());
        for (int i = 0; i < 6; i++) {
            assertTrue(Files.exists(dir.resolve(String.format("model-%05d-of-00006.safetensors", i + 1))));
        }
        JsonNode index = JSON.readTree(dir.resolve("model.safetensors.index.json").toFile());
        assertEquals(10 * 400 + 2000, index.get("metadata").get("total_size").asLong());
        assertEquals(11, index.get("weight_map").size());
        assertEquals("model-00001-of-00006.safetensors", index.get("weight_map").get("layer.0.weight").asText());
        assertEquals("model-00001-of-00006.safetensors", index.get("weight_map").get("layer.1.weight").asText());
        assertEquals("model-00002-of-00006.safetensors", index.get("weight_map").get("layer.2.weight").asText());
        List<String> keys = new ArrayList<>();
        index.get("weight_map").fieldNames().forEachRemaining(keys::add);
        List<String> sortedKeys = new ArrayList<>(keys);
        sortedKeys.sort(String::compareTo);
        assertEquals(sortedKeys, keys, "weight_map keys sorted");
        String text = Files.readString(dir.resolve("model.safetensors.index.json"));
        assertTrue(text.startsWith("{\n  \"metadata\": {\n    \"total_size\": 6000\n  },\n  \"weight_map\": {\n    \"big\": "), text);
        assertTrue(text.endsWith("\n  }\n}\n"));

        try (SafeTensorsModel m = SafeTensorsModel.open(dir); Scope s = Scope.open("test")) {
            assertTrue(m.isSharded());
            assertEquals(6000, m.totalSize());
            assertEquals(11, m.names().size());
            assertEquals(6, m.shardFiles().size());
            for (int i = 0; i < 10; i++) {
                String n = "layer." + i + ".weight";
                assertArrayEquals(randomBytes(400, i), m.bytes(n).toArray(ValueLayout.JAVA_BYTE), n);
                assertEquals(Shape.of(10, 10), m.info(n).shape());
            }
            assertArrayEquals(randomBytes(2000, 99), m.load("big", Device.CPU).toByteArray());
            assertTrue(m.fileOf("big").getFileName().toString().startsWith("model-000"));
            for (Path shard : ck.files()) {
                try (SafeTensorsFile f = SafeTensorsFile.open(shard)) {
                    assertEquals(Map.of("format", "pt"), f.metadata());
                }
            }
        }
        try (SafeTensorsModel m = SafeTensorsModel.open(dir.resolve("model.safetensors.index.json"))) {
            assertEquals(11, m.names().size());
        }
    }

    @Test
    void oneShardIsASingleFileAndStaleFilesGo() throws IOException {
        shardable(6).writeSharded(dir, 1000); // 3 shards
        assertEquals(List.of("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json"), dirListing());
        shardable(4).writeSharded(dir, 1000); // 2 shards: the 3-shard files go
        assertEquals(List.of("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json"), dirListing());
        SafeTensorsWriter.ShardedCheckpoint one = shardable(4).writeSharded(dir, 1_000_000);
        assertNull(one.index());
        assertEquals(List.of("model.safetensors"), dirListing());
        try (SafeTensorsModel m = SafeTensorsModel.open(dir)) {
            assertFalse(m.isSharded());
            assertEquals(4, m.names().size());
        }
        shardable(4).writeSharded(dir, 1000);
        assertEquals(List.of("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json"), dirListing(), "a stale single file would shadow the index");
    }

    @Test
    void shardErrorsNameTheIndexAndTheShard() throws IOException {
        shardable(4).writeSharded(dir, 1000);
        Path index = dir.resolve("model.safetensors.index.json");
        // the index places a tensor in a shard that lacks it
        String text = Files.readString(index).replace("\"layer.3.weight\": \"model-00002-of-00002.safetensors\"",
                "\"layer.3.weight\": \"model-00001-of-00002.safetensors\"");
        Files.writeString(index, text);
        try (SafeTensorsModel m = SafeTensorsModel.open(dir)) {
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> m.info("layer.0.weight"));
            assertTrue(e.getMessage().contains("model-00001-of-00002.safetensors") && e.getMessage().contains("layer.3.weight")
                    && e.getMessage().contains("model.safetensors.index.json"), e.getMessage());
            e = assertThrows(SafeTensorsException.class, () -> m.info("missing"));
            assertTrue(e.getMessage().contains("model.safetensors.index.json") && e.getMessage().contains("missing"), e.getMessage());
        }
        // a shard that does not exist
        Files.delete(dir.resolve("model-00002-of-00002.safetensors"));
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensorsModel.open(dir));
        assertTrue(e.getMessage().contains("model.safetensors.index.json") && e.getMessage().contains("model-00002-of-00002.safetensors"),
                e.getMessage());
        // a corrupt shard: the error names the shard and the index
        shardable(4).writeSharded(dir, 1000);
        Path shard = dir.resolve("model-00002-of-00002.safetensors");
        byte[] b = Files.readAllBytes(shard);
        Files.write(shard, java.util.Arrays.copyOf(b, b.length - 10));
        try (SafeTensorsModel m = SafeTensorsModel.open(dir)) {
            m.info("layer.0.weight");
            e = assertThrows(SafeTensorsException.class, () -> m.info("layer.3.weight"));
            assertTrue(e.getMessage().contains("model-00002-of-00002.safetensors") && e.getMessage().contains("layer.3.weight")
                    && e.getMessage().contains("index"), e.getMessage());
        }
        // bad JSON, and a shard path that escapes the directory
        Files.writeString(index, "{\"weight_map\": {");
        e = assertThrows(SafeTensorsException.class, () -> SafeTensorsModel.open(dir));
        assertTrue(e.getMessage().contains("model.safetensors.index.json"), e.getMessage());
        Files.writeString(index, "{\"weight_map\": {\"w\": \"../x.safetensors\"}}");
        e = assertThrows(SafeTensorsException.class, () -> SafeTensorsModel.open(dir));
        assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("../x.safetensors"), e.getMessage());
    }

    @Test
    void parsesSizesLikeTransformers() {
        assertEquals(2_000_000_000L, SafeTensorsWriter.parseSize("2GB"));
        assertEquals(5L << 30, SafeTensorsWriter.parseSize("5GiB"));
        assertEquals(500_000_000L, SafeTensorsWriter.parseSize("500MB"));
        assertEquals(1234, SafeTensorsWriter.parseSize("1234"));
        assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.parseSize("lots"));
    }

    // ---------------------------------------------------------------- atomicity

    private static SafeTensorsWriter failing() {
        return new SafeTensorsWriter()
                .add("good", DType.F32, Shape.of(4), new byte[16])
                .add("bad", SafeTensorsDType.F32, new long[] {4}, dst -> {
                    throw new IllegalStateException("device lost");
                });
    }

    @Test
    void aFailedWriteLeavesNoFile() throws IOException {
        Path file = dir.resolve("model.safetensors");
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> failing().write(file));
        assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains("'bad'")
                && e.getMessage().contains("device lost"), e.getMessage());
        assertEquals(List.of(), dirListing(), "no destination and no temporary file");
    }

    @Test
    void aFailedWriteLeavesAnExistingFileUntouched() throws IOException {
        Path file = dir.resolve("model.safetensors");
        Files.copy(Fixtures.tinyModel(), file);
        assertThrows(SafeTensorsException.class, () -> failing().write(file));
        assertEquals(-1, Files.mismatch(Fixtures.tinyModel(), file));
        assertEquals(List.of("model.safetensors"), dirListing());
    }

    @Test
    void aClosedTensorFailsTheWriteCleanly() throws IOException {
        Path file = dir.resolve("x.safetensors");
        try (Scope s = Scope.open("test")) {
            Tensor t = Tensor.zeros(Shape.of(8), DType.BF16, Device.CPU);
            SafeTensorsWriter w = new SafeTensorsWriter().add("w", t);
            t.close();
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> w.write(file));
            assertTrue(e.getMessage().contains("x.safetensors") && e.getMessage().contains("'w'"), e.getMessage());
        }
        assertEquals(List.of(), dirListing());
    }

    @Test
    void aFailedShardedWriteLeavesTheOldCheckpoint() throws IOException {
        shardable(4).writeSharded(dir, 1000);
        Map<String, byte[]> before = new java.util.TreeMap<>();
        for (String f : dirListing()) {
            before.put(f, Files.readAllBytes(dir.resolve(f)));
        }
        SafeTensorsWriter w = shardable(3).add("bad", SafeTensorsDType.F32, new long[] {10, 10}, dst -> {
            throw new IllegalStateException("boom");
        });
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> w.writeSharded(dir, 1000));
        assertTrue(e.getMessage().contains("model-00002-of-00002.safetensors") && e.getMessage().contains("'bad'"), e.getMessage());
        assertEquals(List.copyOf(before.keySet()), dirListing(), "no temporary files, nothing new");
        for (var b : before.entrySet()) {
            assertArrayEquals(b.getValue(), Files.readAllBytes(dir.resolve(b.getKey())), b.getKey());
        }
    }

    @Test
    void addValidates() {
        SafeTensorsWriter w = new SafeTensorsWriter().add("a", DType.F32, Shape.of(1), new byte[4]);
        assertThrows(SafeTensorsException.class, () -> w.add("a", DType.F32, Shape.of(1), new byte[4]));
        assertThrows(SafeTensorsException.class, () -> w.add("__metadata__", DType.F32, Shape.of(1), new byte[4]));
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> w.add("b", DType.F32, Shape.of(2), new byte[4]));
        assertTrue(e.getMessage().contains("'b'") && e.getMessage().contains("8"), e.getMessage());
        assertThrows(SafeTensorsException.class, () -> w.add("c", SafeTensorsDType.F4, new long[] {3}, MemorySegment.ofArray(new byte[2])));
        assertThrows(SafeTensorsException.class, () -> w.add("d", SafeTensorsDType.F32, new long[] {-1}, MemorySegment.ofArray(new byte[0])));
        try (Scope s = Scope.open("nf4")) {
            Tensor nf4 = Tensor.fromBytes(new byte[2], Shape.of(4), DType.NF4, Device.CPU);
            e = assertThrows(SafeTensorsException.class, () -> w.add("q", nf4));
            assertTrue(e.getMessage().contains("NF4"), e.getMessage());
        }
        assertEquals(new String(w.header(), StandardCharsets.UTF_8).trim(),
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    }
}

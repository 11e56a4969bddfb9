package dev.jtune.gemma.safetensors;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.config.Gemma3Config;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsReadTest {

    /** Every parameter of the tiny model and its shape, derived from its config.json. */
    static Map<String, Shape> expectedParameters(Gemma3Config c) {
        Map<String, Shape> m = new LinkedHashMap<>();
        long h = c.hiddenSize();
        m.put("model.embed_tokens.weight", Shape.of(c.vocabSize(), h));
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String p = "model.layers." + i + ".";
            m.put(p + "input_layernorm.weight", Shape.of(h));
            m.put(p + "post_attention_layernorm.weight", Shape.of(h));
            m.put(p + "pre_feedforward_layernorm.weight", Shape.of(h));
            m.put(p + "post_feedforward_layernorm.weight", Shape.of(h));
            m.put(p + "self_attn.q_proj.weight", Shape.of(c.qDim(), h));
            m.put(p + "self_attn.k_proj.weight", Shape.of(c.kvDim(), h));
            m.put(p + "self_attn.v_proj.weight", Shape.of(c.kvDim(), h));
            m.put(p + "self_attn.o_proj.weight", Shape.of(h, c.qDim()));
            m.put(p + "self_attn.q_norm.weight", Shape.of(c.headDim()));
            m.put(p + "self_attn.k_norm.weight", Shape.of(c.headDim()));
            m.put(p + "mlp.gate_proj.weight", Shape.of(c.intermediateSize(), h));
            m.put(p + "mlp.up_proj.weight", Shape.of(c.intermediateSize(), h));
            m.put(p + "mlp.down_proj.weight", Shape.of(h, c.intermediateSize()));
        }
        m.put("model.norm.weight", Shape.of(h));
        return m;
    }

    @Test
    void readsTheTinyModel() {
        Gemma3Config config = Gemma3Config.read(Fixtures.resource("gemma3-tiny/config.json"));
        assertEquals(512, config.vocabSize());
        assertEquals(64, config.hiddenSize());
        assertEquals(6, config.numHiddenLayers());
        assertEquals(4, config.numAttentionHeads());
        assertEquals(1, config.numKeyValueHeads());
        assertEquals(32, config.headDim());
        assertEquals(256, config.intermediateSize());
        Map<String, Shape> expected = expectedParameters(config);
        try (SafeTensorsFile f = SafeTensorsFile.open(Fixtures.tinyModel())) {
            assertEquals(Map.of("format", "pt"), f.metadata());
            assertEquals(expected.size(), f.names().size());
            assertEquals(expected.keySet(), new java.util.HashSet<>(f.names()));
            assertFalse(f.contains("lm_head.weight"), "tied embeddings: no lm_head");
            for (var e : expected.entrySet()) {
                TensorInfo info = f.info(e.getKey());
                assertEquals(DType.BF16, info.dtype(), e.getKey());
                assertEquals(SafeTensorsDType.BF16, info.fileDType());
                assertEquals(e.getValue(), info.shape(), e.getKey());
                assertEquals(info.numel() * 2, info.bytes());
                assertEquals(info.bytes(), f.bytes(e.getKey()).byteSize());
            }
            TensorInfo qn = f.info("model.layers.0.self_attn.q_norm.weight");
            assertEquals(Shape.of(32), qn.shape());
            assertEquals(8400 + 8, f.dataStart());
            assertEquals(f.dataStart(), f.infos().getFirst().offset());
            // names sorted, infos in file order, both cover everything
            List<String> sorted = new ArrayList<>(f.names());
            sorted.sort(String::compareTo);
            assertEquals(sorted, f.names());
            long end = f.dataStart();
            for (TensorInfo i : f.infos()) {
                assertEquals(end, i.offset());
                end += i.bytes();
            }
            assertEquals(f.fileSize(), end);
        }
    }

    @Test
    void loadsTensorsWithTheirBytes() {
        try (SafeTensorsFile f = SafeTensorsFile.open(Fixtures.tinyModel()); Scope s = Scope.open("test")) {
            String name = "model.layers.0.self_attn.q_norm.weight";
            Tensor t = f.load(name, Device.CPU);
            assertEquals(DType.BF16, t.dtype());
            assertEquals(Shape.of(32), t.shape());
            byte[] raw = f.bytes(name).toArray(ValueLayout.JAVA_BYTE);
            assertArrayEquals(raw, t.toByteArray());
            // bf16 -> float by hand
            float[] values = t.toFloatArray();
            for (int i = 0; i < values.length; i++) {
                int bits = (raw[2 * i] & 0xff | (raw[2 * i + 1] & 0xff) << 8) << 16;
                assertEquals(Float.intBitsToFloat(bits), values[i]);
            }
            Tensor embed = f.load("model.embed_tokens.weight", Device.CPU, DType.BF16, Shape.of(512, 64));
            assertEquals(Shape.of(512, 64), embed.shape());
            int before = s.ownedCount();
            Tensor asF32 = f.loadAs(name, Device.CPU, DType.F32);
            assertEquals(before + 1, s.ownedCount(), "the bf16 original is freed");
            assertEquals(DType.F32, asF32.dtype());
            assertArrayEquals(values, asF32.toFloatArray());
        }
    }

    @Test
    void expectationMismatchNamesFileAndTensor() {
        try (SafeTensorsFile f = SafeTensorsFile.open(Fixtures.tinyModel()); Scope s = Scope.open("test")) {
            String name = "model.embed_tokens.weight";
            SafeTensorsException e = assertThrows(SafeTensorsException.class,
                    () -> f.load(name, Device.CPU, DType.F32, Shape.of(512, 64)));
            assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
            assertTrue(e.getMessage().contains(name), e.getMessage());
            assertTrue(e.getMessage().contains("F32") && e.getMessage().contains("BF16"), e.getMessage());
            e = assertThrows(SafeTensorsException.class, () -> f.load(name, Device.CPU, DType.BF16, Shape.of(64, 512)));
            assertTrue(e.getMessage().contains("[64, 512]") && e.getMessage().contains("[512, 64]"), e.getMessage());
            e = assertThrows(SafeTensorsException.class, () -> f.info("lm_head.weight"));
            assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains("lm_head.weight"), e.getMessage());
            assertEquals(0, s.ownedCount(), "nothing is allocated for a refused load");
        }
    }

    @Test
    void readsTheGoldenFile() {
        try (SafeTensorsFile f = SafeTensorsFile.open(Fixtures.tinyGolden()); Scope s = Scope.open("test")) {
            assertTrue(f.metadata().isEmpty());
            assertEquals(DType.I32, f.info("input_ids").dtype());
            assertEquals(Shape.of(2, 48), f.info("input_ids").shape());
            assertEquals(DType.I32, f.info("labels").dtype());
            assertEquals(DType.F32, f.info("logits").dtype());
            assertEquals(Shape.of(2, 48, 512), f.info("logits").shape());
            for (int i = 0; i <= 6; i++) {
                assertEquals(Shape.of(2, 48, 64), f.info("hidden_states." + i).shape());
            }
            Gemma3Config config = Gemma3Config.read(Fixtures.resource("gemma3-tiny/config.json"));
            for (var e : expectedParameters(config).entrySet()) {
                TensorInfo g = f.info("grad." + e.getKey());
                assertEquals(DType.F32, g.dtype());
                assertEquals(e.getValue(), g.shape());
            }
            int[] labels = f.load("labels", Device.CPU).toIntArray();
            for (int j = 0; j < 48; j++) {
                assertEquals(j < 12, labels[j] == -100, "row 0 masks its first 12 labels");
                assertEquals(j >= 40, labels[48 + j] == -100, "row 1 masks its last 8 labels");
            }
            int[] ids = f.load("input_ids", Device.CPU).toIntArray();
            for (int id : ids) {
                assertTrue(id >= 0 && id < 512);
            }
            float[] logits = f.load("logits", Device.CPU).toFloatArray();
            assertEquals(2 * 48 * 512, logits.length);
            assertTrue(Float.isFinite(logits[12345]));
        }
    }

    @Test
    void readsTheLoraAdapterAndItsGolden() {
        try (SafeTensorsModel m = SafeTensorsModel.open(Fixtures.resource("gemma3-tiny-lora"))) {
            assertFalse(m.isSharded());
            assertEquals("adapter_model.safetensors", m.path().getFileName().toString());
            assertEquals(6 * 7 * 2, m.names().size());
            TensorInfo a = m.info("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
            assertEquals(Shape.of(4, 64), a.shape());
            assertEquals(DType.F32, a.dtype());
            assertEquals(Shape.of(128, 4), m.info("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").shape());
        }
        try (SafeTensorsFile g = SafeTensorsFile.open(Fixtures.resource("gemma3-tiny-lora/golden.safetensors"))) {
            assertTrue(g.contains("after3.base_model.model.model.layers.0.mlp.down_proj.lora_A.default.weight"));
            assertEquals(2 * 6 * 7 * 2, g.names().size());
        }
    }

    @Test
    void modelOpensADirectoryOrAFile() {
        Path dir = Fixtures.tinyModel().getParent();
        try (SafeTensorsModel m = SafeTensorsModel.open(dir); Scope s = Scope.open("test")) {
            assertFalse(m.isSharded());
            assertEquals(80, m.names().size());
            assertEquals(Map.of("format", "pt"), m.metadata());
            assertEquals(Fixtures.tinyModel(), m.fileOf("model.norm.weight"));
            assertEquals(-1, m.totalSize());
            assertEquals(Shape.of(64), m.load("model.norm.weight", Device.CPU).shape());
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> m.info("nope"));
            assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains("nope"), e.getMessage());
        }
        try (SafeTensorsModel m = SafeTensorsModel.open(Fixtures.tinyModel())) {
            assertEquals(80, m.names().size());
        }
    }

    @Test
    void bytesAreReadableFromSeveralThreads() throws Exception {
        try (SafeTensorsFile f = SafeTensorsFile.open(Fixtures.tinyModel());
             ExecutorService pool = Executors.newFixedThreadPool(4)) {
            List<Future<Long>> sums = new ArrayList<>();
            for (String name : f.names()) {
                sums.add(pool.submit(() -> {
                    MemorySegment seg = f.bytes(name);
                    long sum = 0;
                    for (long i = 0; i < seg.byteSize(); i++) {
                        sum += seg.get(ValueLayout.JAVA_BYTE, i);
                    }
                    return sum;
                }));
            }
            long total = 0;
            for (Future<Long> s : sums) {
                total += s.get();
            }
            long expected = 0;
            for (String name : f.names()) {
                for (byte b : f.bytes(name).toArray(ValueLayout.JAVA_BYTE)) {
                    expected += b;
                }
            }
            assertEquals(expected, total);
        }
    }

    @Test
    void closedFileRefuses() {
        SafeTensorsFile f = SafeTensorsFile.open(Fixtures.tinyModel());
        MemorySegment seg = f.bytes("model.norm.weight");
        f.close();
        f.close();
        assertFalse(f.isOpen());
        assertThrows(IllegalStateException.class, () -> seg.get(ValueLayout.JAVA_BYTE, 0));
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> f.bytes("model.norm.weight"));
        assertTrue(e.getMessage().contains("closed"));
    }
}

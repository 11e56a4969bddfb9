package dev.jtune.gemma.safetensors;

import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every malformed input is refused with a message naming the file (and the tensor, where one is at fault). */
class SafeTensorsCorruptTest {
    @TempDir
    Path dir;

    /** A file with {@code header} (padded to 8) and {@code dataBytes} bytes of data. */
    private Path file(String name, String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) / 8 * 8;
        ByteBuffer b = ByteBuffer.allocate(8 + padded + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded).put(h);
        for (int i = h.length; i < padded; i++) {
            b.put((byte) ' ');
        }
        Path p = dir.resolve(name);
        Files.write(p, b.array());
        return p;
    }

    private static final String A = "\"alpha.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}";

    private SafeTensorsException refused(Path p) {
        return assertThrows(SafeTensorsException.class, () -> SafeTensorsFile.open(p).close());
    }

    private void refusedNaming(Path p, String tensor, String... also) {
        SafeTensorsException e = refused(p);
        String m = e.getMessage();
        assertTrue(m.contains(p.getFileName().toString()), "names the file: " + m);
        if (tensor != null) {
            assertTrue(m.contains("'" + tensor + "'"), "names the tensor: " + m);
            assertEquals(tensor, e.tensor());
        }
        for (String s : also) {
            assertTrue(m.contains(s), "says '" + s + "': " + m);
        }
        assertEquals(p, e.file());
    }

    @Test
    void wellFormedBaseline() throws IOException {
        Path p = file("ok.safetensors", "{" + A + ",\"beta\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]}}", 24);
        try (SafeTensorsFile f = SafeTensorsFile.open(p)) {
            assertEquals(2, f.names().size());
        }
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        Path p = file("long.safetensors", "{" + A + "}", 16);
        byte[] b = Files.readAllBytes(p);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 5000);
        Files.write(p, b);
        refusedNaming(p, null, "5000", "past the end");
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L);
        Files.write(p, b);
        refusedNaming(p, null, "18446744073709551615");
        Files.write(p, new byte[] {1, 2, 3});
        refusedNaming(p, null, "3 bytes");
        Files.write(p, new byte[0]);
        refusedNaming(p, null, "0 bytes");
    }

    @Test
    void badJson() throws IOException {
        refusedNaming(file("bad.safetensors", "{" + A + ",", 16), null, "JSON");
        refusedNaming(file("bad2.safetensors", "[1,2]", 0), null);
        refusedNaming(file("bad3.safetensors", "{" + A + "," + A + "}", 16), null, "JSON"); // duplicate key
        refusedNaming(file("bad4.safetensors", "{" + A + "} x", 16), null, "JSON"); // trailing garbage
        refusedNaming(file("bad5.safetensors", "{\"__metadata__\":{\"a\":1}," + A + "}", 16), null, "__metadata__");
        Path p = file("utf.safetensors", "{" + A + "}", 16);
        byte[] b = Files.readAllBytes(p);
        b[10] = (byte) 0xff;
        Files.write(p, b);
        refusedNaming(p, null, "UTF-8");
    }

    @Test
    void overlappingOffsets() throws IOException {
        refusedNaming(file("overlap.safetensors", "{" + A + ",\"beta\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16),
                "beta", "overlap", "alpha.weight");
        refusedNaming(file("overlap2.safetensors", "{" + A + ",\"beta\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16),
                null, "overlap");
    }

    @Test
    void gapsAndStrayBytes() throws IOException {
        refusedNaming(file("gap.safetensors", "{\"gamma\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16),
                "gamma", "gap");
        refusedNaming(file("stray.safetensors", "{" + A + "}", 20), "alpha.weight", "4 stray bytes");
    }

    @Test
    void offsetsOutOfRangeAndTruncatedData() throws IOException {
        refusedNaming(file("range.safetensors", "{\"delta\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4000]}}", 16),
                "delta", "past the end", "truncated");
        Path p = file("trunc.safetensors", "{" + A + ",\"beta\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]}}", 24);
        byte[] b = Files.readAllBytes(p);
        Files.write(p, Arrays.copyOf(b, b.length - 3));
        refusedNaming(p, "beta", "truncated");
        refusedNaming(file("neg.safetensors", "{\"eps\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 0),
                "eps", "non-negative");
        refusedNaming(file("rev.safetensors", "{\"eps\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4),
                "eps", "end before");
    }

    @Test
    void truncatedFixture() throws IOException {
        Path p = dir.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(Fixtures.tinyModel());
        Files.write(p, Arrays.copyOf(b, b.length - 1));
        refusedNaming(p, "model.norm.weight", "truncated");
        Files.write(p, Arrays.copyOf(b, 9000)); // cut inside the first tensor
        refusedNaming(p, "model.embed_tokens.weight", "truncated");
        Files.write(p, Arrays.copyOf(b, 5000)); // cut inside the header
        refusedNaming(p, null, "past the end");
    }

    @Test
    void unknownDtype() throws IOException {
        refusedNaming(file("dtype.safetensors", "{\"zeta\":{\"dtype\":\"F12\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16),
                "zeta", "unknown dtype", "F12");
        refusedNaming(file("dtype2.safetensors", "{\"zeta\":{\"shape\":[2],\"data_offsets\":[0,16]}}", 16), "zeta", "dtype");
    }

    @Test
    void knownDtypeWithoutEngineCounterpartParsesButDoesNotLoad() throws IOException {
        Path p = file("i8.safetensors", "{\"eta\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
        try (SafeTensorsFile f = SafeTensorsFile.open(p); Scope s = Scope.open("test")) {
            assertEquals(SafeTensorsDType.I8, f.info("eta").fileDType());
            assertEquals(4, f.bytes("eta").byteSize());
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> f.load("eta", Device.CPU));
            assertTrue(e.getMessage().contains("i8.safetensors") && e.getMessage().contains("'eta'") && e.getMessage().contains("I8"),
                    e.getMessage());
        }
    }

    @Test
    void shapeAndByteSizeMismatch() throws IOException {
        refusedNaming(file("size.safetensors", "{\"theta\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16),
                "theta", "needs 24 bytes", "hold 16");
        refusedNaming(file("negdim.safetensors", "{\"iota\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,0]}}", 0),
                "iota", "shape[0]");
        refusedNaming(file("fracdim.safetensors", "{\"iota\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0),
                "iota", "shape[0]");
        refusedNaming(file("overflow.safetensors",
                "{\"kappa\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0), "kappa", "overflow");
        refusedNaming(file("f4.safetensors", "{\"lambda\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1),
                "lambda", "whole bytes");
        refusedNaming(file("rank.safetensors",
                "{\"mu\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1), "mu", "rank");
    }
}

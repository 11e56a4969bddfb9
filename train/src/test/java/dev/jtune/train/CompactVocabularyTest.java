package dev.jtune.train;

import dev.jtune.train.data.Example;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CompactVocabularyTest {
    @Test
    void whatIsWrittenReadsBackAndMapsBothWays(@TempDir Path tmp) {
        CompactVocabulary v = CompactVocabulary.of(List.of(new Example(new int[] {2, 900, 17, 900}, new int[] {-100, -100, 17, 900})), 0);
        Path file = tmp.resolve(CompactVocabulary.FILE);
        v.write(file);
        CompactVocabulary back = CompactVocabulary.read(file);
        assertEquals(v.size(), back.size());
        assertEquals(4, back.size()); // pad, 2, 900, 17
        for (int gemma : new int[] {0, 2, 900, 17}) {
            assertEquals(v.remap(List.of(new Example(new int[] {gemma}, new int[] {gemma}))).get(0).ids()[0], back.toCompact(gemma));
            assertEquals(gemma, back.toGemma(back.toCompact(gemma)));
        }
        assertEquals(0, back.toCompact(0), "the pad id first");
        assertFalse(back.contains(5));
        assertThrows(IllegalArgumentException.class, () -> back.toCompact(5));
        assertThrows(IllegalArgumentException.class, () -> back.toGemma(4));
    }

    @Test
    void aBadFileIsNamed(@TempDir Path tmp) throws IOException {
        Path file = tmp.resolve(CompactVocabulary.FILE);
        for (String text : List.of("[]", "[0, 7, 7]", "[0, -1]", "{\"a\": 1}")) {
            Files.writeString(file, text);
            RuntimeException e = assertThrows(RuntimeException.class, () -> CompactVocabulary.read(file), text);
            assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        }
    }
}

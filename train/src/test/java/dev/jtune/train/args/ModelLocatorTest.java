package dev.jtune.train.args;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelLocatorTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    private TrainArgs parseId(String... extra) {
        String[] base = {"--model_id", "google/gemma-3-270m", "--data_path", fx.data.toString()};
        String[] all = new String[base.length + extra.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(extra, 0, all, base.length, extra.length);
        return ((CommandLine.Train) fx.raw(all)).args();
    }

    @Test
    void aModelIdResolvesInHfHomesHubThroughRefsMain() {
        Path hub = Path.of(fx.env.get("HF_HOME"), "hub");
        Fixture.cacheModel(hub, "google/gemma-3-270m", "aaaa", false);
        Path main = Fixture.cacheModel(hub, "google/gemma-3-270m", "bbbb", true);
        TrainArgs a = parseId();
        assertEquals(main, a.modelPath());
        assertEquals("google/gemma-3-270m", a.modelId());
    }

    @Test
    void theOnlySnapshotServesWithoutRefs() {
        Path hub = tmp.resolve("my-cache");
        Path only = Fixture.cacheModel(hub, "google/gemma-3-270m", "cccc", false);
        assertEquals(only, parseId("--cache_dir", hub.toString()).modelPath());
    }

    @Test
    void hfHubCacheWinsOverHfHome() {
        Path hub = tmp.resolve("hub-cache");
        Path snap = Fixture.cacheModel(hub, "google/gemma-3-270m", "dddd", true);
        fx.env.put("HF_HUB_CACHE", hub.toString());
        assertEquals(snap, parseId().modelPath());
        assertEquals(hub, ModelLocator.hubCache(null, fx.env));
        assertEquals(Path.of("/x/hub"), ModelLocator.hubCache(null, Map.of("HF_HOME", "/x")));
        assertEquals(Path.of("/h/.cache/huggingface/hub"), ModelLocator.hubCache(null, Map.of("HOME", "/h")));
    }

    @Test
    void aMissingModelSaysWhereItLooked() {
        ArgsException e = assertThrows(ArgsException.class, () -> parseId());
        String expected = Path.of(fx.env.get("HF_HOME"), "hub", "models--google--gemma-3-270m", "snapshots") + "/<revision>/";
        assertEquals(1, e.problems().size(), e.getMessage());
        assertTrue(e.getMessage().contains("--model_id google/gemma-3-270m is not in the HF cache: looked for " + expected), e.getMessage());
        assertTrue(e.getMessage().contains("$HF_HOME"), e.getMessage());
        assertTrue(e.getMessage().contains("--model_path"), e.getMessage());

        Path cache = tmp.resolve("elsewhere");
        e = assertThrows(ArgsException.class, () -> parseId("--cache_dir", cache.toString()));
        assertTrue(e.getMessage().contains(cache.resolve("models--google--gemma-3-270m").toString()), e.getMessage());
        assertTrue(e.getMessage().contains("from --cache_dir"), e.getMessage());
    }

    @Test
    void severalSnapshotsWithoutRefsAreAmbiguous() {
        Path hub = tmp.resolve("c");
        Fixture.cacheModel(hub, "google/gemma-3-270m", "r1", false);
        Fixture.cacheModel(hub, "google/gemma-3-270m", "r2", false);
        ArgsException e = assertThrows(ArgsException.class, () -> parseId("--cache_dir", hub.toString()));
        assertTrue(e.getMessage().contains("2 snapshots (r1, r2)"), e.getMessage());
    }

    @Test
    void aModelIdThatIsALocalDirectoryIsUsedAsIs() {
        TrainArgs a = ((CommandLine.Train) fx.raw("--model_id", fx.model.toString(), "--data_path", fx.data.toString())).args();
        assertEquals(fx.model, a.modelPath());
    }

    @Test
    void aModelPathWinsAndIsChecked() {
        TrainArgs a = fx.parse("--model_id", "google/not-cached");
        assertEquals(fx.model, a.modelPath());
        assertEquals("google/not-cached", a.modelId());
    }

    @Test
    void aMalformedModelIdIsNamed() {
        ArgsException e = assertThrows(ArgsException.class,
                () -> fx.raw("--model_id", "a/b/c d", "--data_path", fx.data.toString()));
        assertTrue(e.getMessage().contains("--model_id a/b/c d is neither a directory nor an HF model name"), e.getMessage());
    }
}

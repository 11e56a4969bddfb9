package dev.jtune.train.args;

import dev.jtune.gemma.model.Gemma3Model.MlpTiling;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** --tiled_mlp and --tiled_mlp_num_shards (axolotl's names): how each layer's MLP half runs over the tokens. */
class TiledMlpFlagsTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    @Test
    void theFlagsSayTheTiling() {
        assertEquals(MlpTiling.NONE, fx.parse().mlpTiling());
        assertEquals(MlpTiling.AUTO, fx.parse("--tiled_mlp").mlpTiling());
        assertEquals(MlpTiling.shards(5), fx.parse("--tiled_mlp", "--tiled_mlp_num_shards", "5").mlpTiling());
        assertEquals(MlpTiling.NONE, fx.parse("--tiled_mlp", "False").mlpTiling());
    }

    @Test
    void shardsWithoutTheTiledMlpOrBelowZeroAreRefused() {
        assertEquals(List.of("--tiled_mlp_num_shards 4 sets the tiles of --tiled_mlp: it needs --tiled_mlp"),
                fx.error("--tiled_mlp_num_shards", "4").problems());
        assertEquals(1, fx.error("--tiled_mlp", "--tiled_mlp_num_shards", "-1").problems().size());
    }
}

package dev.jtune.train.args;

import dev.jtune.train.loop.TrainerConfig.ActivationPlacement;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --offload_activations and --gradient_checkpointing_kwargs '{"offload": true}': where checkpointed inputs wait. */
class ActivationOffloadFlagsTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    @Test
    void eitherSpellingPutsTheKeptInputsOnTheHost() {
        assertEquals(ActivationPlacement.DEVICE, fx.parse("--gradient_checkpointing").activationPlacement());
        assertEquals(ActivationPlacement.HOST, fx.parse("--gradient_checkpointing", "--offload_activations").activationPlacement());
        assertEquals(ActivationPlacement.HOST, fx.parse("--gradient_checkpointing", "--gradient_checkpointing_kwargs",
                "{\"offload\": true, \"use_reentrant\": false}").activationPlacement());
        assertEquals(ActivationPlacement.DEVICE, fx.parse("--gradient_checkpointing", "--gradient_checkpointing_kwargs",
                "{\"use_reentrant\": true}").activationPlacement());
    }

    @Test
    void badKwargsAndOffloadWithoutCheckpointingAreRefused() {
        assertEquals(List.of("--offload_activations moves the layer inputs --gradient_checkpointing keeps to the host: it needs --gradient_checkpointing"),
                fx.error("--offload_activations").problems());
        assertEquals(List.of("--gradient_checkpointing_kwargs's offload moves the layer inputs --gradient_checkpointing keeps to the host: it needs --gradient_checkpointing"),
                fx.error("--gradient_checkpointing_kwargs", "{\"offload\": true}").problems());
        List<String> unknown = fx.error("--gradient_checkpointing", "--gradient_checkpointing_kwargs", "{\"offlod\": true}").problems();
        assertTrue(unknown.getFirst().contains("unknown key \"offlod\""), unknown.toString());
        List<String> notJson = fx.error("--gradient_checkpointing", "--gradient_checkpointing_kwargs", "offload").problems();
        assertTrue(notJson.getFirst().contains("is not JSON"), notJson.toString());
        List<String> notBool = fx.error("--gradient_checkpointing", "--gradient_checkpointing_kwargs", "{\"offload\": 1}").problems();
        assertTrue(notBool.getFirst().contains("must be true or false"), notBool.toString());
    }
}

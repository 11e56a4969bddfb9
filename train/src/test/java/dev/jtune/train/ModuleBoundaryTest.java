package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cuda.CudaDriver;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.model.Gemma3Model;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.lang.module.ModuleReference;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The public boundary: what each jtune module exports to everyone (the API), what only to jtune's own modules
 * (internals), and that the modules really run as modules (Jackson reaches what it reflects on). Tests and the
 * shaded jar run on the class path, where module-info is not enforced, so this is where it is checked.
 */
class ModuleBoundaryTest {
    private static final Set<String> JTUNE = Set.of("dev.jtune.cuda", "dev.jtune.engine", "dev.jtune.gemma", "dev.jtune.train");

    /** Every package of every module, with "*" for exported to all or the set of jtune modules it is exported to. */
    private static final Map<String, Map<String, String>> EXPECTED = Map.of(
            "dev.jtune.cuda", packages(List.of("dev.jtune"), List.of("dev.jtune.cuda"), List.of()),
            "dev.jtune.engine", packages(
                    List.of("dev.jtune.engine", "dev.jtune.engine.dist", "dev.jtune.engine.memory", "dev.jtune.engine.nn", "dev.jtune.engine.offload",
                            "dev.jtune.engine.ops", "dev.jtune.engine.optim", "dev.jtune.engine.quant"),
                    List.of("dev.jtune.engine.backend", "dev.jtune.engine.cpu", "dev.jtune.engine.cuda", "dev.jtune.engine.fused",
                            "dev.jtune.engine.io", "dev.jtune.engine.meta", "dev.jtune.engine.optim.host"),
                    List.of("kernels")),
            "dev.jtune.gemma", packages(
                    List.of("dev.jtune.gemma.config", "dev.jtune.gemma.generate", "dev.jtune.gemma.lora", "dev.jtune.gemma.model",
                            "dev.jtune.gemma.safetensors", "dev.jtune.gemma.tokenizer", "dev.jtune.gemma.vision"),
                    List.of(), List.of("dev.jtune.gemma.configs")),
            "dev.jtune.train", packages(
                    List.of("dev.jtune.train", "dev.jtune.train.args", "dev.jtune.train.data", "dev.jtune.train.loop",
                            "dev.jtune.train.report"),
                    List.of(), List.of("dev.jtune.train.dist", "dev.jtune.train.presets")));

    /**
     * "*" for the API packages, "internal" for those exported only to jtune's modules, "not exported" for resource
     * directories the module reads itself (the CUDA sources).
     */
    private static Map<String, String> packages(List<String> api, List<String> internal, List<String> resources) {
        Map<String, String> m = new TreeMap<>();
        api.forEach(p -> m.put(p, "*"));
        internal.forEach(p -> m.put(p, "internal"));
        resources.forEach(p -> m.put(p, "not exported"));
        return m;
    }

    private static Path location(Class<?> c) {
        try {
            return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static List<Path> moduleLocations() {
        return List.of(location(CudaDriver.class), location(Tensor.class), location(Gemma3Model.class), location(Main.class));
    }

    @Test
    void apiPackagesAreExportedAndInternalsOnlyToJtune() {
        Map<String, ModuleDescriptor> found = new TreeMap<>();
        for (ModuleReference r : ModuleFinder.of(moduleLocations().toArray(Path[]::new)).findAll()) {
            found.put(r.descriptor().name(), r.descriptor());
        }
        assertEquals(new TreeSet<>(JTUNE), found.keySet(), "jtune's four modules, each with a module-info");
        for (ModuleDescriptor d : found.values()) {
            Map<String, String> actual = new TreeMap<>();
            for (String p : d.packages()) {
                actual.put(p, "not exported");
            }
            for (ModuleDescriptor.Exports e : d.exports()) {
                if (!e.isQualified()) {
                    actual.put(e.source(), "*");
                } else {
                    assertTrue(JTUNE.containsAll(e.targets()), d.name() + " exports " + e.source() + " to " + e.targets()
                            + ": internals go only to jtune's modules");
                    actual.put(e.source(), "internal");
                }
            }
            assertEquals(new TreeMap<>(EXPECTED.get(d.name())), actual, "packages of " + d.name()
                    + " (a new package must be placed here deliberately: API for everyone, or internal)");
        }
    }

    /**
     * jtune run as modules (module path, {@code -m dev.jtune.train/...}): a two-step QLoRA run on the cpu. Jackson
     * reads configs and writes metrics by reflection, which fails here if a package is not opened to it.
     */
    @Test
    void theTrainerRunsOnTheModulePath(@TempDir Path dir) throws IOException, InterruptedException {
        Path model = CliFixtures.smallModel(dir.resolve("model"));
        Path data = CliFixtures.data(dir.resolve("d.jsonl"), 4, "");
        Path out = dir.resolve("out");
        List<String> modulePath = new ArrayList<>(moduleLocations().stream().map(Path::toString).toList());
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            if (entry.contains("jackson")) {
                modulePath.add(entry);
            }
        }
        List<String> command = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=dev.jtune.cuda,dev.jtune.engine",
                "-p", String.join(File.pathSeparator, modulePath), "-m", "dev.jtune.train/dev.jtune.train.Main",
                "--model_path", model.toString(), "--data_path", data.toString(), "--output_dir", out.toString(), "--device", "cpu",
                "--lora_enable", "True", "--freeze_llm", "True", "--lora_rank", "4", "--lora_alpha", "8", "--bits", "4",
                "--per_device_train_batch_size", "2", "--logging_steps", "1", "--max_steps", "2");
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(3, TimeUnit.MINUTES), "finishes");
        assertEquals(0, p.exitValue(), text);
        assertTrue(Files.exists(out.resolve("adapter_model.safetensors")), text);
        List<Long> steps = CliFixtures.metrics(out).stream().map(n -> n.get("step").asLong()).collect(Collectors.toList());
        assertEquals(List.of(1L, 2L), steps, text);
        assertTrue(new ObjectMapper().readTree(out.resolve("checkpoint-2/trainer_state.json").toFile()).has("log_history"), text);
    }
}

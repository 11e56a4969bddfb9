package dev.jtune.train.args;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Finds a {@code --model_id} offline, as {@code from_pretrained(..., local_files_only=True)} does: a local
 * directory of that name, else the HF hub cache's {@code models--ORG--NAME/snapshots/REV/}, REV being what
 * {@code refs/main} names (or the only snapshot). The hub cache is {@code --cache_dir} if given, else
 * {@code $HF_HUB_CACHE}, else {@code $HF_HOME/hub}, else {@code $XDG_CACHE_HOME/huggingface/hub}, else
 * {@code ~/.cache/huggingface/hub}.
 */
public final class ModelLocator {
    private static final Pattern REPO_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.\\-]*(/[A-Za-z0-9][A-Za-z0-9_.\\-]*)?");

    private ModelLocator() {
    }

    /** The hub cache directory HF would use, and why (for messages). */
    public static Path hubCache(Path cacheDir, Map<String, String> env) {
        if (cacheDir != null) {
            return cacheDir;
        }
        String hubCache = env.get("HF_HUB_CACHE");
        if (hubCache != null && !hubCache.isBlank()) {
            return Path.of(hubCache);
        }
        String hfHome = env.get("HF_HOME");
        if (hfHome != null && !hfHome.isBlank()) {
            return Path.of(hfHome, "hub");
        }
        String xdg = env.get("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank()) {
            return Path.of(xdg, "huggingface", "hub");
        }
        String home = env.getOrDefault("HOME", System.getProperty("user.home"));
        return Path.of(home, ".cache", "huggingface", "hub");
    }

    private static String hubCacheSource(Path cacheDir, Map<String, String> env) {
        if (cacheDir != null) {
            return Flag.CACHE_DIR.cli();
        }
        for (String v : List.of("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")) {
            String s = env.get(v);
            if (s != null && !s.isBlank()) {
                return "$" + v;
            }
        }
        return "the default, $HF_HOME unset";
    }

    /**
     * The local directory of modelId. Throws {@link ArgsException} saying where it looked and how to get the model
     * there.
     */
    public static Path resolve(String modelId, Path cacheDir, Map<String, String> env) {
        Path local = Path.of(modelId);
        if (Files.isDirectory(local)) {
            return local;
        }
        String flag = Flag.MODEL_ID.cli() + " " + modelId;
        if (!REPO_ID.matcher(modelId).matches()) {
            throw new ArgsException(flag + " is neither a directory nor an HF model name like google/gemma-3-270m");
        }
        Path hub = hubCache(cacheDir, env);
        Path repo = hub.resolve("models--" + modelId.replace("/", "--"));
        Path snapshots = repo.resolve("snapshots");
        String howTo = " (jtune has no network: on a connected machine run `hf download " + modelId
                + "` and copy the hub cache here, set " + Flag.CACHE_DIR.cli() + " or $HF_HOME, or pass "
                + Flag.MODEL_PATH.cli() + " DIR)";
        if (!Files.isDirectory(snapshots)) {
            throw new ArgsException(flag + " is not in the HF cache: looked for " + snapshots + "/<revision>/ (hub cache "
                    + hub + ", from " + hubCacheSource(cacheDir, env) + ")" + howTo);
        }
        Path ref = repo.resolve("refs").resolve("main");
        if (Files.isRegularFile(ref)) {
            try {
                String rev = Files.readString(ref, StandardCharsets.UTF_8).trim();
                Path snapshot = snapshots.resolve(rev);
                if (!rev.isEmpty() && Files.isDirectory(snapshot)) {
                    return snapshot;
                }
            } catch (IOException | java.nio.file.InvalidPathException e) {
                // fall through to the listing
            }
        }
        List<Path> revisions = new ArrayList<>();
        try (Stream<Path> s = Files.list(snapshots)) {
            s.filter(Files::isDirectory).sorted().forEach(revisions::add);
        } catch (IOException e) {
            throw new ArgsException(flag + ": cannot list " + snapshots + ": " + e.getMessage());
        }
        if (revisions.size() == 1) {
            return revisions.getFirst();
        }
        if (revisions.isEmpty()) {
            throw new ArgsException(flag + " is not in the HF cache: " + snapshots + " has no snapshot" + howTo);
        }
        throw new ArgsException(flag + ": " + snapshots + " holds " + revisions.size() + " snapshots ("
                + String.join(", ", revisions.stream().map(p -> p.getFileName().toString()).toList())
                + ") and refs/main names none of them; pass " + Flag.MODEL_PATH.cli() + " " + snapshots + "/<revision>");
    }
}

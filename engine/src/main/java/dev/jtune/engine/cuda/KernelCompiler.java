package dev.jtune.engine.cuda;

import dev.jtune.cuda.Nvrtc;
import dev.jtune.engine.DeviceUnavailableException;
import dev.jtune.engine.io.AtomicFiles;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.jtune.cuda.CudaException.checkNvrtc;

/**
 * Compiles the engine's CUDA C sources ({@code src/main/resources/kernels}) with NVRTC for the device's own
 * architecture, straight to machine code (CUBIN), and caches the result on disk keyed by the sources' hash, the
 * architecture, the defines and the NVRTC version: a warm start loads dozens of kernels in milliseconds instead
 * of compiling them for seconds. Cache: {@code $JTUNE_KERNEL_CACHE}, else {@code ~/.cache/jtune/kernels}. What a
 * source is compiled with and which kernels it must have come from its {@link KernelSource}.
 */
public final class KernelCompiler {
    private static final Pattern INCLUDE = Pattern.compile("^#include \"([^\"]+)\"", Pattern.MULTILINE);

    private final CudaContext context;
    private final Path cacheDir;
    private final String cudaInclude;
    private final String nvrtcVersion;
    private final Map<KernelSource, CudaModule> loaded = new ConcurrentHashMap<>();

    KernelCompiler(CudaContext context) {
        this.context = context;
        this.cacheDir = cacheDirectory();
        this.cudaInclude = findCudaInclude();
        this.nvrtcVersion = nvrtcVersion();
    }

    static Path cacheDirectory() {
        String env = System.getenv("JTUNE_KERNEL_CACHE");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        return Path.of(System.getProperty("user.home"), ".cache", "jtune", "kernels");
    }

    /** The architecture kernels are compiled for ("sm_90" on an H100). */
    public String arch() {
        return context.arch();
    }

    /**
     * The module of {@code source}'s file compiled with its defines, loaded and checked against its kernels'
     * signatures once per process.
     */
    CudaModule module(KernelSource source) {
        return loaded.computeIfAbsent(source, this::load);
    }

    private CudaModule load(KernelSource source) {
        String name = source.file();
        String text = resource(name);
        Map<String, String> headers = headersOf(text, new TreeMap<>());
        String target = source.targetFor(context.arch());
        List<String> options = options(target, cudaInclude, source.defines());
        String key = cacheKey(name, text, headers, options, nvrtcVersion);
        Path cached = cacheDir.resolve(name.replace('.', '_') + "-" + target + "-" + key + ".cubin");
        byte[] cubin = readIfPresent(cached);
        if (cubin == null) {
            cubin = compile(name, text, headers, options);
            writeAtomically(cached, cubin);
        }
        return CudaModule.load(context, source, cubin);
    }

    /** NVRTC's options: the device's architecture, C++17, the CUDA headers and one {@code -DNAME=value} per define. */
    static List<String> options(String arch, String cudaInclude, Map<String, String> defines) {
        List<String> options = new ArrayList<>(List.of("--gpu-architecture=" + arch, "--std=c++17", "-I" + cudaInclude));
        new TreeMap<>(defines).forEach((k, v) -> options.add("-D" + k + "=" + v));
        return options;
    }

    private byte[] compile(String name, String source, Map<String, String> headers, List<String> options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment progOut = arena.allocate(ValueLayout.ADDRESS);
            int n = headers.size();
            MemorySegment headerSources = arena.allocate(ValueLayout.ADDRESS, Math.max(n, 1));
            MemorySegment headerNames = arena.allocate(ValueLayout.ADDRESS, Math.max(n, 1));
            int i = 0;
            for (Map.Entry<String, String> h : headers.entrySet()) {
                headerNames.setAtIndex(ValueLayout.ADDRESS, i, arena.allocateFrom(h.getKey()));
                headerSources.setAtIndex(ValueLayout.ADDRESS, i, arena.allocateFrom(h.getValue()));
                i++;
            }
            checkNvrtc(Nvrtc.nvrtcCreateProgram(progOut, arena.allocateFrom(source), arena.allocateFrom(name), n,
                    n == 0 ? MemorySegment.NULL : headerSources, n == 0 ? MemorySegment.NULL : headerNames), "nvrtcCreateProgram(" + name + ")");
            MemorySegment program = progOut.get(ValueLayout.ADDRESS, 0);
            try {
                MemorySegment opts = arena.allocate(ValueLayout.ADDRESS, options.size());
                for (int j = 0; j < options.size(); j++) {
                    opts.setAtIndex(ValueLayout.ADDRESS, j, arena.allocateFrom(options.get(j)));
                }
                int rc = Nvrtc.nvrtcCompileProgram(program, options.size(), opts);
                if (rc != Nvrtc.NVRTC_SUCCESS) {
                    throw new KernelCompileException("NVRTC could not compile kernels/" + name + " for " + context.arch()
                            + " with " + options + ":\n" + log(arena, program));
                }
                MemorySegment size = arena.allocate(ValueLayout.JAVA_LONG);
                checkNvrtc(Nvrtc.nvrtcGetCUBINSize(program, size), "nvrtcGetCUBINSize");
                MemorySegment cubin = arena.allocate(size.get(ValueLayout.JAVA_LONG, 0));
                checkNvrtc(Nvrtc.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN");
                return cubin.toArray(ValueLayout.JAVA_BYTE);
            } finally {
                progOut.set(ValueLayout.ADDRESS, 0, program);
                checkNvrtc(Nvrtc.nvrtcDestroyProgram(progOut), "nvrtcDestroyProgram");
            }
        }
    }

    private static String log(Arena arena, MemorySegment program) {
        MemorySegment size = arena.allocate(ValueLayout.JAVA_LONG);
        checkNvrtc(Nvrtc.nvrtcGetProgramLogSize(program, size), "nvrtcGetProgramLogSize");
        MemorySegment text = arena.allocate(Math.max(1, size.get(ValueLayout.JAVA_LONG, 0)));
        checkNvrtc(Nvrtc.nvrtcGetProgramLog(program, text), "nvrtcGetProgramLog");
        return text.getString(0);
    }

    /** Every header a source includes with quotes, transitively, from the same resource folder. */
    static Map<String, String> headersOf(String source, TreeMap<String, String> into) {
        Matcher m = INCLUDE.matcher(source);
        while (m.find()) {
            String h = m.group(1);
            if (!into.containsKey(h)) {
                String text = resource(h);
                into.put(h, text);
                headersOf(text, into);
            }
        }
        return into;
    }

    static String resource(String name) {
        try (InputStream in = KernelCompiler.class.getResourceAsStream("/kernels/" + name)) {
            if (in == null) {
                throw new KernelCompileException("kernel source kernels/" + name + " is not on the class path");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading kernels/" + name, e);
        }
    }

    /**
     * The cache entry's key: a hash of everything the CUBIN depends on, the source and its headers, the options (so
     * the architecture and every define) and the NVRTC version.
     */
    static String cacheKey(String name, String source, Map<String, String> headers, List<String> options, String nvrtcVersion) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update((name + "\0" + source + "\0" + headers + "\0" + options + "\0" + nvrtcVersion).getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(md.digest(), 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
    }

    private static byte[] readIfPresent(Path file) {
        try {
            return Files.isRegularFile(file) ? Files.readAllBytes(file) : null;
        } catch (IOException e) {
            return null; // an unreadable cache entry is recompiled
        }
    }

    /** A cache entry appears whole or not at all, so concurrent processes never load half a file. */
    private static void writeAtomically(Path file, byte[] bytes) {
        try {
            AtomicFiles.write(file, bytes);
        } catch (IOException e) {
            // caching is an optimisation: a read-only home directory must not stop training
            System.err.println("jtune: could not cache a compiled kernel in " + file.getParent() + ": " + e.getMessage());
        }
    }

    private static String findCudaInclude() {
        List<String> tried = new ArrayList<>();
        for (String base : new String[] {System.getenv("CUDA_HOME"), System.getenv("CUDA_PATH"), "/usr/local/cuda"}) {
            if (base == null || base.isBlank()) {
                continue;
            }
            Path inc = Path.of(base, "include");
            tried.add(inc.toString());
            if (Files.isRegularFile(inc.resolve("cuda_bf16.h"))) {
                return inc.toString();
            }
        }
        throw new DeviceUnavailableException("NVRTC needs the CUDA headers (cuda_bf16.h) and none were found in "
                + tried + ": install the CUDA 13 toolkit headers or set CUDA_HOME");
    }

    private static String nvrtcVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment major = arena.allocate(ValueLayout.JAVA_INT);
            MemorySegment minor = arena.allocate(ValueLayout.JAVA_INT);
            checkNvrtc(Nvrtc.nvrtcVersion(major, minor), "nvrtcVersion");
            return major.get(ValueLayout.JAVA_INT, 0) + "." + minor.get(ValueLayout.JAVA_INT, 0);
        }
    }

}

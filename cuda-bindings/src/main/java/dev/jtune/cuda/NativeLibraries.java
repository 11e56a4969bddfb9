package dev.jtune.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.function.UnaryOperator;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Finds and loads the CUDA libraries, once each, into {@link Arena#global()} (they stay loaded for the life
 * of the process, as the driver expects).
 * <p>
 * For a library (see {@link CudaLibrary}) it tries, in order:
 * <ol>
 * <li>an explicit file, from the system property {@code jtune.cuda.<name>.path} or else the environment
 * variable {@code JTUNE_CUDA_<NAME>_PATH} (names: driver, nvrtc, cublas, cublaslt, nccl);</li>
 * <li>the dynamic loader, by soname ({@code libcuda.so.1}, {@code libnvrtc.so.13}, ...), which honours
 * {@code LD_LIBRARY_PATH} and the ldconfig cache;</li>
 * <li>{@code $CUDA_HOME/lib64/<soname>};</li>
 * <li>{@code /usr/local/cuda/lib64/<soname>}.</li>
 * </ol>
 * The first that loads wins. If none does, {@link CudaLibraryNotFoundException} lists every attempt and why
 * it failed. A failure is not remembered, so a later call tries again.
 */
public final class NativeLibraries {
    private NativeLibraries() {
    }

    private static final String DEFAULT_CUDA_HOME = "/usr/local/cuda";
    private static final Linker LINKER = Linker.nativeLinker();
    private static final ConcurrentMap<CudaLibrary, Loaded> LOADED = new ConcurrentHashMap<>();

    /** A loaded library, where it came from, and the attempts that failed before it. */
    record Loaded(CudaLibrary library, SymbolLookup lookup, String origin, List<String> failedAttempts) {
    }

    /**
     * The symbols of {@code library}, loading it on first use.
     *
     * @throws CudaLibraryNotFoundException if it cannot be loaded from anywhere
     */
    public static SymbolLookup lookup(CudaLibrary library) {
        return load(library).lookup();
    }

    /** Whether {@code library} can be loaded (loading it if it can); never throws. */
    public static boolean isAvailable(CudaLibrary library) {
        try {
            load(library);
            return true;
        } catch (CudaLibraryNotFoundException e) {
            return false;
        }
    }

    /**
     * Where {@code library} was loaded from, e.g. "libcuda.so.1 (the CUDA driver): loaded through the dynamic
     * loader by soname, file /usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05"; or, if it cannot be loaded, the
     * full list of attempts. Never throws.
     */
    public static String describe(CudaLibrary library) {
        String name = library.soname() + " (" + library.description() + ")";
        try {
            return name + ": loaded " + load(library).origin();
        } catch (CudaLibraryNotFoundException e) {
            return name + ": not loaded: " + e.getMessage();
        }
    }

    static Loaded load(CudaLibrary library) {
        // computeIfAbsent stores nothing when loading throws, so a failure is retried next time
        return LOADED.computeIfAbsent(library, l -> loadUncached(l, System::getProperty, System::getenv));
    }

    /**
     * Tries the four places in order, without the cache; properties and environment are passed in so tests
     * can control them.
     */
    static Loaded loadUncached(CudaLibrary library, UnaryOperator<String> properties, UnaryOperator<String> environment) {
        String soname = library.soname();
        List<String> failures = new ArrayList<>();

        // 1. an explicit file: the property wins over the environment variable
        String explicit = properties.apply(library.propertyName());
        String explicitSource = "system property " + library.propertyName();
        if (isBlank(explicit)) {
            explicit = environment.apply(library.environmentVariable());
            explicitSource = "environment variable " + library.environmentVariable();
        }
        if (isBlank(explicit)) {
            failures.add("explicit path: not given (neither system property " + library.propertyName()
                    + " nor environment variable " + library.environmentVariable() + " is set)");
        } else {
            String what = explicitSource + " = " + explicit;
            Optional<SymbolLookup> found = tryFile(Path.of(explicit), what, failures);
            if (found.isPresent()) {
                return new Loaded(library, found.get(), "from " + explicit + " (" + explicitSource + ")", failures);
            }
        }

        // 2. the dynamic loader, by soname
        try {
            SymbolLookup lookup = SymbolLookup.libraryLookup(soname, Arena.global());
            String file = mappedFile(soname);
            return new Loaded(library, lookup, "through the dynamic loader by soname"
                    + (file == null ? "" : ", file " + file), failures);
        } catch (IllegalArgumentException e) {
            failures.add("dynamic loader, by soname " + soname + " (LD_LIBRARY_PATH, ldconfig cache): "
                    + dlopenError(soname));
        }

        // 3. $CUDA_HOME/lib64
        String cudaHome = environment.apply("CUDA_HOME");
        if (isBlank(cudaHome)) {
            failures.add("$CUDA_HOME/lib64/" + soname + ": environment variable CUDA_HOME is not set");
        } else {
            Path file = Path.of(cudaHome, "lib64", soname);
            Optional<SymbolLookup> found = tryFile(file, "$CUDA_HOME/lib64/" + soname + " = " + file, failures);
            if (found.isPresent()) {
                return new Loaded(library, found.get(), "from " + file + " ($CUDA_HOME)", failures);
            }
        }

        // 4. the toolkit's default location
        Path file = Path.of(DEFAULT_CUDA_HOME, "lib64", soname);
        Optional<SymbolLookup> found = tryFile(file, file.toString(), failures);
        if (found.isPresent()) {
            return new Loaded(library, found.get(), "from " + file, failures);
        }
        throw new CudaLibraryNotFoundException(library, failures);
    }

    /**
     * A downcall handle for {@code symbol}, or, when the library or the symbol is missing, a handle of the same
     * type that throws that exception: a binding's holder class then initialises fine, and every call reports
     * the real cause (instead of an ExceptionInInitializerError once and NoClassDefFoundError after).
     */
    static MethodHandle downcall(CudaLibrary library, String symbol, FunctionDescriptor descriptor) {
        MemorySegment address;
        try {
            address = find(load(library), symbol);
        } catch (CudaLibraryNotFoundException | CudaSymbolNotFoundException e) {
            MethodType type = descriptor.toMethodType();
            MethodHandle thrower = MethodHandles.throwException(type.returnType(), e.getClass()).bindTo(e);
            return MethodHandles.dropArguments(thrower, 0, type.parameterList());
        }
        return LINKER.downcallHandle(address, descriptor);
    }

    /** The address of {@code symbol} in a loaded library. */
    static MemorySegment find(Loaded loaded, String symbol) {
        return loaded.lookup().find(symbol)
                .orElseThrow(() -> new CudaSymbolNotFoundException(symbol, loaded.library(), loaded.origin()));
    }

    private static Optional<SymbolLookup> tryFile(Path file, String what, List<String> failures) {
        if (!Files.exists(file)) {
            failures.add(what + ": no such file");
        } else if (Files.isDirectory(file)) {
            failures.add(what + ": is a directory, not the library file");
        } else {
            try {
                return Optional.of(SymbolLookup.libraryLookup(file, Arena.global()));
            } catch (IllegalArgumentException e) {
                failures.add(what + ": exists but cannot be loaded: " + dlopenError(file.toString()));
            }
        }
        return Optional.empty();
    }

    private static boolean isBlank(String s) {
        return s == null || s.isBlank();
    }

    /** The file the dynamic loader picked for a soname, from /proc/self/maps; null when it cannot tell. */
    private static String mappedFile(String soname) {
        String stem = soname.substring(0, soname.indexOf(".so") + 3); // libcuda.so.1 -> libcuda.so
        try (var lines = Files.lines(Path.of("/proc/self/maps"))) {
            return lines.map(line -> line.substring(line.lastIndexOf(' ') + 1))
                    .filter(path -> path.startsWith("/"))
                    .filter(path -> Path.of(path).getFileName().toString().startsWith(stem))
                    .findFirst().orElse(null);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /**
     * The dynamic loader's own reason a library cannot be opened ("libcuda.so.1: cannot open shared object
     * file: No such file or directory"), which the JDK's lookup does not report. Best effort.
     */
    private static String dlopenError(String nameOrPath) {
        try {
            return Dl.error(nameOrPath);
        } catch (Throwable t) {
            return "cannot be opened (the loader's reason is not available: " + t + ")";
        }
    }

    /** dlopen/dlerror from the C library, used only to explain failures. */
    private static final class Dl {
        private static final int RTLD_LAZY = 0x1;
        private static final MethodHandle DLOPEN = libc("dlopen", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        private static final MethodHandle DLERROR = libc("dlerror", FunctionDescriptor.of(ADDRESS));
        private static final MethodHandle DLCLOSE = libc("dlclose", FunctionDescriptor.of(JAVA_INT, ADDRESS));

        private static MethodHandle libc(String name, FunctionDescriptor descriptor) {
            return LINKER.downcallHandle(LINKER.defaultLookup().find(name).orElseThrow(), descriptor);
        }

        static String error(String nameOrPath) throws Throwable {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment handle = (MemorySegment) DLOPEN.invokeExact(arena.allocateFrom(nameOrPath), RTLD_LAZY);
                if (!handle.equals(MemorySegment.NULL)) {
                    int ignored = (int) DLCLOSE.invokeExact(handle);
                    return "the JDK could not load it, although dlopen can";
                }
                MemorySegment message = (MemorySegment) DLERROR.invokeExact();
                return message.equals(MemorySegment.NULL) ? "dlopen failed without a reason"
                        : message.reinterpret(Long.MAX_VALUE).getString(0);
            }
        }
    }
}

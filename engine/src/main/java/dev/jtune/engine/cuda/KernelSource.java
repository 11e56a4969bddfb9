package dev.jtune.engine.cuda;

import dev.jtune.engine.Shape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;
import java.util.TreeMap;

/**
 * The launch contract of one {@code kernels/*.cu} source, declared once by its launch class: the constants the source
 * is compiled with ({@code -DNAME=value}, for NVRTC at run time and nvcc at build time; the source {@code #error}s on
 * a missing one instead of defaulting) and the signature of every kernel the class launches. Loading the module checks
 * the compiled kernels against the signatures; {@link KernelSources} lists every source.
 */
record KernelSource(String file, SequencedMap<String, String> defines, SequencedMap<String, KernelSignature> kernels) {
    /** Bytes of the widest single memory access the kernels make (16-byte vectors): {@code JT_VECTOR_BYTES}. */
    static final int VECTOR_BYTES = 16;
    /**
     * The define that marks a source using Hopper's arch-specific instructions (wgmma, setmaxnreg): NVRTC then compiles
     * it for {@code sm_90a} instead of {@code sm_90}, and the build's nvcc check for {@code compute_90a}
     * (compile-kernels.sh reads it from the defines file); other devices cannot load it.
     */
    static final String ARCH_SPECIFIC = "JT_ARCH_SPECIFIC";
    /** Dtype suffixes of the kernels instantiated per float type ({@code JT_FLOAT_TYPES}), in its order. */
    static final List<String> FLOATS = List.of("f64", "f32", "bf16", "f16");
    /** Dtype suffixes of the kernels instantiated per element type ({@code JT_ALL_TYPES}), in its order. */
    static final List<String> ALL_TYPES = List.of("f64", "f32", "bf16", "f16", "i64", "i32", "u8");
    /** Name suffixes of a kernel's per-element and vectorised instantiations ({@link RowLaunch#vecSuffix}). */
    static final List<String> VEC = List.of("", "_vec");

    KernelSource {
        defines = Collections.unmodifiableSequencedMap(new TreeMap<>(defines));
        kernels = Collections.unmodifiableSequencedMap(new LinkedHashMap<>(kernels));
    }

    static Builder builder(String file) {
        return new Builder(file);
    }

    /** Whether this source needs the arch-specific target ({@link #ARCH_SPECIFIC}). */
    boolean archSpecific() {
        return defines.containsKey(ARCH_SPECIFIC);
    }

    /**
     * The NVRTC target for this source on a device of architecture {@code arch} ({@code sm_90}, ...): the same, or for
     * an arch-specific source {@code sm_90a}, which only Hopper (sm_90) runs.
     */
    String targetFor(String arch) {
        if (!archSpecific()) {
            return arch;
        }
        if (!arch.equals("sm_90")) {
            throw new dev.jtune.engine.UnsupportedOpException("kernels/" + file + " uses Hopper's wgmma (sm_90a); this GPU is " + arch);
        }
        return "sm_90a";
    }

    /** The signature of kernel {@code name}; {@link IllegalArgumentException} when this source declares none. */
    KernelSignature kernel(String name) {
        KernelSignature s = kernels.get(name);
        if (s == null) {
            throw new IllegalArgumentException("kernels/" + file + " declares no kernel " + name + " in its launch contract");
        }
        return s;
    }

    /** The defines as {@code NAME=value} lines, sorted: the build's defines file for the nvcc check. */
    String definesFile() {
        StringBuilder s = new StringBuilder();
        defines.forEach((k, v) -> s.append(k).append('=').append(v).append('\n'));
        return s.toString();
    }

    /**
     * Every name {@code format} gives for each combination of {@code parts} (the first part varies slowest), e.g.
     * {@code names("copy_%s_%s", ALL_TYPES, ALL_TYPES)}: the names one instantiation macro of a source produces.
     */
    @SafeVarargs
    static List<String> names(String format, List<String>... parts) {
        List<List<String>> combos = new ArrayList<>(List.of(List.of()));
        for (List<String> part : parts) {
            List<List<String>> next = new ArrayList<>();
            for (List<String> prefix : combos) {
                for (String p : part) {
                    List<String> c = new ArrayList<>(prefix);
                    c.add(p);
                    next.add(c);
                }
            }
            combos = next;
        }
        return combos.stream().map(c -> String.format(format, c.toArray())).toList();
    }

    static final class Builder {
        private final String file;
        private final Map<String, String> defines = new LinkedHashMap<>();
        private final Map<String, KernelSignature> kernels = new LinkedHashMap<>();

        private Builder(String file) {
            this.file = file;
            // common.cuh, included by every source
            define("JT_MAX_RANK", Shape.MAX_RANK);
            define("JT_VECTOR_BYTES", VECTOR_BYTES);
        }

        Builder define(String name, long value) {
            return defineText(name, Long.toString(value));
        }

        private Builder defineText(String name, String text) {
            if (!name.matches("[A-Z][A-Z0-9_]*")) {
                throw new IllegalArgumentException(file + ": define " + name + " is not an upper-case C identifier");
            }
            if (defines.putIfAbsent(name, text) != null) {
                throw new IllegalArgumentException(file + ": define " + name + " declared twice");
            }
            return this;
        }

        /** A double constant, written so that nvcc parses the very same double ({@link Double#toString} round-trips). */
        Builder defineDouble(String name, double value) {
            if (!Double.isFinite(value)) {
                throw new IllegalArgumentException(file + ": define " + name + " is not finite: " + value);
            }
            return defineText(name, Double.toString(value));
        }

        /** A 64-bit pattern as an {@code unsigned long long} literal (hash and RNG constants). */
        Builder defineBits(String name, long value) {
            return defineText(name, "0x" + Long.toHexString(value).toUpperCase(java.util.Locale.ROOT) + "ULL");
        }

        /** {@code prefix + NAME = ordinal} for every constant of an enum whose ordinals a kernel switches on. */
        Builder defineOrdinals(String prefix, Enum<?>[] values) {
            for (Enum<?> v : values) {
                define(prefix + v.name(), v.ordinal());
            }
            return this;
        }

        Builder kernel(String name, KernelParam... params) {
            if (kernels.putIfAbsent(name, new KernelSignature(name, Arrays.asList(params))) != null) {
                throw new IllegalArgumentException(file + ": kernel " + name + " declared twice");
            }
            return this;
        }

        Builder kernels(List<String> names, KernelParam... params) {
            names.forEach(n -> kernel(n, params));
            return this;
        }

        KernelSource build() {
            return new KernelSource(file, new LinkedHashMap<>(defines), new LinkedHashMap<>(kernels));
        }
    }
}

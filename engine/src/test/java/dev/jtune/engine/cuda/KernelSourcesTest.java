package dev.jtune.engine.cuda;

import dev.jtune.engine.backend.CounterRng;
import dev.jtune.engine.fused.ActivationKernel;
import dev.jtune.engine.BinaryOp;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static dev.jtune.engine.cuda.KernelParam.I64;
import static dev.jtune.engine.cuda.KernelParam.PTR;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The constants of the kernel sources are declared once, in Java: every {@code kernels/*.cu} has a {@link KernelSource},
 * requires (with an {@code #error} guard) exactly the defines it is given, and defines none of them itself.
 */
class KernelSourcesTest {
    private static final Pattern IFNDEF = Pattern.compile("^#\\s*ifndef\\s+(\\w+)\\s*$");
    private static final Pattern IF_NOT_DEFINED = Pattern.compile("^#\\s*if\\s+(!\\s*defined\\s*\\(\\s*\\w+\\s*\\)\\s*(\\|\\|\\s*)?)+$");
    private static final Pattern NOT_DEFINED = Pattern.compile("!\\s*defined\\s*\\(\\s*(\\w+)\\s*\\)");
    private static final Pattern DEFINE = Pattern.compile("^#\\s*define\\s+(\\w+)");

    private static Set<String> kernelFiles() throws IOException, URISyntaxException {
        Path dir = Path.of(KernelSourcesTest.class.getResource("/kernels").toURI());
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cu")).collect(Collectors.toCollection(TreeSet::new));
        }
    }

    /** The source and every header it includes, by name. */
    private static Map<String, String> texts(String file) {
        Map<String, String> texts = new TreeMap<>(KernelCompiler.headersOf(KernelCompiler.resource(file), new TreeMap<>()));
        texts.put(file, KernelCompiler.resource(file));
        return texts;
    }

    /** The names a text requires through {@code #ifndef X} or {@code #if !defined(X) || ...}, each followed by {@code #error}. */
    static Set<String> required(String name, String text) {
        Set<String> names = new TreeSet<>();
        List<String> lines = text.lines().map(String::strip).toList();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            Matcher one = IFNDEF.matcher(line);
            List<String> found = new java.util.ArrayList<>();
            if (one.matches()) {
                found.add(one.group(1));
            } else if (IF_NOT_DEFINED.matcher(line).matches()) {
                Matcher m = NOT_DEFINED.matcher(line);
                while (m.find()) {
                    found.add(m.group(1));
                }
            }
            if (!found.isEmpty()) {
                String next = i + 1 < lines.size() ? lines.get(i + 1) : "";
                assertTrue(next.startsWith("#error"), name + ": the guard \"" + line + "\" must be followed by #error, not \"" + next + "\"");
                names.addAll(found);
            }
        }
        return names;
    }

    @Test
    void everyKernelSourceHasExactlyOneLaunchContract() throws Exception {
        Set<String> declared = new TreeSet<>();
        for (KernelSource s : KernelSources.ALL) {
            assertTrue(declared.add(s.file()), "two KernelSources for " + s.file());
        }
        assertEquals(kernelFiles(), declared);
    }

    @Test
    void eachSourceRequiresExactlyTheDefinesItIsGivenAndDefinesNoneOfThem() {
        for (KernelSource s : KernelSources.ALL) {
            Set<String> required = new TreeSet<>();
            texts(s.file()).forEach((name, text) -> {
                required.addAll(required(name, text));
                text.lines().map(String::strip).map(DEFINE::matcher).filter(Matcher::find).map(m -> m.group(1)).forEach(d ->
                        assertFalse(s.defines().containsKey(d), name + " #defines " + d + ", which " + s.file() + "'s launch class passes"));
            });
            assertEquals(required, s.defines().keySet(), s.file() + ": the #error-guarded names vs the KernelSource's defines");
        }
    }

    @Test
    void theGuardParserFindsBothForms() {
        String text = """
                #ifndef A_1
                #error "A_1"
                #endif
                #if !defined(B) || !defined( C_2 )
                #error "B, C"
                #endif
                #if defined(D)
                #endif
                """;
        assertEquals(Set.of("A_1", "B", "C_2"), required("t.cu", text));
        assertThrows(AssertionError.class, () -> required("t.cu", "#ifndef X\n#define X 1\n#endif\n"),
                "a guard that defaults instead of failing is refused");
    }

    @Test
    void definesComeFromTheJavaDeclarations() {
        KernelSource e = ElementwiseKernels.SOURCE;
        assertEquals(Integer.toString(ElementwiseKernels.CHUNK), e.defines().get("CHUNK"));
        for (BinaryOp op : BinaryOp.values()) {
            assertEquals(Integer.toString(op.ordinal()), e.defines().get("OP_" + op.name()));
        }
        FlashKernels.TILES.forEach((d, t) -> {
            assertEquals(Integer.toString(t.forwardKeys()), FlashKernels.SOURCE.defines().get("FLASH_KEYS_" + d));
            assertEquals(Integer.toString(t.dqKeys()), FlashKernels.SOURCE.defines().get("FLASH_DQ_KEYS_" + d));
            assertEquals(Integer.toString(t.dkvColumns()), FlashKernels.SOURCE.defines().get("FLASH_DKV_COLUMNS_" + d));
            assertEquals(Integer.toString(t.dkvQueries()), FlashKernels.SOURCE.defines().get("FLASH_DKV_QUERIES_" + d));
        });
        assertEquals(Integer.toString(NormKernels.REDUCE_ROWS), NormKernels.SOURCE.defines().get("NORM_REDUCE_ROWS"));
        // C literals that read back as the Java constants, bit for bit
        assertEquals(CounterRng.MIX_A, Long.parseUnsignedLong(hex(e.defines().get("RNG_MIX_A")), 16));
        assertEquals(CounterRng.MIX_B, Long.parseUnsignedLong(hex(e.defines().get("RNG_MIX_B")), 16));
        assertEquals(CounterRng.GAMMA, Long.parseUnsignedLong(hex(e.defines().get("RNG_GAMMA")), 16));
        assertEquals(ActivationKernel.GELU_BETA, Double.parseDouble(ActivationKernels.SOURCE.defines().get("GELU_BETA")));
        assertEquals(ActivationKernel.GELU_KAPPA, Double.parseDouble(ActivationKernels.SOURCE.defines().get("GELU_KAPPA")));
        for (KernelSource s : KernelSources.ALL) {
            assertEquals("8", s.defines().get("JT_MAX_RANK"), s.file());
            assertEquals("16", s.defines().get("JT_VECTOR_BYTES"), s.file());
        }
    }

    /** {@code 0x...ULL} to its hex digits; anything else fails the test. */
    private static String hex(String literal) {
        assertTrue(literal.matches("0x[0-9A-F]{1,16}ULL"), literal);
        return literal.substring(2, literal.length() - 3);
    }

    @Test
    void doubleDefinesRefuseNonFiniteValues() {
        assertThrows(IllegalArgumentException.class, () -> KernelSource.builder("x.cu").defineDouble("X", Double.NaN));
        assertEquals("1.0E-5", KernelSource.builder("x.cu").defineDouble("X", 1e-5).build().defines().get("X"));
    }

    @Test
    void theDefinesFileIsSortedNameValueLines() {
        KernelSource s = KernelSource.builder("x.cu").define("ZED", 3).define("ALPHA", -1).build();
        assertEquals("ALPHA=-1\nJT_MAX_RANK=8\nJT_VECTOR_BYTES=16\nZED=3\n", s.definesFile());
    }

    @Test
    void namesAreEveryCombinationInTheMacrosOrder() {
        assertEquals(List.of("copy_a_x", "copy_a_y", "copy_b_x", "copy_b_y"),
                KernelSource.names("copy_%s_%s", List.of("a", "b"), List.of("x", "y")));
        assertEquals(List.of("gelu_f64", "gelu_f64_vec", "gelu_f32", "gelu_f32_vec"),
                KernelSource.names("gelu_%s%s", List.of("f64", "f32"), KernelSource.VEC));
    }

    @Test
    void theBuilderRefusesDuplicatesAndBadNames() {
        assertThrows(IllegalArgumentException.class, () -> KernelSource.builder("x.cu").define("A", 1).define("A", 2));
        assertThrows(IllegalArgumentException.class, () -> KernelSource.builder("x.cu").define("lower", 1));
        assertThrows(IllegalArgumentException.class, () -> KernelSource.builder("x.cu").kernel("k", PTR).kernel("k", I64));
        KernelSource s = KernelSource.builder("x.cu").kernel("k", PTR).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.kernel("other"));
        assertTrue(e.getMessage().contains("x.cu") && e.getMessage().contains("other"), e.getMessage());
    }

    @Test
    void kernelNamesAreUniqueAcrossSources() {
        Set<String> seen = new HashSet<>();
        for (KernelSource s : KernelSources.ALL) {
            for (String k : s.kernels().keySet()) {
                assertTrue(seen.add(k), k + " is declared by two sources");
            }
        }
    }

    @Test
    void anArchSpecificSourceCompilesForSm90aAndOnlyHopperLoadsIt() {
        java.util.Set<KernelSource> hopper = java.util.Set.of(WgmmaKernels.SOURCE, FlashWgmmaKernels.SOURCE);
        for (KernelSource source : hopper) {
            assertTrue(source.archSpecific(), source.file());
            assertEquals("sm_90a", source.targetFor("sm_90"));
            assertThrows(dev.jtune.engine.UnsupportedOpException.class, () -> source.targetFor("sm_80"));
            assertThrows(dev.jtune.engine.UnsupportedOpException.class, () -> source.targetFor("sm_100"));
            assertTrue(source.definesFile().contains(KernelSource.ARCH_SPECIFIC + "=1\n"), "the build's nvcc check reads it there");
        }
        for (KernelSource other : KernelSources.ALL) {
            if (!hopper.contains(other)) {
                assertFalse(other.archSpecific(), other.file());
                assertEquals("sm_89", other.targetFor("sm_89"), other.file());
            }
        }
    }
}

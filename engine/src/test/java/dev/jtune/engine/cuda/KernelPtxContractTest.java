package dev.jtune.engine.cuda;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The declared kernel signatures against what nvcc compiled: the build's PTX check (compile-kernels.sh, with the
 * sources' defines) leaves one {@code .ptx} per source in {@code target/kernels-ptx}, whose {@code .entry} lines list
 * every kernel with its parameters' types and sizes. Every kernel there must be declared, and every declared kernel
 * must be there with the declared parameters, before any GPU loads the module (where cuFuncGetParamInfo checks the
 * sizes again). Skipped, saying why, on a machine without nvcc (the build then writes no PTX).
 */
class KernelPtxContractTest {
    private static final Pattern ENTRY = Pattern.compile("\\.entry\\s+(\\w+)\\s*\\(([^)]*)\\)");
    private static final Pattern PARAM = Pattern.compile("\\.param\\s+(?:\\.align\\s+\\d+\\s+)?\\.(\\w+)\\s+\\w+(?:\\[(\\d+)])?");

    /** One parameter as PTX declares it: its type ({@code u64}, {@code f32}, {@code b8}, ...) and bytes. */
    record PtxParam(String type, long bytes) {
        /** Whether a launcher's {@link KernelParam} of this position passes this parameter: same size and kind of value. */
        boolean accepts(KernelParam p) {
            if (bytes != p.bytes) {
                return false;
            }
            return switch (p) {
                case PTR, I64, I32 -> type.matches("[usb](32|64)");
                case F32 -> type.equals("f32");
                case F64 -> type.equals("f64");
                case LAYOUT, TENSOR_MAP -> type.equals("b8");
            };
        }
    }

    /** Every {@code .entry} of a PTX text with its parameters, in order. */
    static Map<String, List<PtxParam>> entries(String ptx) {
        Map<String, List<PtxParam>> entries = new LinkedHashMap<>();
        Matcher e = ENTRY.matcher(ptx);
        while (e.find()) {
            List<PtxParam> params = new ArrayList<>();
            for (String p : e.group(2).split(",")) {
                if (p.isBlank()) {
                    continue;
                }
                Matcher m = PARAM.matcher(p.strip());
                assertTrue(m.matches(), "unparsed PTX parameter of " + e.group(1) + ": " + p.strip());
                String type = m.group(1);
                long width = type.equals("pred") ? 1 : Long.parseLong(type.substring(1)) / 8;
                long count = m.group(2) == null ? 1 : Long.parseLong(m.group(2));
                params.add(new PtxParam(type, width * count));
            }
            entries.put(e.group(1), params);
        }
        return entries;
    }

    /** What is wrong with {@code entries} against {@code source}'s declarations; empty when they agree. */
    static List<String> problems(KernelSource source, Map<String, List<PtxParam>> entries) {
        List<String> problems = new ArrayList<>();
        for (String name : entries.keySet()) {
            if (!source.kernels().containsKey(name)) {
                problems.add(source.file() + ": kernel " + name + " is compiled but not declared in its KernelSource");
            }
        }
        for (KernelSignature s : source.kernels().values()) {
            List<PtxParam> ptx = entries.get(s.name());
            if (ptx == null) {
                problems.add(source.file() + ": declared kernel " + s.name() + " is not compiled");
            } else if (ptx.size() != s.params().size()) {
                problems.add(source.file() + ": kernel " + s.name() + " takes " + ptx.size() + " parameters, its signature declares "
                        + s.params().size() + " " + s.params());
            } else {
                for (int i = 0; i < ptx.size(); i++) {
                    if (!ptx.get(i).accepts(s.params().get(i))) {
                        problems.add(source.file() + ": kernel " + s.name() + " parameter " + i + " is ." + ptx.get(i).type() + " ("
                                + ptx.get(i).bytes() + " bytes), its signature declares " + s.params().get(i));
                    }
                }
            }
        }
        return problems;
    }

    @Test
    void everyCompiledKernelMatchesItsDeclaredSignature() throws IOException {
        Path dir = Path.of(System.getProperty("basedir", "."), "target", "kernels-ptx");
        assumeTrue(Files.isDirectory(dir), "no " + dir + ": nvcc is not installed here, so the build compiled no PTX to check");
        List<String> problems = new ArrayList<>();
        int kernels = 0;
        int declared = 0;
        for (KernelSource source : KernelSources.ALL) {
            declared += source.kernels().size();
            Path ptx = dir.resolve(source.file().replace(".cu", ".ptx"));
            assertTrue(Files.isRegularFile(ptx), "the build compiled no " + ptx);
            Map<String, List<PtxParam>> entries = entries(Files.readString(ptx));
            problems.addAll(problems(source, entries));
            kernels += entries.size();
        }
        assertEquals(List.of(), problems);
        assertEquals(declared, kernels, "compiled kernels");
    }

    @Test
    void theCheckCatchesEachKindOfDisagreement() {
        String ptx = """
                .visible .entry k_a(
                	.param .u32 k_a_param_0,
                	.param .u64 k_a_param_1,
                	.param .align 8 .b8 k_a_param_2[136],
                	.param .f64 k_a_param_3
                )
                .visible .entry k_extra(
                )
                """;
        Map<String, List<PtxParam>> entries = entries(ptx);
        assertEquals(List.of(new PtxParam("u32", 4), new PtxParam("u64", 8), new PtxParam("b8", 136), new PtxParam("f64", 8)),
                entries.get("k_a"));
        KernelSource good = KernelSource.builder("t.cu")
                .kernel("k_a", KernelParam.I32, KernelParam.PTR, KernelParam.LAYOUT, KernelParam.F64)
                .kernel("k_extra").build();
        assertEquals(List.of(), problems(good, entries));

        KernelSource bad = KernelSource.builder("t.cu")
                .kernel("k_a", KernelParam.I32, KernelParam.PTR, KernelParam.LAYOUT, KernelParam.I64)
                .kernel("k_missing", KernelParam.PTR).build();
        List<String> p = problems(bad, entries);
        assertEquals(3, p.size(), p.toString());
        assertTrue(p.contains("t.cu: kernel k_extra is compiled but not declared in its KernelSource"), p.toString());
        assertTrue(p.contains("t.cu: declared kernel k_missing is not compiled"), p.toString());
        assertTrue(p.contains("t.cu: kernel k_a parameter 3 is .f64 (8 bytes), its signature declares I64 (8 bytes)"), p.toString());

        KernelSource shorter = KernelSource.builder("t.cu").kernel("k_a", KernelParam.I32).kernel("k_extra").build();
        assertTrue(problems(shorter, entries).getFirst().contains("takes 4 parameters, its signature declares 1"));
        assertThrows(AssertionError.class, () -> entries(".entry k(\n .param .weird\n)"));
    }
}

package dev.jtune.cuda;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.StructLayout;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** symbols.txt and the binding classes must agree both ways: it is what a jextract user regenerates from. */
class SymbolsFileTest {
    /** The entries of one header's group in symbols.txt. */
    record Group(Class<?> owner, List<String> functions, List<String> structs, List<String> typedefs, List<String> constants) {
    }

    static final List<Class<?>> BINDINGS = List.of(CudaDriver.class, Nvrtc.class, Cublas.class, CublasLt.class, Nccl.class);
    private static final Pattern HEADING = Pattern.compile("^# (\\S+\\.h) -> (dev\\.jtune\\.cuda\\.\\w+) \\((\\S+)\\)$");

    static Map<Class<?>, Group> groups() throws IOException, ClassNotFoundException {
        Path file = Path.of(System.getProperty("basedir", "."), "symbols.txt");
        Map<Class<?>, Group> groups = new LinkedHashMap<>();
        Group current = null;
        for (String line : Files.readAllLines(file)) {
            Matcher m = HEADING.matcher(line);
            if (m.matches()) {
                Class<?> owner = Class.forName(m.group(2));
                current = new Group(owner, new ArrayList<>(), new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
                assertFalse(groups.containsKey(owner), "two groups for " + owner);
                groups.put(owner, current);
                continue;
            }
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            String[] parts = line.trim().split("\\s+");
            assertEquals(2, parts.length, "malformed line: " + line);
            assertNotNull(current, "entry before any group heading: " + line);
            switch (parts[0]) {
                case "--include-function" -> current.functions.add(parts[1]);
                case "--include-struct" -> current.structs.add(parts[1]);
                case "--include-typedef" -> current.typedefs.add(parts[1]);
                case "--include-constant" -> current.constants.add(parts[1]);
                default -> throw new AssertionError("unknown option in symbols.txt: " + line);
            }
        }
        return groups;
    }

    /** The public static methods of a binding class: all of them call native code. */
    static TreeSet<String> nativeMethods(Class<?> owner) {
        TreeSet<String> names = new TreeSet<>();
        for (Method m : owner.getDeclaredMethods()) {
            if (Modifier.isPublic(m.getModifiers()) && Modifier.isStatic(m.getModifiers())) {
                assertTrue(names.add(m.getName()), owner.getSimpleName() + "." + m.getName() + " is overloaded");
            }
        }
        return names;
    }

    static TreeSet<String> intConstants(Class<?> owner) {
        TreeSet<String> names = new TreeSet<>();
        for (Field f : owner.getDeclaredFields()) {
            int mod = f.getModifiers();
            if (Modifier.isPublic(mod) && Modifier.isStatic(mod) && Modifier.isFinal(mod)) {
                assertEquals(int.class, f.getType(), "constant " + f.getName());
                names.add(f.getName());
            }
        }
        return names;
    }

    static Map<String, Class<?>> structClasses(Class<?> owner) {
        Map<String, Class<?>> classes = new LinkedHashMap<>();
        for (Class<?> c : owner.getDeclaredClasses()) {
            if (Modifier.isPublic(c.getModifiers())) {
                classes.put(c.getSimpleName(), c);
            }
        }
        return classes;
    }

    static StructLayout layoutOf(Class<?> struct) throws ReflectiveOperationException {
        return (StructLayout) struct.getField("LAYOUT").get(null);
    }

    @Test
    void everyBindingClassHasAGroup() throws Exception {
        assertEquals(BINDINGS, List.copyOf(groups().keySet()));
    }

    @Test
    void functionsAgreeBothWays() throws Exception {
        for (Group g : groups().values()) {
            TreeSet<String> listed = new TreeSet<>(g.functions);
            assertEquals(g.functions.size(), listed.size(), "duplicate function in " + g.owner.getSimpleName());
            TreeSet<String> bound = nativeMethods(g.owner);
            TreeSet<String> unbound = new TreeSet<>(listed);
            unbound.removeAll(bound);
            assertTrue(unbound.isEmpty(), "listed in symbols.txt but no method in " + g.owner.getSimpleName() + ": " + unbound);
            TreeSet<String> unlisted = new TreeSet<>(bound);
            unlisted.removeAll(listed);
            assertTrue(unlisted.isEmpty(), g.owner.getSimpleName() + " methods missing from symbols.txt: " + unlisted);
        }
    }

    @Test
    void constantsAgreeBothWays() throws Exception {
        for (Group g : groups().values()) {
            TreeSet<String> listed = new TreeSet<>(g.constants);
            assertEquals(g.constants.size(), listed.size(), "duplicate constant in " + g.owner.getSimpleName());
            assertEquals(intConstants(g.owner), listed, "constants of " + g.owner.getSimpleName());
        }
    }

    @Test
    void structsAgreeBothWays() throws Exception {
        for (Group g : groups().values()) {
            Map<String, Class<?>> classes = structClasses(g.owner);
            assertEquals(new TreeSet<>(classes.keySet()), new TreeSet<>(g.typedefs), "struct classes of " + g.owner.getSimpleName());
            TreeSet<String> layoutNames = new TreeSet<>();
            for (Class<?> c : classes.values()) {
                layoutNames.add(layoutOf(c).name().orElseThrow());
            }
            for (String struct : g.structs) {
                assertTrue(layoutNames.contains(struct), "--include-struct " + struct + " has no class whose LAYOUT is named so");
            }
        }
    }
}

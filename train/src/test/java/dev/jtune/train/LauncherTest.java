package dev.jtune.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The {@code ./jtune} launcher's rebuild rule, on a copy of the script in a scratch tree with a stand-in JDK and
 * Maven that only record being called: build outputs newer than the jar (JMH's generated sources) do not rebuild,
 * a changed main source does, and the launcher's own lines carry no colour codes.
 */
class LauncherTest {
    private static final Instant JAR_TIME = Instant.parse("2026-12-01T12:00:00Z");

    private static Path executable(Path file, String text) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, text);
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
        return file;
    }

    private static void touch(Path file, Instant time) throws IOException {
        Files.createDirectories(file.getParent());
        if (!Files.exists(file)) {
            Files.writeString(file, "x");
        }
        Files.setLastModifiedTime(file, FileTime.from(time));
    }

    /** Runs the launcher in {@code tree}; returns its combined output. */
    private static String launch(Path tree, Path fakeJdk, Path fakeBin) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("bash", tree.resolve("jtune").toString(), "--help").directory(tree.toFile()).redirectErrorStream(true);
        pb.environment().put("JAVA_HOME", fakeJdk.toString());
        pb.environment().put("PATH", fakeBin + ":/usr/bin:/bin");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    @Test
    void onlyAChangedSourceRebuilds(@TempDir Path tmp) throws Exception {
        Path tree = tmp.resolve("tree");
        Files.createDirectories(tree);
        Files.copy(Path.of("..", "jtune"), tree.resolve("jtune"));
        Path log = tmp.resolve("calls.log");
        Path jdk = tmp.resolve("jdk");
        executable(jdk.resolve("bin/java"), "#!/bin/sh\nif [ \"$1\" = -version ]; then echo 'openjdk version \"25.0.1\" 2025-10-21' >&2; exit 0; fi\n"
                + "echo \"java $*\" >> " + log + "\n");
        executable(jdk.resolve("bin/javac"), "#!/bin/sh\nexit 0\n");
        Path bin = tmp.resolve("bin");
        executable(bin.resolve("mvn"), "#!/bin/sh\necho \"mvn $*\" >> " + log + "\n");
        touch(tree.resolve("pom.xml"), JAR_TIME.minusSeconds(60));
        touch(tree.resolve("engine/src/main/java/A.java"), JAR_TIME.minusSeconds(60));
        touch(tree.resolve("train/target/jtune.jar"), JAR_TIME);
        // newer than the jar, but outputs or tests, not inputs
        touch(tree.resolve("bench/target/generated-sources/annotations/B_jmhTest.java"), JAR_TIME.plusSeconds(60));
        touch(tree.resolve("engine/target/classes/A.class"), JAR_TIME.plusSeconds(60));
        touch(tree.resolve("engine/src/test/java/ATest.java"), JAR_TIME.plusSeconds(60));
        touch(tree.resolve(".device/lib/x.jar"), JAR_TIME.plusSeconds(60));

        String first = launch(tree, jdk, bin);
        String calls = Files.readString(log);
        assertFalse(calls.contains("mvn"), "no rebuild for build outputs or tests: " + calls + first);
        assertTrue(calls.contains("java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -jar train/target/jtune.jar --help"), calls);
        assertFalse(first.contains("\u001b"), "no colour codes: " + first);

        touch(tree.resolve("engine/src/main/java/A.java"), JAR_TIME.plusSeconds(120));
        String second = launch(tree, jdk, bin);
        calls = Files.readString(log);
        assertTrue(calls.contains("mvn -B -q -ntp -Dstyle.color=never install -DskipTests"), "a changed main source rebuilds: " + calls);
        assertTrue(second.contains("jtune: building") && !second.contains("\u001b"), second);
        System.out.println("launcher calls:\n" + calls);
    }
}

package dev.jtune.train;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The host memory a run may pin: Linux's MemAvailable (free memory plus what the kernel can reclaim), else the JVM's
 * count of free physical memory. Pinned (page-locked) buffers cannot be swapped, so a plan that needs more than this
 * would fail or stall the machine instead of training.
 */
final class HostMemory {
    private HostMemory() {
    }

    static long available() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) {
                    return parseKiB(line);
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux, or unreadable: the JVM's figure below
        }
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getFreeMemorySize();
    }

    /** "MemAvailable:   12345678 kB" to bytes. */
    static long parseKiB(String line) {
        String[] parts = line.trim().split("\\s+");
        return Long.parseLong(parts[1]) * 1024;
    }
}

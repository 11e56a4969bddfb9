package dev.jtune.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.LinkedHashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The environment every process that calls NCCL must have before its first NCCL call: NVLink multicast (NVLS) off in
 * NCCL, torch's symmetric memory and NVSHMEM. Multicast objects can take a shared host's GPUs out of service, so jtune
 * never lets NCCL create them. {@link #apply()} writes the variables into this process's C environment (libc
 * {@code setenv}, which NCCL's {@code getenv} reads), so they hold whatever launched the process, even a launcher that
 * built a new environment; a launcher of worker processes also puts {@link #SAFETY} into theirs.
 */
public final class NcclEnvironment {
    private NcclEnvironment() {
    }

    /** Variable and value, in the order they are set. */
    public static final Map<String, String> SAFETY;

    static {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("NCCL_NVLS_ENABLE", "0");
        m.put("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1");
        m.put("NVSHMEM_DISABLE_NVLS", "1");
        SAFETY = java.util.Collections.unmodifiableMap(m);
    }

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle SETENV = LINKER.downcallHandle(LINKER.defaultLookup().find("setenv").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle GETENV = LINKER.downcallHandle(LINKER.defaultLookup().find("getenv").orElseThrow(),
            FunctionDescriptor.of(ADDRESS, ADDRESS));
    private static boolean applied;

    /** Sets {@link #SAFETY} in the C environment, overwriting other values; once per process (later calls do nothing). */
    public static synchronized void apply() {
        if (applied) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            for (Map.Entry<String, String> e : SAFETY.entrySet()) {
                int rc = (int) SETENV.invokeExact(arena.allocateFrom(e.getKey()), arena.allocateFrom(e.getValue()), 1);
                if (rc != 0) {
                    throw new IllegalStateException("setenv(" + e.getKey() + "=" + e.getValue() + ") failed: NCCL must not start without it");
                }
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError("should not reach here", t);
        }
        applied = true;
    }

    /** The C environment's value of {@code name} (what NCCL would read), or null; Java's System.getenv is a copy taken at start-up. */
    public static String get(String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = (MemorySegment) GETENV.invokeExact(arena.allocateFrom(name));
            return v.equals(MemorySegment.NULL) ? null : v.reinterpret(Long.MAX_VALUE).getString(0);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError("should not reach here", t);
        }
    }
}

package dev.jtune.engine.backend;

import java.lang.foreign.MemorySegment;

/**
 * A storage whose bytes the host reads and writes in place: cpu memory, and host-mapped memory of any device. Host
 * code (the host-offloaded optimizer) works on such tensors without a copy; on a GPU it must order its accesses with
 * the device's work itself (synchronize before reading what a kernel wrote, and before a kernel reads what it wrote).
 */
public interface HostVisible {
    /** The whole storage as host memory; invalid once the storage is closed. */
    MemorySegment hostSegment();
}

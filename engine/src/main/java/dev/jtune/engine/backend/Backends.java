package dev.jtune.engine.backend;

import dev.jtune.engine.Device;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.cpu.CpuBackend;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.meta.MetaBackend;

import java.util.ArrayList;
import java.util.List;

/** Finds the backend of a device; cuda backends start on first use. */
public final class Backends {
    private Backends() {
    }

    public static Backend get(Device device) {
        return switch (device.kind()) {
            case CPU -> CpuBackend.instance();
            case META -> MetaBackend.instance();
            case CUDA -> CudaBackend.get(device.index());
        };
    }

    /** The backend of the device a tensor lives on. */
    public static Backend of(Tensor t) {
        return get(t.device());
    }

    /** cpu, then every CUDA device that can be used (none when no driver or GPU is found). */
    public static List<Device> available() {
        List<Device> out = new ArrayList<>();
        out.add(Device.CPU);
        for (int i = 0; i < CudaBackend.deviceCount(); i++) {
            out.add(Device.cuda(i));
        }
        return out;
    }
}

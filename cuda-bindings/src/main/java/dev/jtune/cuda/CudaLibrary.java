package dev.jtune.cuda;

import java.util.Locale;

/** The native libraries these bindings call, each found by {@link NativeLibraries}. */
public enum CudaLibrary {
    DRIVER("driver", "libcuda.so.1", "the CUDA driver",
            "install the NVIDIA driver (release 580 or newer, as CUDA 13 needs), which provides libcuda.so.1"),
    NVRTC("nvrtc", "libnvrtc.so.13", "NVRTC, the CUDA runtime compiler",
            "install the CUDA 13 toolkit (or its NVRTC redistributable)"),
    CUBLAS("cublas", "libcublas.so.13", "cuBLAS",
            "install the CUDA 13 toolkit (or its cuBLAS redistributable)"),
    CUBLAS_LT("cublaslt", "libcublasLt.so.13", "cuBLASLt",
            "install the CUDA 13 toolkit (or its cuBLAS redistributable, which includes cuBLASLt)"),
    NCCL("nccl", "libnccl.so.2", "NCCL, NVIDIA's collective communication library",
            "install NCCL 2 for CUDA 13 (the libnccl2 package, or the nvidia-nccl-cu13 wheel's library)");

    private final String key;
    private final String soname;
    private final String description;
    private final String installHint;

    CudaLibrary(String key, String soname, String description, String installHint) {
        this.key = key;
        this.soname = soname;
        this.description = description;
        this.installHint = installHint;
    }

    /** The name the dynamic loader knows it by, e.g. {@code libcuda.so.1}. */
    public String soname() {
        return soname;
    }

    /** Short name used in the property and variable names: driver, nvrtc, cublas, cublaslt, nccl. */
    public String key() {
        return key;
    }

    /** The system property naming an explicit file for it, e.g. {@code jtune.cuda.driver.path}. */
    public String propertyName() {
        return "jtune.cuda." + key + ".path";
    }

    /** The environment variable naming an explicit file for it, e.g. {@code JTUNE_CUDA_DRIVER_PATH}. */
    public String environmentVariable() {
        return "JTUNE_CUDA_" + key.toUpperCase(Locale.ROOT) + "_PATH";
    }

    /** What it is, for messages: "the CUDA driver". */
    public String description() {
        return description;
    }

    /** What to install when it is missing. */
    String installHint() {
        return installHint;
    }
}

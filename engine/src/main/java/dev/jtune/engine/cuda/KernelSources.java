package dev.jtune.engine.cuda;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Every kernel source's launch contract, one per {@code kernels/*.cu}. The build runs {@link #main} to write each
 * source's defines to {@code <file>.defines}, which {@code src/build/compile-kernels.sh} passes to nvcc, so the
 * build-time check compiles the sources exactly as NVRTC will.
 */
public final class KernelSources {
    static final List<KernelSource> ALL = List.of(
            ElementwiseKernels.SOURCE, ReduceKernels.SOURCE, NormKernels.SOURCE, ActivationKernels.SOURCE,
            EmbeddingKernels.SOURCE, LossKernels.SOURCE, LossKernels.CLUSTER_SOURCE, Nf4Kernels.SOURCE, OptimKernels.SOURCE, Adam8bitKernels.SOURCE, RopeKernels.SOURCE,
            SoftmaxKernels.SOURCE, FlashKernels.SOURCE, WgmmaKernels.SOURCE, FlashWgmmaKernels.SOURCE);

    private KernelSources() {
    }

    /** Writes {@code <file>.defines} ({@code NAME=value} lines) for every source into the directory {@code args[0]}. */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            throw new IllegalArgumentException("usage: KernelSources <output directory>");
        }
        Path dir = Files.createDirectories(Path.of(args[0]));
        for (KernelSource source : ALL) {
            Files.writeString(dir.resolve(source.file() + ".defines"), source.definesFile());
        }
    }
}

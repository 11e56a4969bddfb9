package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.EngineException;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backend;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.cuda.CudaBackend;

import java.io.PrintStream;
import java.util.List;
import java.util.Locale;

/**
 * jtune's command line. Until the trainer lands, running it with no arguments is a demo of the foundation: it
 * lists the devices found and runs a bf16 matrix product on every backend, checking each against the cpu.
 */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length > 0 && (args[0].equals("--help") || args[0].equals("-h"))) {
            out.println("""
                    usage: jtune [demo [--size N]]

                      demo        (default) list the devices found and run a bf16 N x N x N matmul on each backend,
                                  compared with the cpu result (N defaults to 512)
                      --help      this text

                    The trainer (HF TrainingArguments-style flags) is not built yet.""");
            return 0;
        }
        int size = 512;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "demo" -> { }
                case "--size" -> {
                    if (i + 1 >= args.length) {
                        err.println("jtune: --size needs a value");
                        return 2;
                    }
                    try {
                        size = Integer.parseInt(args[++i]);
                    } catch (NumberFormatException e) {
                        err.println("jtune: --size expects a positive integer, got '" + args[i] + "'");
                        return 2;
                    }
                    if (size <= 0) {
                        err.println("jtune: --size expects a positive integer, got " + size);
                        return 2;
                    }
                }
                default -> {
                    err.println("jtune: unknown argument '" + args[i] + "' (try --help)");
                    return 2;
                }
            }
        }
        try {
            demo(size, out);
            return 0;
        } catch (EngineException e) {
            err.println("jtune: " + e.getMessage());
            return 1;
        }
    }

    static void demo(int n, PrintStream out) {
        List<Device> devices = Backends.available();
        out.println("jtune devices:");
        for (Device d : devices) {
            out.println("  " + Backends.get(d).description());
        }
        if (CudaBackend.deviceCount() == 0) {
            out.println("  no GPU: " + CudaBackend.unavailableReason());
            out.println("  (running on the cpu backend only)");
        }
        out.printf(Locale.ROOT, "%nbf16 matmul [%d x %d] @ [%d x %d], fp32 accumulation:%n", n, n, n, n);
        try (Scope scope = Scope.open("demo")) {
            Tensor a = Tensor.randn(Shape.of(n, n), DType.BF16, Device.CPU, 1);
            Tensor b = Tensor.randn(Shape.of(n, n), DType.BF16, Device.CPU, 2);
            float[] reference = null;
            for (Device d : devices) {
                Backend backend = Backends.get(d);
                try (Scope run = Scope.open(d.toString())) {
                    Tensor da = a.to(d);
                    Tensor db = b.to(d);
                    da.matmul(db); // warm-up: kernel loading, cuBLASLt planning
                    backend.synchronize();
                    long t0 = System.nanoTime();
                    Tensor c = da.matmul(db);
                    backend.synchronize();
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    float[] values = c.toFloatArray();
                    if (reference == null) {
                        reference = values;
                    }
                    out.printf(Locale.ROOT, "  %-8s %9.3f ms  %10.1f GFLOP/s  relative difference to cpu %.2e%n", d,
                            seconds * 1e3, 2.0 * n * n * n / seconds / 1e9, relativeDifference(values, reference));
                }
            }
        }
    }

    static double relativeDifference(float[] x, float[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < x.length; i++) {
            double d = (double) x[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }
}

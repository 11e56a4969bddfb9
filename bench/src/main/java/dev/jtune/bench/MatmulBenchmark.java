package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * Engine matmul throughput (bf16 in, fp32 accumulation): ten back-to-back products then one synchronize per
 * invocation, so the host sync is amortized. Run on the GPU machine with {@code .device/jmh MatmulBenchmark}.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class MatmulBenchmark {
    private static final int PER_INVOCATION = 10;

    @Param({"cuda"})
    public String device;

    @Param({"8192"})
    public int n;

    private Scope scope;
    private Tensor a;
    private Tensor b;
    private Device dev;

    @Setup(Level.Trial)
    public void setUp() {
        dev = Device.parse(device);
        scope = Scope.open("bench");
        a = Tensor.randn(Shape.of(n, n), DType.BF16, dev, 1);
        b = Tensor.randn(Shape.of(n, n), DType.BF16, dev, 2);
        Backends.get(dev).synchronize();
    }

    @Benchmark
    @OperationsPerInvocation(PER_INVOCATION)
    public void matmul() {
        try (Scope step = Scope.open("step")) {
            for (int i = 0; i < PER_INVOCATION; i++) {
                a.matmul(b);
            }
            Backends.get(dev).synchronize();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        scope.close();
    }
}

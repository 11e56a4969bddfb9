package dev.jtune.bench;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Shape;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.backend.Backends;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.engine.quant.Nf4Tensor;
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
 * NF4 dequantization time for a Gemma 3 270M MLP projection (640 x 2048) and its embedding (262144 x 640), to BF16 or
 * F32, with plain or double-quantized scales: ten launches then one synchronize per invocation. Bytes moved are the
 * codes and scales read plus the output written ({@link #bytesMoved}); GB/s = bytes / time. It was a printed-only part
 * of CudaNf4Test (a timing in a unit test, and the slowest GPU test under compute-sanitizer). Run on the GPU machine
 * with {@code .device/jmh Nf4DequantBenchmark}.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class Nf4DequantBenchmark {
    private static final int PER_INVOCATION = 10;

    @Param({"640x2048", "262144x640"})
    public String shape;

    @Param({"DOUBLE_QUANTIZED", "FP32"})
    public Nf4Scales scales;

    @Param({"BF16", "F32"})
    public DType out;

    private Scope scope;
    private Nf4Tensor q;
    private Tensor target;

    @Setup(Level.Trial)
    public void setUp() {
        scope = Scope.open("nf4 bench");
        String[] dims = shape.split("x");
        Shape s = Shape.of(Long.parseLong(dims[0]), Long.parseLong(dims[1]));
        Device gpu = Device.cuda(0);
        q = Nf4.quantize(Tensor.normal(s, DType.BF16, gpu, 21, 0.0, 0.02), scales);
        target = Tensor.empty(s, out, gpu);
        System.out.printf("%n%s %s -> %s: %.1f MB moved per dequantization%n", shape, scales, out, bytesMoved(q, out) / 1e6);
        Backends.get(gpu).synchronize();
    }

    /** Codes and scales read, output written. */
    static long bytesMoved(Nf4Tensor q, DType out) {
        return q.storageBytes() + q.shape().numel() * out.byteSize();
    }

    @Benchmark
    @OperationsPerInvocation(PER_INVOCATION)
    public void dequantize() {
        for (int i = 0; i < PER_INVOCATION; i++) {
            Nf4.dequantizeInto(q, target);
        }
        Backends.get(Device.cuda(0)).synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        scope.close();
    }
}

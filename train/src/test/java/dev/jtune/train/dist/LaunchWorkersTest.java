package dev.jtune.train.dist;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Real worker processes (a small main standing in for the trainer): their variables, their logs, and a failure's reach. */
class LaunchWorkersTest {
    /** A worker: prints its place and the multicast switches, then exits with args[0] after args[1] ms (rank 0 only waits). */
    public static final class Worker {
        public static void main(String[] args) throws InterruptedException {
            System.out.println("worker RANK=" + System.getenv("RANK") + " LOCAL_RANK=" + System.getenv("LOCAL_RANK") + " WORLD_SIZE="
                    + System.getenv("WORLD_SIZE") + " MASTER_PORT=" + System.getenv("MASTER_PORT") + " NCCL_NVLS_ENABLE="
                    + System.getenv("NCCL_NVLS_ENABLE") + " NVSHMEM_DISABLE_NVLS=" + System.getenv("NVSHMEM_DISABLE_NVLS"));
            System.out.flush();
            boolean rank0 = "0".equals(System.getenv("RANK"));
            Thread.sleep(rank0 ? Long.parseLong(args[1]) : 0);
            System.exit(rank0 ? 0 : Integer.parseInt(args[0]));
        }
    }

    private static String log(Path dir, int rank) throws Exception {
        return Files.readString(dir.resolve("rank-" + rank + ".log"));
    }

    @Test
    void workersGetTheirPlacesAndLogs(@TempDir Path tmp) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Launcher.launch(new DistEnv.Layout(2, 1, 0, null, 29577), Worker.class, List.of("0", "0"), tmp.resolve("logs"),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(0, status, err.toString(StandardCharsets.UTF_8));
        assertTrue(log(tmp.resolve("logs"), 0).contains("worker RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 MASTER_PORT=29577 NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1"),
                log(tmp.resolve("logs"), 0));
        assertTrue(log(tmp.resolve("logs"), 1).contains("worker RANK=1 LOCAL_RANK=1 WORLD_SIZE=2"), log(tmp.resolve("logs"), 1));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("worker RANK=0"), "rank 0's output is echoed");
    }

    @Test
    void aFailedWorkerStopsTheOthers(@TempDir Path tmp) throws Exception {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        long t0 = System.nanoTime();
        // rank 1 fails at once with status 3; rank 0 would wait 5 minutes
        int status = Launcher.launch(new DistEnv.Layout(2, 1, 0, null, 29578), Worker.class, List.of("3", "300000"), tmp.resolve("logs"),
                new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertEquals(3, status);
        String message = err.toString(StandardCharsets.UTF_8);
        assertTrue(message.contains("rank 1 exited with status 3 (its log: " + tmp.resolve("logs").resolve("rank-1.log") + "); stopping the other ranks"), message);
        assertTrue(seconds < 60, "the waiting rank was stopped, not waited for: " + seconds + " s");
    }
}

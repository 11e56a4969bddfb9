package dev.jtune.train.dist;

import dev.jtune.cuda.NcclEnvironment;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code --nproc_per_node N}: starts this machine's N workers of a layout as processes of this JVM's own command (its
 * java, options and class path) running {@code mainClass} with the same arguments, each with torchrun's variables for
 * its place and {@link NcclEnvironment#SAFETY} (multicast off, even where this process's environment lacks it). Each
 * worker's output is appended to {@code logs/rank-R.log}; rank 0's is also copied to this process's output. When a worker
 * fails, the others are stopped (a worker that dies takes the others down, never a hang) and the launcher's status is
 * the first failure's, named with its log.
 */
public final class Launcher {
    /** How long stopped workers get to exit before they are killed. */
    private static final long GRACE_SECONDS = 10;

    private Launcher() {
    }

    /** A running worker. */
    private record Worker(DistEnv place, Process process, Path log) {
    }

    /**
     * Runs the layout's local workers to the end; returns 0 when every one succeeded, else the first failed worker's
     * exit status.
     */
    public static int launch(DistEnv.Layout layout, Class<?> mainClass, List<String> args, Path logDir, PrintStream out, PrintStream err) {
        try {
            Files.createDirectories(logDir);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot create the workers' log directory " + logDir + ": " + e.getMessage(), e);
        }
        List<Worker> workers = java.util.Collections.synchronizedList(new ArrayList<>());
        // a launcher stopped from outside (Ctrl-C, SIGTERM) takes its workers with it
        Thread stopper = Thread.ofPlatform().unstarted(() -> stopAll(List.copyOf(workers)));
        Runtime.getRuntime().addShutdownHook(stopper);
        try {
            for (int local = 0; local < layout.nprocPerNode(); local++) {
                DistEnv place = layout.worker(local);
                Path log = logDir.resolve("rank-" + place.rank() + ".log");
                ProcessBuilder pb = new ProcessBuilder(command(mainClass, args)).redirectErrorStream(true);
                Map<String, String> env = pb.environment();
                env.putAll(place.variables());
                env.putAll(NcclEnvironment.SAFETY);
                Process p = pb.start();
                Worker w = new Worker(place, p, log);
                workers.add(w);
                copy(p.getInputStream(), log, local == 0 ? out : null, "worker rank " + place.rank());
            }
            out.println("jtune: started ranks " + layout.worker(0).rank() + "-" + layout.worker(layout.nprocPerNode() - 1).rank() + " of "
                    + layout.worldSize() + " on this machine; logs in " + logDir);
            return waitAll(List.copyOf(workers), err);
        } catch (IOException e) {
            stopAll(List.copyOf(workers));
            throw new IllegalStateException("could not start a worker: " + e.getMessage(), e);
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(stopper);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running: it stops the workers
            }
        }
    }

    /** Waits for every worker; at the first failure, stops the rest and reports it. */
    private static int waitAll(List<Worker> workers, PrintStream err) {
        List<Worker> running = new ArrayList<>(workers);
        while (!running.isEmpty()) {
            for (java.util.Iterator<Worker> it = running.iterator(); it.hasNext(); ) {
                Worker w = it.next();
                if (w.process().isAlive()) {
                    continue;
                }
                it.remove();
                int status = w.process().exitValue();
                if (status != 0) {
                    err.println("jtune: rank " + w.place().rank() + " exited with status " + status + " (its log: " + w.log()
                            + "); stopping the other ranks");
                    stopAll(running);
                    return status;
                }
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                stopAll(running);
                return 130;
            }
        }
        return 0;
    }

    private static void stopAll(List<Worker> workers) {
        for (Worker w : workers) {
            w.process().descendants().forEach(ProcessHandle::destroy);
            w.process().destroy();
        }
        for (Worker w : workers) {
            try {
                if (!w.process().waitFor(GRACE_SECONDS, TimeUnit.SECONDS)) {
                    w.process().destroyForcibly();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                w.process().destroyForcibly();
            }
        }
    }

    /**
     * This JVM's command for {@code mainClass}: its java, its options (-D, --add-modules, ...), and its class path, or
     * its module path and the class's module when jtune runs as modules.
     */
    static List<String> command(Class<?> mainClass, List<String> args) {
        List<String> c = new ArrayList<>();
        c.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        c.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        String modulePath = System.getProperty("jdk.module.path");
        if (mainClass.getModule().isNamed() && modulePath != null) {
            c.addAll(List.of("--module-path", modulePath, "-m", mainClass.getModule().getName() + "/" + mainClass.getName()));
        } else {
            c.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass.getName()));
        }
        c.addAll(args);
        return c;
    }

    /** Copies a worker's output to its log (and to {@code echo}) on a daemon thread. */
    private static void copy(InputStream in, Path log, PrintStream echo, String name) throws IOException {
        // appended: a resumed run's workers add to the logs of the run they continue
        OutputStream file = Files.newOutputStream(log, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        Thread.ofPlatform().daemon().name(name + " output").start(() -> {
            byte[] buf = new byte[8192];
            try (in; file) {
                int n;
                while ((n = in.read(buf)) > 0) {
                    file.write(buf, 0, n);
                    file.flush();
                    if (echo != null) {
                        echo.write(buf, 0, n);
                        echo.flush();
                    }
                }
            } catch (IOException ignored) {
                // the worker is gone; its status tells the rest
            }
        });
    }
}

package dev.jtune.train.dist;

import dev.jtune.JtuneException;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Supplier;

/**
 * How the ranks of a world meet before NCCL can: rank 0 listens at {@code MASTER_ADDR:MASTER_PORT}, every other rank
 * connects (retrying until rank 0 is up) and says who it is; once all have come, rank 0 hands each the payload (NCCL's
 * unique id). Both sides are bounded by {@code timeout} ({@code --ddp_timeout}), and a failure says which ranks did not
 * come, or what did not match (another run's world size on the same port, a rank twice).
 */
public final class Rendezvous {
    private static final int MAGIC = 0x4a54524e; // "JTRN"
    private static final int VERSION = 1;

    private Rendezvous() {
    }

    /** A rendezvous that could not complete. */
    public static final class RendezvousException extends JtuneException {
        RendezvousException(String message, Throwable cause) {
            super(message, cause, "start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT (or --nnodes, "
                    + "--master_addr, --master_port), check that node 0 is reachable at that port, or raise --ddp_timeout");
        }
    }

    /** Rank 0 makes the payload and serves it; the others fetch it. Every rank gets the same bytes. */
    public static byte[] exchange(DistEnv env, Supplier<byte[]> make, Duration timeout) {
        if (!env.isDistributed()) {
            return make.get();
        }
        if (env.rank() == 0) {
            byte[] payload = make.get();
            serve(env, payload, timeout);
            return payload;
        }
        return join(env, timeout);
    }

    /** Rank 0: waits for every other rank, then gives each the payload. */
    public static void serve(DistEnv env, byte[] payload, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        String where = env.masterAddr() + ":" + env.masterPort();
        Map<Integer, Socket> peers = new TreeMap<>();
        try (ServerSocket server = new ServerSocket()) {
            server.setReuseAddress(true);
            try {
                server.bind(new InetSocketAddress(env.masterPort()));
            } catch (BindException e) {
                throw new RendezvousException("rank 0: cannot listen at port " + env.masterPort() + " (" + e.getMessage()
                        + "): another run may hold it; pick another MASTER_PORT / --master_port", e);
            }
            while (peers.size() < env.worldSize() - 1) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new RendezvousException("rank 0: " + missing(env, peers.keySet()) + " did not join at " + where + " within "
                            + seconds(timeout) + " (--ddp_timeout)", null);
                }
                server.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, left / 1_000_000)));
                Socket s;
                try {
                    s = server.accept();
                } catch (SocketTimeoutException e) {
                    continue;
                }
                s.setSoTimeout((int) Math.max(1000, Math.min(30_000, left / 1_000_000)));
                int rank = hello(s, env);
                if (peers.containsKey(rank)) {
                    refuse(s, "rank " + rank + " joined twice");
                    throw new RendezvousException("rank 0: rank " + rank + " joined twice at " + where, null);
                }
                peers.put(rank, s);
            }
            for (Socket s : peers.values()) {
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(0); // accepted
                out.writeInt(payload.length);
                out.write(payload);
                out.flush();
            }
        } catch (IOException e) {
            throw new RendezvousException("rank 0: the rendezvous at " + where + " failed: " + e.getMessage(), e);
        } finally {
            for (Socket s : peers.values()) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // the payload is sent or the run fails anyway
                }
            }
        }
    }

    /** Reads a peer's greeting; refuses (and throws) when it belongs to another world. */
    private static int hello(Socket s, DistEnv env) throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        int magic = in.readInt();
        int version = in.readInt();
        int world = in.readInt();
        int rank = in.readInt();
        if (magic != MAGIC || version != VERSION) {
            s.close();
            throw new RendezvousException("rank 0: something that is not a jtune rank of this version connected to port " + env.masterPort(), null);
        }
        if (world != env.worldSize() || rank <= 0 || rank >= env.worldSize()) {
            String why = "rank " + rank + " of a world of " + world + " came to rank 0 of a world of " + env.worldSize();
            refuse(s, why);
            throw new RendezvousException("rank 0: " + why + ": every rank needs the same WORLD_SIZE", null);
        }
        return rank;
    }

    private static void refuse(Socket s, String why) throws IOException {
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(1);
        out.writeUTF(why);
        out.flush();
        s.close();
    }

    private static String missing(DistEnv env, java.util.Set<Integer> came) {
        TreeSet<Integer> missing = new TreeSet<>();
        for (int r = 1; r < env.worldSize(); r++) {
            if (!came.contains(r)) {
                missing.add(r);
            }
        }
        List<String> names = new ArrayList<>();
        missing.forEach(r -> names.add(Integer.toString(r)));
        return (missing.size() == 1 ? "rank " : "ranks ") + String.join(", ", names);
    }

    /** A rank above 0: connects to rank 0 (retrying until it listens), says who it is, and reads the payload. */
    public static byte[] join(DistEnv env, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        String where = env.masterAddr() + ":" + env.masterPort();
        IOException last = null;
        while (System.nanoTime() < deadline) {
            long left = deadline - System.nanoTime();
            boolean connected = false;
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(env.masterAddr(), env.masterPort()), (int) Math.max(1, Math.min(5_000, left / 1_000_000)));
                if (s.getLocalPort() == s.getPort() && s.getLocalAddress().equals(s.getInetAddress())) {
                    // TCP's simultaneous open: with nothing listening, the kernel may give the socket the very port it
                    // dials (an ephemeral one), and it connects to itself; that is not rank 0
                    throw new java.net.ConnectException("connected to itself: nothing listens at " + where);
                }
                connected = true;
                s.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, (deadline - System.nanoTime()) / 1_000_000)));
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(MAGIC);
                out.writeInt(VERSION);
                out.writeInt(env.worldSize());
                out.writeInt(env.rank());
                out.flush();
                DataInputStream in = new DataInputStream(s.getInputStream());
                if (in.readInt() != 0) {
                    throw new RendezvousException("rank " + env.rank() + ": rank 0 at " + where + " refused: " + in.readUTF(), null);
                }
                byte[] payload = new byte[in.readInt()];
                in.readFully(payload);
                return payload;
            } catch (SocketTimeoutException e) {
                if (!connected) { // the connect itself timed out (near the deadline its timeout is a few ms): not there yet
                    last = e;
                    continue;
                }
                throw new RendezvousException("rank " + env.rank() + ": rank 0 at " + where + " did not hand out the id within "
                        + seconds(timeout) + " (--ddp_timeout): some other rank did not come", e);
            } catch (IOException e) {
                if (connected) { // rank 0 was there and hung up: it failed (its log says why)
                    throw new RendezvousException("rank " + env.rank() + ": rank 0 at " + where + " closed the connection before handing out "
                            + "the id (" + e + "): see rank 0's log", e);
                }
                last = e; // rank 0 is not listening yet
                sleep(Math.min(200, Math.max(1, (deadline - System.nanoTime()) / 1_000_000)));
            }
        }
        throw new RendezvousException("rank " + env.rank() + ": could not reach rank 0 at " + where + " within " + seconds(timeout)
                + " (--ddp_timeout)" + (last == null ? "" : ": " + last.getMessage()), last);
    }

    private static String seconds(Duration d) {
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : String.format(java.util.Locale.ROOT, "%.1f s", d.toMillis() / 1000.0);
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RendezvousException("interrupted while waiting for rank 0", e);
        }
    }
}

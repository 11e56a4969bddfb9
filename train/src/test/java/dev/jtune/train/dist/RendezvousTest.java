package dev.jtune.train.dist;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ExecutionException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Ranks meet at rank 0 over TCP on this machine (threads for processes): the id reaches all, or the failure is named. */
class RendezvousTest {
    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static DistEnv at(int rank, int world, int port) {
        return new DistEnv(rank, world, rank, world, "127.0.0.1", port);
    }

    @Test
    void everyRankGetsRankZerosBytesWhateverTheOrderTheyStartIn() throws Exception {
        int port = freePort();
        byte[] id = new byte[128];
        new Random(7).nextBytes(id);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<byte[]>> got = new ArrayList<>();
            for (int r = 3; r >= 0; r--) { // the others first: they retry until rank 0 listens
                int rank = r;
                got.add(pool.submit(() -> Rendezvous.exchange(at(rank, 4, port), id::clone, Duration.ofSeconds(20))));
                Thread.sleep(50);
            }
            for (Future<byte[]> f : got) {
                assertArrayEquals(id, f.get());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aRankThatNeverComesIsNamedOnRankZero() throws Exception {
        int port = freePort();
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            // rank 1 retries every 200 ms at most, so it is in well within rank 0's 3 s even on a loaded machine
            Future<byte[]> one = pool.submit(() -> Rendezvous.join(at(1, 3, port), Duration.ofSeconds(10)));
            Rendezvous.RendezvousException e = assertThrows(Rendezvous.RendezvousException.class,
                    () -> Rendezvous.serve(at(0, 3, port), new byte[] {1}, Duration.ofSeconds(3)));
            assertTrue(e.getMessage().startsWith("rank 0: rank 2 did not join at 127.0.0.1:" + port + " within 3 s (--ddp_timeout)"), e.getMessage());
            ExecutionException x = assertThrows(ExecutionException.class, one::get); // rank 1 loses rank 0 (closed) and gives up
            assertInstanceOf(Rendezvous.RendezvousException.class, x.getCause());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void noRankZeroTimesOut() throws Exception {
        // a port held bound but not listening for the whole test: a free port merely released could be taken by another
        // process's listener meanwhile (seen on CI, where the join then waited on a stranger), or dialled by the join itself
        try (java.net.Socket holder = new java.net.Socket()) {
            holder.bind(new java.net.InetSocketAddress("127.0.0.1", 0));
            int port = holder.getLocalPort();
            Rendezvous.RendezvousException e = assertThrows(Rendezvous.RendezvousException.class,
                    () -> Rendezvous.join(at(1, 2, port), Duration.ofMillis(600)));
            assertTrue(e.getMessage().startsWith("rank 1: could not reach rank 0 at 127.0.0.1:" + port), e.getMessage());
            assertTrue(e.hint().orElseThrow().contains("MASTER_PORT"), e.hint().orElseThrow());
        }
    }

    @Test
    void anotherWorldSizeIsRefusedOnBothSides() throws Exception {
        int port = freePort();
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<byte[]> stranger = pool.submit(() -> Rendezvous.join(at(1, 3, port), Duration.ofSeconds(10)));
            Rendezvous.RendezvousException e = assertThrows(Rendezvous.RendezvousException.class,
                    () -> Rendezvous.serve(at(0, 2, port), new byte[] {1}, Duration.ofSeconds(10)));
            assertTrue(e.getMessage().contains("rank 1 of a world of 3 came to rank 0 of a world of 2"), e.getMessage());
            ExecutionException x = assertThrows(ExecutionException.class, stranger::get);
            assertTrue(x.getCause().getMessage().contains("refused: rank 1 of a world of 3"), x.getCause().getMessage());
        } finally {
            pool.shutdownNow();
        }
    }
}

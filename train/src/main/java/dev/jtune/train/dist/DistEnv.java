package dev.jtune.train.dist;

import java.util.Map;
import java.util.function.Function;

/**
 * Where this process stands in a data-parallel run, by torchrun's conventions: {@code RANK}, {@code WORLD_SIZE},
 * {@code LOCAL_RANK}, {@code LOCAL_WORLD_SIZE}, {@code MASTER_ADDR}, {@code MASTER_PORT} in the environment (a worker
 * that jtune's launcher, torchrun or a cluster's launcher started), or else the launcher's own flags
 * ({@code --nproc_per_node}, {@code --nnodes}, {@code --node_rank}, {@code --master_addr}, {@code --master_port}), from
 * which {@link #worker(int)} derives each local worker's. {@code LOCAL_RANK} picks the GPU. Rank 0 serves the
 * rendezvous at {@code masterAddr:masterPort}.
 */
public record DistEnv(int rank, int worldSize, int localRank, int localWorldSize, String masterAddr, int masterPort) {
    /** torchrun's default port. */
    public static final int DEFAULT_PORT = 29500;
    public static final String DEFAULT_ADDR = "127.0.0.1";

    public DistEnv {
        if (worldSize < 1 || rank < 0 || rank >= worldSize || localWorldSize < 1 || localRank < 0 || localRank >= localWorldSize
                || localWorldSize > worldSize) {
            throw new IllegalArgumentException("rank " + rank + " of " + worldSize + ", local rank " + localRank + " of " + localWorldSize
                    + ": not a consistent place in a world");
        }
        if (masterPort < 1 || masterPort > 65535) {
            throw new IllegalArgumentException("MASTER_PORT " + masterPort + " is not a TCP port");
        }
        if (masterAddr == null || masterAddr.isBlank()) {
            throw new IllegalArgumentException("MASTER_ADDR is empty");
        }
    }

    /** One process alone: a world of one. */
    public static final DistEnv SINGLE = new DistEnv(0, 1, 0, 1, DEFAULT_ADDR, DEFAULT_PORT);

    public boolean isDistributed() {
        return worldSize > 1;
    }

    /**
     * The environment's place, when it names one ({@code WORLD_SIZE} set): a worker. Every variable is checked and a
     * bad one named; {@code LOCAL_RANK} defaults to {@code RANK} and {@code LOCAL_WORLD_SIZE} to {@code WORLD_SIZE} (one
     * machine), {@code MASTER_ADDR}/{@code MASTER_PORT} to torchrun's defaults.
     */
    public static java.util.Optional<DistEnv> fromEnvironment(Function<String, String> env) {
        String world = env.apply("WORLD_SIZE");
        if (world == null || world.isBlank()) {
            return java.util.Optional.empty();
        }
        int size = number(env, "WORLD_SIZE", null);
        int rank = number(env, "RANK", null);
        int localRank = number(env, "LOCAL_RANK", rank);
        int localSize = number(env, "LOCAL_WORLD_SIZE", size);
        String addr = env.apply("MASTER_ADDR");
        int port = number(env, "MASTER_PORT", DEFAULT_PORT);
        return java.util.Optional.of(new DistEnv(rank, size, localRank, localSize, addr == null || addr.isBlank() ? DEFAULT_ADDR : addr, port));
    }

    private static int number(Function<String, String> env, String name, Integer fallback) {
        String v = env.apply(name);
        if (v == null || v.isBlank()) {
            if (fallback == null) {
                throw new IllegalArgumentException(name + " is not set, but WORLD_SIZE is: a worker needs both (torchrun's variables)");
            }
            return fallback;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + "=" + v + " is not a number");
        }
    }

    /**
     * A launcher's layout: {@code nprocPerNode} workers on each of {@code nnodes} machines, this one being
     * {@code nodeRank}; rank = nodeRank x nprocPerNode + localRank, as torchrun numbers them.
     */
    public record Layout(int nprocPerNode, int nnodes, int nodeRank, String masterAddr, int masterPort) {
        public Layout {
            if (nprocPerNode < 1 || nnodes < 1 || nodeRank < 0 || nodeRank >= nnodes) {
                throw new IllegalArgumentException("--nproc_per_node " + nprocPerNode + ", --nnodes " + nnodes + ", --node_rank " + nodeRank
                        + ": need at least one process on at least one node, and a node rank below --nnodes");
            }
            if (nnodes > 1 && (masterAddr == null || masterAddr.isBlank())) {
                throw new IllegalArgumentException("--nnodes " + nnodes + " needs --master_addr: the address of node 0, where rank 0 waits for the others");
            }
        }

        public int worldSize() {
            return nprocPerNode * nnodes;
        }

        /** Local worker {@code localRank}'s place. */
        public DistEnv worker(int localRank) {
            return new DistEnv(nodeRank * nprocPerNode + localRank, worldSize(), localRank, nprocPerNode,
                    masterAddr == null || masterAddr.isBlank() ? DEFAULT_ADDR : masterAddr, masterPort);
        }
    }

    /** The variables a worker at this place is started with (torchrun's names). */
    public Map<String, String> variables() {
        return Map.of("RANK", Integer.toString(rank), "WORLD_SIZE", Integer.toString(worldSize), "LOCAL_RANK", Integer.toString(localRank),
                "LOCAL_WORLD_SIZE", Integer.toString(localWorldSize), "MASTER_ADDR", masterAddr, "MASTER_PORT", Integer.toString(masterPort));
    }
}

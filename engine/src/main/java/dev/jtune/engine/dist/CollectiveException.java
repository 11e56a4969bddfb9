package dev.jtune.engine.dist;

import dev.jtune.JtuneException;

/**
 * A collective failed or timed out: the message names the rank, the operation and the reason (NCCL's, or the peer
 * that went away). The world is aborted when this is thrown; a run cannot continue on it.
 */
public final class CollectiveException extends JtuneException {
    public CollectiveException(String message, Throwable cause) {
        super(message, cause, "check every rank's log (the first error is usually on another rank), the network between "
                + "the machines, and --ddp_timeout");
    }
}

package dev.jtune.gemma.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.zip.GZIPInputStream;

/**
 * Inflates a gzip stream on a background daemon thread while the caller reads, so decompression overlaps JSON
 * parsing. Chunks of {@value #CHUNK} bytes travel through a bounded queue; an error on the inflating side is
 * rethrown to the reader. Closing this stream does not close the compressed one.
 */
final class GunzipPipe extends InputStream {
    private static final int CHUNK = 1 << 18;
    private static final byte[] END = new byte[0];

    private final BlockingQueue<Object> queue = new ArrayBlockingQueue<>(16);
    private final BlockingQueue<byte[]> free = new ArrayBlockingQueue<>(18); // chunks handed back for reuse
    private final Thread thread;
    private byte[] current = new byte[0];
    private int pos;
    private int limit;
    private boolean done;
    private volatile boolean closed;

    GunzipPipe(InputStream compressed) {
        thread = new Thread(() -> pump(compressed), "jtune-tokenizer-gunzip");
        thread.setDaemon(true);
        thread.start();
    }

    private void pump(InputStream compressed) {
        InputStream notClosing = new java.io.FilterInputStream(compressed) {
            @Override
            public void close() {
            }
        };
        try (GZIPInputStream in = new GZIPInputStream(notClosing, 1 << 16)) {
            while (!closed) {
                byte[] chunk = free.poll();
                if (chunk == null) {
                    chunk = new byte[CHUNK];
                }
                int n = in.readNBytes(chunk, 0, CHUNK);
                if (n == 0) {
                    break;
                }
                queue.put(n == CHUNK ? chunk : java.util.Arrays.copyOf(chunk, n));
                if (n < CHUNK) {
                    break;
                }
            }
            queue.put(END);
        } catch (IOException | RuntimeException e) {
            offer(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void offer(Exception e) {
        try {
            queue.put(e);
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
        }
    }

    private boolean fill() throws IOException {
        if (done) {
            return false;
        }
        Object o;
        try {
            o = queue.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while inflating", e);
        }
        if (o instanceof IOException e) {
            done = true;
            throw new IOException(e.getMessage(), e);
        }
        if (o instanceof RuntimeException e) {
            done = true;
            throw e;
        }
        byte[] b = (byte[]) o;
        if (b == END) {
            done = true;
            return false;
        }
        if (current.length == CHUNK) {
            free.offer(current); // fully read: the inflater may refill it
        }
        current = b;
        pos = 0;
        limit = b.length;
        return true;
    }

    @Override
    public int read() throws IOException {
        if (pos == limit && !fill()) {
            return -1;
        }
        return current[pos++] & 0xFF;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        if (len == 0) {
            return 0;
        }
        if (pos == limit && !fill()) {
            return -1;
        }
        int n = Math.min(len, limit - pos);
        System.arraycopy(current, pos, b, off, n);
        pos += n;
        return n;
    }

    @Override
    public void close() {
        closed = true;
        queue.clear(); // unblocks the inflater if it waits on a full queue; it then sees closed
    }
}

package org.sparkrlhf.jobs.executor;

import org.sparkrlhf.gpuexec.parallel.Collective;

import java.io.Serializable;

/**
 * How a call's ranks talk to each other, read on the driver from the Spark conf and carried to the
 * ranks in their task closure: the deadline of every receive, NCCL wait and rendezvous
 * ({@value #TIMEOUT}), the largest frame a rank accepts ({@value #MAX_FRAME_BYTES}), whether
 * the TCP mesh's frames are encrypted (with Spark's {@value #NETWORK_CRYPTO}; see {@link FrameCipher}),
 * and the chunk that tensor collectives, gradient buckets and reallocation messages move in at most
 * ({@value #CHUNK_BYTES}; see {@link Collective#chunkBytes}).
 */
public record CommSettings(long timeoutMillis, int maxFrameBytes, boolean encrypted, int chunkBytes)
        implements Serializable {
    public static final String TIMEOUT = "spark.rlhf.comm.timeoutMs";
    public static final String MAX_FRAME_BYTES = "spark.rlhf.comm.maxFrameBytes";
    public static final String CHUNK_BYTES = "spark.rlhf.comm.chunkBytes";
    /** Spark's switch for encrypting its own RPC and block transfers; the rank transport follows it. */
    public static final String NETWORK_CRYPTO = "spark.network.crypto.enabled";
    /**
     * The frame limit unless configured: a length above it (a corrupt stream, a peer gone wrong)
     * fails the connection before anything is allocated. 1 GiB, far above the messages of the
     * models this runs (a piece of a reallocation, a gathered gradient bucket).
     */
    public static final int DEFAULT_MAX_FRAME_BYTES = 1 << 30;
    /**
     * The largest configurable limit: a frame is one Java array, which the JVM caps a few bytes
     * under Integer.MAX_VALUE, and an encrypted frame carries GCM tags on top of its bytes.
     */
    public static final int MAX_FRAME_LIMIT = Integer.MAX_VALUE - 8 - FrameCipher.MAX_OVERHEAD;

    public CommSettings {
        if (timeoutMillis <= 0) {
            throw new IllegalArgumentException(TIMEOUT + " must be positive, not " + timeoutMillis);
        }
        if (maxFrameBytes <= 0 || maxFrameBytes > MAX_FRAME_LIMIT) {
            throw new IllegalArgumentException(MAX_FRAME_BYTES + " must be between 1 and " + MAX_FRAME_LIMIT
                    + " bytes, not " + maxFrameBytes);
        }
        // over TCP a chunk is one frame
        if (chunkBytes < Float.BYTES || chunkBytes > maxFrameBytes) {
            throw new IllegalArgumentException(CHUNK_BYTES + " must be between " + Float.BYTES + " and the frame limit "
                    + maxFrameBytes + " bytes (" + MAX_FRAME_BYTES + "), not " + chunkBytes);
        }
    }

    /** The default chunk ({@link Collective#DEFAULT_CHUNK_BYTES}), or less where frames are smaller. */
    public CommSettings(long timeoutMillis, int maxFrameBytes, boolean encrypted) {
        this(timeoutMillis, maxFrameBytes, encrypted, defaultChunk(maxFrameBytes));
    }

    private static int defaultChunk(int maxFrameBytes) {
        return (int) Math.min(Collective.DEFAULT_CHUNK_BYTES, maxFrameBytes & ~(Float.BYTES - 1));
    }

    /** Clear frames up to {@link #DEFAULT_MAX_FRAME_BYTES}, with the given deadline. */
    public static CommSettings of(long timeoutMillis) {
        return new CommSettings(timeoutMillis, DEFAULT_MAX_FRAME_BYTES, false);
    }

    /** These settings with tensor collectives and messages moved in chunks of {@code bytes}. */
    public CommSettings withChunkBytes(int bytes) {
        return new CommSettings(timeoutMillis, maxFrameBytes, encrypted, bytes);
    }

    /**
     * The settings from the conf's values ({@code null}: not set): an IllegalArgumentException naming
     * the setting when a value is not a number or out of range.
     */
    public static CommSettings parse(long timeoutMillis, String maxFrameBytes, String chunkBytes, boolean encrypted) {
        int frame = DEFAULT_MAX_FRAME_BYTES;
        if (maxFrameBytes != null) {
            long parsed;
            try {
                parsed = Long.parseLong(maxFrameBytes.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(MAX_FRAME_BYTES + " must be a number of bytes, not '" + maxFrameBytes + "'");
            }
            if (parsed <= 0 || parsed > MAX_FRAME_LIMIT) {
                throw new IllegalArgumentException(MAX_FRAME_BYTES + " must be between 1 and " + MAX_FRAME_LIMIT
                        + " bytes, not " + maxFrameBytes.trim());
            }
            frame = (int) parsed;
        }
        if (chunkBytes == null) {
            return new CommSettings(timeoutMillis, frame, encrypted);
        }
        long chunk;
        try {
            chunk = Long.parseLong(chunkBytes.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(CHUNK_BYTES + " must be a number of bytes, not '" + chunkBytes + "'");
        }
        if (chunk < Float.BYTES || chunk > frame) {
            throw new IllegalArgumentException(CHUNK_BYTES + " must be between " + Float.BYTES + " and the frame limit "
                    + frame + " bytes (" + MAX_FRAME_BYTES + "), not " + chunkBytes.trim());
        }
        return new CommSettings(timeoutMillis, frame, encrypted, (int) chunk);
    }
}

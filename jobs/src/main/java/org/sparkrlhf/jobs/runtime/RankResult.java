package org.sparkrlhf.jobs.runtime;

import java.io.Serializable;

/** What one rank of a call returned, with where it actually ran (the driver tracks shard locations by it). */
public record RankResult<R>(int rank, String executorId, String host, String gpuAddress, R value)
        implements Serializable {
}

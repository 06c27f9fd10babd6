package org.sparkrlhf.gpuexec.profile;

import java.util.List;

/**
 * What the profiler measured: the table rows (tp = 1 only). What a decoding step spends beyond its
 * decoder layers (the head at the decode batch, sampling, the stop check's host sync) is in the
 * {@code head_decode} rows, per decode batch.
 */
public record EngineProfile(List<ProfileRow> rows) {
    public EngineProfile {
        rows = List.copyOf(rows);
    }
}

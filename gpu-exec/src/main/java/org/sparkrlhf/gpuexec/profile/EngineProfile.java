package org.sparkrlhf.gpuexec.profile;

import java.util.List;

/**
 * What the profiler measured: the table rows (tp = 1 only) and the part of a decoding step that is
 * not a decoder layer (the head at the decode batch, sampling, the stop check's host sync), which the
 * planner's per-step decoding overhead stands for.
 */
public record EngineProfile(List<ProfileRow> rows, double decodeStepSeconds) {
    public EngineProfile {
        rows = List.copyOf(rows);
    }
}

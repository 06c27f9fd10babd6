package org.sparkrlhf.gpuexec.profile;

/**
 * How a profiler keeps step with the other devices that profile at the same time. A call's ranks run
 * side by side, and on a CPU executor its slots share one pool of cores: a pass is only timed as a call
 * runs it when every device runs the same pass at the same moment. Left to themselves the profiling
 * tasks drift apart (each picks its own loop counts from its own warm-up), and a pass that ran while
 * the other device waited or ran something lighter came out faster: the GRPO example's scoring forward
 * over 256 rows of 8 tokens was profiled at 38 ms per rank where its calls took 50-90 ms. A timed
 * block also ends with a barrier: it lasts until the slowest device is done, as a call or a
 * data-parallel step does.
 */
public interface Lockstep {
    /** A device that profiles alone. */
    Lockstep ALONE = new Lockstep() {
        @Override
        public void barrier() {
        }

        @Override
        public int max(int value) {
            return value;
        }
    };

    /** Returns once every device has called it. */
    void barrier();

    /** The largest of the devices' {@code value}s (every device calls it). */
    int max(int value);
}

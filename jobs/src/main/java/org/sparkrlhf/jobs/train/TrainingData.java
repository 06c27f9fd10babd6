package org.sparkrlhf.jobs.train;

import org.sparkrlhf.jobs.graph.Keys;

import java.util.List;

/** A run's training rows, read and tokenized on the driver; the data order picks which rows each iteration gets. */
public interface TrainingData {
    /** Rows to train on (the data order's size). */
    int size();

    /** Writes the graph's dataset keys of rows {@code picked} (in this order) into the iteration's batch. */
    void batch(List<Integer> picked, Keys keys);

    /** One line for the run's log: what was read, how many rows, how many held out. */
    String describe();
}

package org.sparkrlhf.jobs.executor;

import java.io.Serializable;

/** The work of one rank of a model function call: its slice of the call's input in, its rows out. */
@FunctionalInterface
public interface RankFunction<I, R> extends Serializable {
    R apply(RankContext context, I input) throws Exception;
}

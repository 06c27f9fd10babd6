package org.sparkrlhf.jobs.executor;

/**
 * How the ranks of a call learn each other's addresses: every rank contributes one string and
 * gets all of them back, indexed by rank. In a barrier stage this is
 * {@code BarrierTaskContext.allGather}, as NCCL's unique id is exchanged.
 */
@FunctionalInterface
public interface Rendezvous {
    String[] allGather(String mine);
}

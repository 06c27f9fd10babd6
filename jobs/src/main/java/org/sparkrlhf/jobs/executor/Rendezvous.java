package org.sparkrlhf.jobs.executor;

/**
 * How the ranks of a call learn each other's addresses: every rank contributes one string and
 * gets all of them back, indexed by rank; all ranks call it the same number of times. In a call
 * run by {@code BarrierCallRunner} this is the driver's rendezvous
 * ({@code org.sparkrlhf.jobs.rendezvous.RendezvousClient}), not Spark's barrier RPC.
 */
@FunctionalInterface
public interface Rendezvous {
    String[] allGather(String mine);
}

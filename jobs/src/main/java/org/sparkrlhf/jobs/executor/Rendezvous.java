package org.sparkrlhf.jobs.executor;

/**
 * How the ranks of a call learn each other's addresses: every rank contributes one string and
 * gets all of them back, indexed by rank; all ranks call it the same number of times. In a call
 * run by {@code BarrierCallRunner} this is the driver's rendezvous
 * ({@code org.sparkrlhf.jobs.rendezvous.RendezvousClient}), not Spark's barrier RPC.
 *
 * <p>It also carries the run's {@link RunSecret}, which the ranks it brings together prove to each
 * other when they connect ({@link PeerHandshake}).
 */
public interface Rendezvous {
    String[] allGather(String mine);

    /** The secret of the run whose ranks meet here. */
    RunSecret secret();
}

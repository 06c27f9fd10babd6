package org.sparkrlhf.gpuexec.parallel;

import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionService;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * Runs the dp x tp x pp ranks of one call mesh as threads, each with its own one-thread CPU
 * backend and its tensor, pipeline and data groups (in-process).
 */
final class Ranks {
    private Ranks() {
    }

    /** One rank: its backend, shard, data rank and groups. */
    record Rank(CpuBackend backend, ShardSpec shard, int dataRank, Collective tpGroup, Collective ppGroup, Collective dpGroup) {
    }

    interface Body<R> {
        R run(CpuBackend backend, ShardSpec shard, Collective tpGroup, Collective ppGroup);
    }

    interface MeshBody<R> {
        R run(Rank rank);
    }

    /** The results of every rank of a tp x pp group, indexed by local rank (tensor rank r % tp, stage r / tp). */
    static <R> List<R> run(int tp, int pp, Body<R> body) {
        return run(1, tp, pp, r -> body.run(r.backend(), r.shard(), r.tpGroup(), r.ppGroup()));
    }

    /** The results of every rank of a dp x tp x pp mesh, indexed by local rank (the planner's numbering). */
    static <R> List<R> run(int dp, int tp, int pp, MeshBody<R> body) {
        int n = dp * tp * pp;
        InProcessGroup[][] tpGroups = new InProcessGroup[dp][pp];
        InProcessGroup[][] ppGroups = new InProcessGroup[dp][tp];
        InProcessGroup[][] dpGroups = new InProcessGroup[tp][pp];
        for (int d = 0; d < dp; d++) for (int s = 0; s < pp; s++) tpGroups[d][s] = new InProcessGroup(tp);
        for (int d = 0; d < dp; d++) for (int t = 0; t < tp; t++) ppGroups[d][t] = new InProcessGroup(pp);
        for (int t = 0; t < tp; t++) for (int s = 0; s < pp; s++) dpGroups[t][s] = new InProcessGroup(dp);
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            CompletionService<R> done = new ExecutorCompletionService<>(pool);
            List<Future<R>> futures = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                ShardSpec spec = ShardSpec.ofLocalRank(r, dp, tp, pp);
                int d = ShardSpec.dataRankOf(r, dp, tp), t = spec.tpRank(), s = spec.stage();
                Collective tpc = tpGroups[d][s].member(t), ppc = ppGroups[d][t].member(s), dpc = dpGroups[t][s].member(d);
                futures.add(done.submit(() -> {
                    try (CpuBackend backend = new CpuBackend(1)) {
                        return body.run(new Rank(backend, spec, d, tpc, ppc, dpc));
                    }
                }));
            }
            // the first failure is reported at once (the others' waits are then interrupted)
            for (int i = 0; i < n; i++) {
                Future<R> f = done.poll(300, TimeUnit.SECONDS);
                if (f == null) throw new IllegalStateException("ranks still running after 300 s");
                f.get();
            }
            List<R> out = new ArrayList<>();
            for (Future<R> f : futures) out.add(f.get());
            return out;
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException re) throw re;
            if (c instanceof Error er) throw er;
            throw new IllegalStateException(c);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        } finally {
            pool.shutdownNow();
        }
    }
}

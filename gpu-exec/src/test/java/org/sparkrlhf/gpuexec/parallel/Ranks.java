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

/** Runs the tp x pp ranks of one model-parallel group as threads, each with its own one-thread CPU backend. */
final class Ranks {
    private Ranks() {
    }

    interface Body<R> {
        R run(CpuBackend backend, ShardSpec shard, Collective tpGroup, Collective ppGroup);
    }

    /** The results of every rank, indexed by local rank (tensor rank r % tp, stage r / tp). */
    static <R> List<R> run(int tp, int pp, Body<R> body) {
        int n = tp * pp;
        InProcessGroup[] tpGroups = new InProcessGroup[pp];
        for (int s = 0; s < pp; s++) tpGroups[s] = new InProcessGroup(tp);
        InProcessGroup[] ppGroups = new InProcessGroup[tp];
        for (int t = 0; t < tp; t++) ppGroups[t] = new InProcessGroup(pp);
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            CompletionService<R> done = new ExecutorCompletionService<>(pool);
            List<Future<R>> futures = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                ShardSpec spec = ShardSpec.ofLocalRank(r, 1, tp, pp);
                Collective tpc = tpGroups[spec.stage()].member(spec.tpRank());
                Collective ppc = ppGroups[spec.tpRank()].member(spec.stage());
                futures.add(done.submit(() -> {
                    try (CpuBackend backend = new CpuBackend(1)) {
                        return body.run(backend, spec, tpc, ppc);
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

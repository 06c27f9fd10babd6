package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;
import org.sparkrlhf.jobs.plan.Placement;
import org.sparkrlhf.jobs.runtime.DeviceSlot;
import org.sparkrlhf.jobs.testing.InMemoryRendezvous;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Preference pairs on the tiny fixture models for the preference calls' tests (no Spark): rows 2i
 * and 2i + 1 are pair i's chosen and rejected response to the same prompt; ranks of a call run as
 * threads of this JVM.
 */
final class PreferencePairsFixture {
    static final Path FIXTURES = Path.of("../gpu-exec/src/test/resources/fixtures").toAbsolutePath().normalize();
    static final Path TINY_LLAMA = FIXTURES.resolve("tiny-llama");
    static final Path TINY_REWARD = FIXTURES.resolve("tiny-llama-reward");
    static final int PAD = 0;
    static final RunConfig.OptimizerConfig OPTIMIZER = new RunConfig.OptimizerConfig(1e-3, 0.9, 0.95, 1e-8, 0.0, 0.0, 0);

    static final int[][] PROMPTS = {
            {1, 40, 41, 42}, {1, 40, 41, 42},
            {1, 50, 51}, {1, 50, 51},
            {1, 60, 61, 62, 63}, {1, 60, 61, 62, 63},
            {1, 45}, {1, 45}};
    static final int[][] RESPONSES = {
            {70, 71, 2}, {80, 81, 82, 2},
            {90, 2}, {91, 92, 93},
            {100, 101, 102, 2}, {110, 2},
            {120, 121, 2}, {130, 131, 2}};

    private PreferencePairsFixture() {
    }

    /** One rank of a call without a placement (data parallel over its {@code world} ranks). */
    static RankContext context(String call, int rank, int world, InMemoryRendezvous rendezvous) {
        return new RankContext(call, rank, world, "driver", "127.0.0.1", null,
                rendezvous == null ? null : rendezvous.forRank(rank), 20_000);
    }

    /** The only rank of a call on one device that the plan gives {@code microBatches} micro-batches. */
    static RankContext placed(String call, int microBatches) {
        return new RankContext(call, 0, 1, "driver", "127.0.0.1", null, null, 20_000, mesh(call, 1, 1, 1, microBatches));
    }

    /** A placement on devices 0 .. dp * tp * pp - 1 of this JVM. */
    static Placement mesh(String call, int dp, int tp, int pp, int microBatches) {
        List<DeviceSlot> devices = new ArrayList<>();
        for (int i = 0; i < dp * tp * pp; i++) {
            devices.add(new DeviceSlot(i, 0, "127.0.0.1", "driver", "", false));
        }
        return new Placement(call, "", devices, dp, tp, pp, microBatches);
    }

    /** Runs {@code function} on {@code slices.size()} ranks at once, each rank a thread; the results in rank order. */
    static <S, R> List<R> onRanks(String call, List<S> slices, RankFunction<S, R> function) throws Exception {
        return onRanks(call, null, slices, function);
    }

    /** {@link #onRanks(String, List, RankFunction)} on a placement of one device per rank ({@link #mesh}). */
    static <S, R> List<R> onRanks(String call, Placement at, List<S> slices, RankFunction<S, R> function)
            throws Exception {
        int n = slices.size();
        InMemoryRendezvous rendezvous = new InMemoryRendezvous(n);
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<R>> futures = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (RankContext context = at == null ? context(call, rank, n, rendezvous)
                            : new RankContext(call, rank, n, "driver", "127.0.0.1", null, rendezvous.forRank(rank),
                            20_000, at)) {
                        return function.apply(context, slices.get(rank));
                    }
                }));
            }
            List<R> results = new ArrayList<>();
            for (Future<R> f : futures) {
                results.add(f.get());
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    /** The copy of {@code role} a call left in the store (at {@code version}, {@code layout}, {@code rank}). */
    static ResidentModel stored(String role, long version, String layout, int rank) {
        ResidentModel copy = ModelStore.get().find(new ModelStore.Key(role, version, layout, rank));
        if (copy == null) {
            throw new AssertionError("no " + role + " v" + version + " " + layout + " rank " + rank + " in the store");
        }
        return copy;
    }

    /** Drops and closes every copy of {@code role} in the store. */
    static void release(String role) {
        for (ModelStore.Key k : ModelStore.get().keys()) {
            if (k.role().equals(role)) {
                ResidentModel copy = ModelStore.get().find(k);
                ModelStore.get().remove(k);
                copy.close();
            }
        }
    }

    /** A model's gradients by name. */
    static Map<String, float[]> gradients(LlamaModel model) {
        Backend backend = model.backend();
        LlamaWeights grads = model.gradients();
        Map<String, float[]> out = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : grads.specs()) {
            out.put(s.name(), backend.download(grads.get(s.name())));
        }
        return out;
    }

    /** Each tensor of {@code actual} within {@code relative} of {@code expected}'s largest magnitude. */
    static void assertTensorsClose(Map<String, float[]> expected, Map<String, float[]> actual, double relative) {
        assertEquals(expected.keySet(), actual.keySet());
        for (Map.Entry<String, float[]> e : expected.entrySet()) {
            float[] want = e.getValue();
            float[] got = actual.get(e.getKey());
            double scale = 0;
            for (float v : want) {
                scale = Math.max(scale, Math.abs(v));
            }
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], got[i], relative * scale + 1e-12, e.getKey() + "[" + i + "]");
            }
        }
    }

    static float[] even(float[] perRow) {
        float[] out = new float[perRow.length / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = perRow[2 * i];
        }
        return out;
    }

    static float[] odd(float[] perRow) {
        float[] out = new float[perRow.length / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = perRow[2 * i + 1];
        }
        return out;
    }

    static int[][] rows(int[][] a, int fromPair, int toPair) {
        return java.util.Arrays.copyOfRange(a, 2 * fromPair, 2 * toPair);
    }

    static float[][] rows(float[][] a, int fromPair, int toPair) {
        return java.util.Arrays.copyOfRange(a, 2 * fromPair, 2 * toPair);
    }
}

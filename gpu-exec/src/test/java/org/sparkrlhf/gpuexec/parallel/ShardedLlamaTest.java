package org.sparkrlhf.gpuexec.parallel;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.SpeculativeGenerator;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.train.AdamW;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Tensor- and pipeline-parallel shards of {@link LlamaModel} against the whole model: logprobs,
 * entropies, values and scores on every rank, every gradient after gathering the shards, two
 * clipped AdamW steps, and the tokens of greedy and sampled generation.
 */
@Timeout(300)
class ShardedLlamaTest {
    static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend(1);
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    /**
     * A large eps keeps the update a smooth function of the gradient (with eps 1e-8 an element
     * whose gradient cancels to ~1e-7 gets an update of +-lr from its rounding), and makes the
     * update depend on the clipping scale, which Adam otherwise divides out.
     */
    static final AdamW.Hyper HYPER = new AdamW.Hyper(1e-2f, 0.9f, 0.999f, 1e-3f, 0.01f, 0.05f);

    /** Two micro-batches: right-padded rows of different lengths, and left-padded ones. */
    static List<Batch> microBatches(int vocab, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        return List.of(Batch.rightPadded(new int[][]{ids(rng, vocab, 7), ids(rng, vocab, 5)}, 0),
                Batch.leftPadded(new int[][]{ids(rng, vocab, 4), ids(rng, vocab, 6), ids(rng, vocab, 2)}, 0));
    }

    static int[] ids(SplittableRandom rng, int vocab, int n) {
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = 1 + rng.nextInt(vocab - 1);
        return v;
    }

    static float[] randoms(SplittableRandom rng, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) rng.nextDouble(-1, 1);
        return v;
    }

    static final int[][] PROMPTS = {{5, 6, 7}, {8, 9, 10, 11, 12}, {13}};

    static List<Generator.Options> generationOptions() {
        return List.of(Generator.Options.greedy(6, new int[]{2}, 0),
                new Generator.Options(6, new SamplingParams(1.0f, 0, 1f), 1234, new int[]{2}, 0, false),
                new Generator.Options(5, new SamplingParams(0.8f, 20, 0.9f), 99, new int[0], 0, true));
    }

    /** What one run (unsharded, or one rank) computed, downloaded. */
    record Run(ShardSpec shard, List<TokenStats> stats, Map<String, float[]> grads, float norm, float clipScale,
               Map<String, float[]> paramsAfterOne, Map<String, float[]> paramsAfter, List<GenerationResult> generated) {
    }

    static Run reference(ModelConfig c, Map<String, float[]> full, List<Batch> mbs, List<float[]> dLp, List<float[]> dEnt) {
        try (LlamaModel m = LlamaModel.random(backend, c, DType.F32, 1, 0.3f)) {
            for (var e : m.parameters().byName().entrySet()) backend.upload(e.getValue(), full.get(e.getKey()));
            List<GenerationResult> gen = new ArrayList<>();
            try (Generator g = new Generator(m)) {
                for (Generator.Options o : generationOptions()) gen.add(g.generate(PROMPTS, o));
            }
            List<TokenStats> stats = new ArrayList<>();
            for (int i = 0; i < mbs.size(); i++) {
                stats.add(m.forward(mbs.get(i), true));
                m.backward(dLp.get(i), dEnt.get(i));
            }
            Map<String, float[]> grads = Sharding.download(backend, m.gradients().byName());
            try (AdamW opt = AdamW.forModel(m, HYPER)) {
                AdamW.StepInfo first = opt.step();
                Map<String, float[]> afterOne = Sharding.download(backend, m.parameters().byName());
                m.zeroGradients();
                for (int i = 0; i < mbs.size(); i++) {
                    m.forward(mbs.get(i), true);
                    m.backward(dLp.get(i), dEnt.get(i));
                }
                opt.step();
                return new Run(ShardSpec.WHOLE, stats, grads, first.gradNorm(), first.clipScale(), afterOne,
                        Sharding.download(backend, m.parameters().byName()), gen);
            }
        }
    }

    static Run sharded(CpuBackend b, ShardSpec s, Collective tpc, Collective ppc, ModelConfig c, Map<String, float[]> full,
                       List<Batch> mbs, List<float[]> dLp, List<float[]> dEnt) {
        try (LlamaModel m = LlamaModel.fromFull(b, c, s, tpc, ppc, full)) {
            List<GenerationResult> gen = new ArrayList<>();
            try (Generator g = new Generator(m)) {
                for (Generator.Options o : generationOptions()) gen.add(g.generate(PROMPTS, o));
            }
            List<TokenStats> stats = m.forward(mbs, true, true);
            m.backward(dLp, dEnt);
            Map<String, float[]> grads = m.downloadGradients();
            try (AdamW opt = AdamW.forModel(m, HYPER)) {
                AdamW.StepInfo first = opt.step();
                Map<String, float[]> afterOne = m.downloadParameters();
                m.zeroGradients();
                m.forward(mbs, true, true);
                m.backward(dLp, dEnt);
                opt.step();
                return new Run(s, stats, grads, first.gradNorm(), first.clipScale(), afterOne, m.downloadParameters(), gen);
            }
        }
    }

    /** Per tensor: max |a - b| within rel times the largest |reference| value. */
    static void assertClose(Map<String, float[]> want, Map<String, float[]> got, double rel, double abs, String what) {
        assertEquals(want.keySet(), got.keySet(), what + ": tensor names");
        for (String name : want.keySet()) {
            double tol = rel * Fixtures.maxAbs(want.get(name)) + abs;
            double d = Fixtures.maxAbsDiff(want.get(name), got.get(name), null);
            assertTrue(d <= tol, what + " " + name + ": max difference " + d + " > " + tol);
        }
    }

    static void compareCausalLm(ModelConfig c, Map<String, float[]> full, int tp, int pp) {
        List<Batch> mbs = microBatches(c.vocabSize(), 11);
        SplittableRandom rng = new SplittableRandom(5);
        List<float[]> dLp = new ArrayList<>(), dEnt = new ArrayList<>();
        for (Batch b : mbs) {
            dLp.add(randoms(rng, b.batch() * (b.time() - 1)));
            dEnt.add(randoms(rng, b.batch() * (b.time() - 1)));
        }
        Run want = reference(c, full, mbs, dLp, dEnt);
        assertTrue(want.clipScale() < 1f, "the test must clip: norm " + want.norm());
        double moved = 0;
        for (String name : full.keySet()) moved = Math.max(moved, Fixtures.maxAbsDiff(full.get(name), want.paramsAfter().get(name), null));
        assertTrue(moved > 1e-3, "the steps must move the parameters well beyond the tolerance, moved " + moved);
        List<Run> ranks = Ranks.run(tp, pp, (b, s, tpc, ppc) -> sharded(b, s, tpc, ppc, c, full, mbs, dLp, dEnt));
        String layout = "tp " + tp + " pp " + pp;
        for (Run r : ranks) {
            String who = layout + ", " + r.shard().label();
            for (int i = 0; i < mbs.size(); i++) {
                assertTrue(Fixtures.maxAbsDiff(want.stats().get(i).logprobs(), r.stats().get(i).logprobs(), null) <= 1e-5, who + ": logprobs of micro-batch " + i);
                assertTrue(Fixtures.maxAbsDiff(want.stats().get(i).entropies(), r.stats().get(i).entropies(), null) <= 1e-5, who + ": entropies of micro-batch " + i);
            }
            assertEquals(want.norm(), r.norm(), 1e-5 * want.norm(), who + ": global gradient norm");
            assertEquals(want.clipScale(), r.clipScale(), 1e-5 * want.clipScale(), who + ": clipping scale");
            for (int k = 0; k < want.generated().size(); k++) {
                GenerationResult w = want.generated().get(k), got = r.generated().get(k);
                for (int b = 0; b < PROMPTS.length; b++) {
                    assertArrayEquals(w.tokens()[b], got.tokens()[b], who + ": tokens of row " + b + " with options " + k);
                    assertEquals(w.stoppedAtEos()[b], got.stoppedAtEos()[b], who + ": eos of row " + b + " with options " + k);
                    if (w.stepLogits() != null) {
                        for (int st = 0; st < w.stepLogits()[b].length; st++) {
                            assertTrue(Fixtures.maxAbsDiff(w.stepLogits()[b][st], got.stepLogits()[b][st], null) <= 1e-5,
                                    who + ": logits of row " + b + " step " + st);
                        }
                    }
                }
            }
        }
        List<ShardSpec> specs = ranks.stream().map(Run::shard).toList();
        assertClose(want.grads(), Sharding.gather(c, specs, ranks.stream().map(Run::grads).toList()), 1e-4, 1e-7, layout + " gradient");
        assertClose(want.paramsAfter(), Sharding.gather(c, specs, ranks.stream().map(Run::paramsAfter).toList()), 0, 1e-5, layout + " after two AdamW steps");
        if (ShardSpec.tiedHead(c) && pp > 1) {
            // the tied copy on the last stage has the same gradient and, after the steps, the same values as stage 0's
            for (Run r : ranks) {
                if (!r.shard().lastStage()) continue;
                Run first = ranks.get(r.shard().tpRank());
                assertArrayEquals(first.grads().get("model.embed_tokens.weight"), r.grads().get("model.embed_tokens.weight"), "tied gradient copies");
                assertArrayEquals(first.paramsAfter().get("model.embed_tokens.weight"), r.paramsAfter().get("model.embed_tokens.weight"), "tied copies");
            }
        }
    }

    /**
     * dp 2 x tp 2 x pp 2 (the planner's rank numbering): each data replica runs one micro-batch,
     * the gradients are summed over the data group, and a clipped step equals the unsharded
     * step over both micro-batches, on both replicas.
     */
    @Test
    void dataParallelReplicasOfTiedShardsMatchTheUnshardedStep() {
        ModelConfig c = ParallelConfigs.gqa(true, 3);
        Map<String, float[]> full = randomWeights(c, 9);
        List<Batch> mbs = microBatches(c.vocabSize(), 12);
        SplittableRandom rng = new SplittableRandom(6);
        List<float[]> dLp = new ArrayList<>(), dEnt = new ArrayList<>();
        for (Batch b : mbs) {
            dLp.add(randoms(rng, b.batch() * (b.time() - 1)));
            dEnt.add(randoms(rng, b.batch() * (b.time() - 1)));
        }
        Run want = reference(c, full, mbs, dLp, dEnt);
        record DpRun(ShardSpec shard, int dataRank, TokenStats stats, Map<String, float[]> grads, float norm, Map<String, float[]> params) {
        }
        List<DpRun> ranks = Ranks.run(2, 2, 2, r -> {
            int d = r.dataRank();
            try (LlamaModel m = LlamaModel.fromFull(r.backend(), c, r.shard(), r.tpGroup(), r.ppGroup(), full);
                 AdamW opt = AdamW.forModel(m, HYPER)) {
                TokenStats stats = m.forward(mbs.get(d), true);
                m.backward(dLp.get(d), dEnt.get(d));
                m.allReduceGradients(r.dpGroup());
                Map<String, float[]> grads = m.downloadGradients();
                AdamW.StepInfo info = opt.step();
                return new DpRun(r.shard(), d, stats, grads, info.gradNorm(), m.downloadParameters());
            }
        });
        for (DpRun r : ranks) {
            String who = "data rank " + r.dataRank() + ", " + r.shard().label();
            assertTrue(Fixtures.maxAbsDiff(want.stats().get(r.dataRank()).logprobs(), r.stats().logprobs(), null) <= 1e-5, who + ": logprobs");
            assertEquals(want.norm(), r.norm(), 1e-5 * want.norm(), who + ": global gradient norm");
        }
        for (int d = 0; d < 2; d++) {
            int replica = d;
            List<DpRun> mine = ranks.stream().filter(r -> r.dataRank() == replica).toList();
            List<ShardSpec> specs = mine.stream().map(DpRun::shard).toList();
            assertClose(want.grads(), Sharding.gather(c, specs, mine.stream().map(DpRun::grads).toList()), 1e-4, 1e-7, "replica " + d + " gradient");
            assertClose(want.paramsAfterOne(), Sharding.gather(c, specs, mine.stream().map(DpRun::params).toList()), 0, 1e-5, "replica " + d + " after a step");
        }
    }

    static Map<String, float[]> randomWeights(ModelConfig c, long seed) {
        try (LlamaModel m = LlamaModel.random(backend, c, DType.F32, seed, 0.3f)) {
            Map<String, float[]> full = Sharding.download(backend, m.parameters().byName());
            // non-zero biases, so that adding a row-parallel layer's bias once is tested
            SplittableRandom rng = new SplittableRandom(seed + 1);
            for (var e : full.entrySet()) if (e.getKey().endsWith(".bias")) e.setValue(randoms(rng, e.getValue().length));
            return full;
        }
    }

    @ParameterizedTest(name = "tp {0} x pp {1}, {2} layers, tied {3}, vocab {4}")
    @CsvSource({"2, 1, 3, false, 61", "1, 2, 3, false, 61", "2, 2, 3, false, 61", "1, 3, 4, false, 61", "2, 2, 3, true, 61",
            "1, 3, 4, true, 61", "2, 1, 3, false, 64", "2, 2, 3, true, 64"})
    void causalLmMatchesTheUnshardedModel(int tp, int pp, int layers, boolean tied, int vocab) {
        ModelConfig c = ParallelConfigs.gqa(tied, layers, vocab);
        compareCausalLm(c, randomWeights(c, 3), tp, pp);
    }

    @Test
    void tiedQwen2FixtureOverTwoStages() {
        try (LlamaModel m = LlamaModel.load(backend, Fixtures.dir("tiny-qwen2"))) {
            assertTrue(m.config().tieWordEmbeddings());
            compareCausalLm(m.config(), Sharding.download(backend, m.parameters().byName()), 1, 2);
        }
    }

    /** A score model's values and scores, and the gradients of both heads' backward. */
    static void compareScoreModel(ModelConfig c, Map<String, float[]> full, int tp, int pp) {
        List<Batch> mbs = microBatches(c.vocabSize(), 21);
        SplittableRandom rng = new SplittableRandom(8);
        List<float[]> dVal = new ArrayList<>(), dScore = new ArrayList<>();
        for (Batch b : mbs) {
            dVal.add(randoms(rng, b.tokens()));
            dScore.add(randoms(rng, b.batch()));
        }
        List<float[]> wantValues = new ArrayList<>(), wantScores = new ArrayList<>();
        Map<String, float[]> wantValueGrads, wantScoreGrads;
        try (LlamaModel m = LlamaModel.random(backend, c, DType.F32, 1, 0.3f)) {
            for (var e : m.parameters().byName().entrySet()) backend.upload(e.getValue(), full.get(e.getKey()));
            for (int i = 0; i < mbs.size(); i++) {
                wantValues.add(m.values(mbs.get(i)));
                m.backwardValues(dVal.get(i));
            }
            wantValueGrads = Sharding.download(backend, m.gradients().byName());
            m.zeroGradients();
            for (int i = 0; i < mbs.size(); i++) {
                wantScores.add(m.scores(mbs.get(i)));
                m.backwardScores(dScore.get(i));
            }
            wantScoreGrads = Sharding.download(backend, m.gradients().byName());
        }
        record ScoreRun(ShardSpec shard, List<float[]> values, Map<String, float[]> valueGrads, List<float[]> scores,
                        Map<String, float[]> scoreGrads) {
        }
        List<ScoreRun> ranks = Ranks.run(tp, pp, (b, s, tpc, ppc) -> {
            try (LlamaModel m = LlamaModel.fromFull(b, c, s, tpc, ppc, full)) {
                List<float[]> values = m.values(mbs, true);
                m.backwardValues(dVal);
                Map<String, float[]> vg = m.downloadGradients();
                m.zeroGradients();
                List<float[]> scores = m.scores(mbs, true);
                m.backwardScores(dScore);
                return new ScoreRun(s, values, vg, scores, m.downloadGradients());
            }
        });
        String layout = "tp " + tp + " pp " + pp;
        for (ScoreRun r : ranks) {
            for (int i = 0; i < mbs.size(); i++) {
                assertTrue(Fixtures.maxAbsDiff(wantValues.get(i), r.values().get(i), null) <= 1e-5, layout + " " + r.shard().label() + ": values " + i);
                assertTrue(Fixtures.maxAbsDiff(wantScores.get(i), r.scores().get(i), null) <= 1e-5, layout + " " + r.shard().label() + ": scores " + i);
            }
        }
        List<ShardSpec> specs = ranks.stream().map(ScoreRun::shard).toList();
        assertClose(wantValueGrads, Sharding.gather(c, specs, ranks.stream().map(ScoreRun::valueGrads).toList()), 1e-4, 1e-7, layout + " values gradient");
        assertClose(wantScoreGrads, Sharding.gather(c, specs, ranks.stream().map(ScoreRun::scoreGrads).toList()), 1e-4, 1e-7, layout + " scores gradient");
    }

    @ParameterizedTest(name = "reward fixture, tp {0} x pp {1}")
    @CsvSource({"2, 1", "1, 2", "2, 2"})
    void rewardFixtureMatchesTheUnshardedModel(int tp, int pp) {
        try (LlamaModel m = LlamaModel.load(backend, Fixtures.dir("tiny-llama-reward"))) {
            assertNotNull(m.parameters().score);
            compareScoreModel(m.config(), Sharding.download(backend, m.parameters().byName()), tp, pp);
        }
    }

    @Test
    void criticWithAnUnevenPipelineMatchesTheUnshardedModel() {
        ModelConfig c = ParallelConfigs.score(4);
        compareScoreModel(c, randomWeights(c, 4), 2, 3);
    }

    @Test
    void loadingADirectoryKeepsTheShardsSlices() {
        Map<String, float[]> full;
        ModelConfig c;
        try (LlamaModel m = LlamaModel.load(backend, Fixtures.dir("tiny-llama-reward"))) {
            full = Sharding.download(backend, m.parameters().byName());
            c = m.config();
        }
        List<Map<String, float[]>> loaded = Ranks.run(2, 2, (b, s, tpc, ppc) -> {
            try (LlamaModel m = LlamaModel.load(b, Fixtures.dir("tiny-llama-reward"), s, tpc, ppc)) {
                Map<String, float[]> want = Sharding.shard(c, full, s);
                Map<String, float[]> got = m.downloadParameters();
                assertEquals(want.keySet(), got.keySet(), s.label());
                for (String name : want.keySet()) assertArrayEquals(want.get(name), got.get(name), name + " on " + s.label());
                return got;
            }
        });
        assertEquals(4, loaded.size());
    }

    @Test
    void tensorParallelismMustCutBetweenHeads() {
        ModelConfig c = ParallelConfigs.gqa(false, 2); // 2 kv heads
        Map<String, float[]> full = randomWeights(c, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Ranks.run(4, 1, (b, s, tpc, ppc) -> LlamaModel.fromFull(b, c, s, tpc, ppc, full)));
        assertTrue(e.getMessage().contains("must divide"), e.getMessage());
    }

    @Test
    void speculativeDecodingRunsOnTheWholeModelOnly() {
        ModelConfig c = ParallelConfigs.gqa(false, 2);
        Map<String, float[]> full = randomWeights(c, 1);
        List<String> messages = Ranks.run(2, 1, (b, s, tpc, ppc) -> {
            try (LlamaModel m = LlamaModel.fromFull(b, c, s, tpc, ppc, full)) {
                float[] masks = new float[2 * c.hiddenSize()];
                try (S3dDraft draft = S3dDraft.of(m, new S3dConfig(1, 2, 2), masks)) {
                    return assertThrows(IllegalStateException.class, () -> new SpeculativeGenerator(m, draft)).getMessage();
                }
            }
        });
        for (String message : messages) assertTrue(message.contains("needs the whole model"), message);
    }
}

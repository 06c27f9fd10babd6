package org.sparkrlhf.gpuexec.train;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuKernels;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.S3dExample;
import org.sparkrlhf.gpuexec.model.S3dLoss;
import org.sparkrlhf.gpuexec.model.SpeculativeGenerator;
import org.sparkrlhf.gpuexec.model.SpeculativeStats;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(300)
class S3dTrainingTest {
    static CpuBackend backend;

    @BeforeAll
    static void start() {
        // the reference kernels: finite differences need the loss's float noise small
        backend = new CpuBackend(2, CpuKernels.REFERENCE);
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    /** Greedy continuations of random prompts: text the model itself predicts (what its drafts should learn). */
    static List<int[]> ownText(LlamaModel model, int n, int length, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[][] prompts = new int[n][];
        for (int i = 0; i < n; i++) prompts[i] = new int[]{rng.nextInt(model.config().vocabSize()), rng.nextInt(model.config().vocabSize())};
        try (Generator g = new Generator(model)) {
            GenerationResult r = g.generate(prompts, Generator.Options.greedy(length, new int[0], 0));
            List<int[]> texts = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int[] t = Arrays.copyOf(prompts[i], 2 + r.tokens()[i].length);
                System.arraycopy(r.tokens()[i], 0, t, 2, r.tokens()[i].length);
                texts.add(t);
            }
            return texts;
        }
    }

    @Test
    void gradientMatchesFiniteDifferences() {
        ModelConfig c = ModelConfig.llama(11, 16, 24, 4, 2, 1, 64);
        try (LlamaModel model = LlamaModel.random(backend, c, DType.F32, 3, 0.3f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 3, 3), 8)) {
            List<S3dExample> ex = S3dExample.sample(ownText(model, 4, 12, 1), 3, 6, new SplittableRandom(2));
            S3dLoss loss = new S3dLoss(model, draft);
            loss.zeroGradient();
            loss.forwardBackward(ex);
            float[] grad = backend.download(loss.gradient());
            float[] base = backend.download(draft.maskEmbeddings());
            double h = 1e-2;
            for (int idx : new int[]{0, 5, 17, 30, 47}) {
                float[] plus = base.clone(), minus = base.clone();
                plus[idx] += (float) h;
                minus[idx] -= (float) h;
                backend.upload(draft.maskEmbeddings(), plus);
                double lp = loss.loss(ex);
                backend.upload(draft.maskEmbeddings(), minus);
                double lm = loss.loss(ex);
                double fd = (lp - lm) / (2 * h);
                assertEquals(fd, grad[idx], 2e-3 + 0.03 * Math.abs(fd), "dLoss/dMask[" + idx + "]");
            }
            backend.upload(draft.maskEmbeddings(), base);
            loss.free();
        }
    }

    @Test
    void trainingLowersTheDraftLossRaisesAcceptanceAndLeavesTheModelBitwiseUnchanged() {
        ModelConfig c = ModelConfig.llama(16, 32, 48, 4, 4, 2, 128);
        try (LlamaModel model = LlamaModel.random(backend, c, DType.F32, 7, 0.4f);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 3, 2), 5)) {
            Map<String, float[]> before = weights(model);
            List<int[]> texts = ownText(model, 16, 24, 3);
            List<S3dExample> held = S3dExample.sample(texts, 2, 32, new SplittableRandom(99));
            int[][] prompts = new int[8][];
            for (int i = 0; i < 8; i++) prompts[i] = Arrays.copyOf(texts.get(i), 3);
            Generator.Options greedy = Generator.Options.greedy(16, new int[0], 0);
            SpeculativeStats s0 = new SpeculativeGenerator(model, draft).generate(prompts, greedy).stats();
            try (S3dTrainer trainer = new S3dTrainer(model, draft, new AdamW.Hyper(0.1f, 0.9f, 0.999f, 1e-8f, 0f, 0f))) {
                float l0 = trainer.evaluate(held);
                SplittableRandom rng = new SplittableRandom(4);
                for (int step = 0; step < 150; step++) trainer.step(S3dExample.sample(texts, 2, 16, rng));
                float l1 = trainer.evaluate(held);
                assertTrue(l1 < 0.8 * l0, "draft loss " + l0 + " -> " + l1);
            }
            SpeculativeStats s1 = new SpeculativeGenerator(model, draft).generate(prompts, greedy).stats();
            assertTrue(s1.acceptanceRate() > s0.acceptanceRate(), "acceptance " + s0.acceptanceRate() + " -> " + s1.acceptanceRate());
            Map<String, float[]> after = weights(model);
            for (String name : before.keySet()) assertArrayEquals(before.get(name), after.get(name), name + " changed");
        }
    }

    @Test
    void maskEmbeddingsRoundTripBesideAnUnchangedCheckpoint(@TempDir Path dir) throws IOException {
        Path src = Fixtures.dir("tiny-llama");
        try (var files = Files.list(src)) {
            for (Path f : files.toList()) Files.copy(f, dir.resolve(f.getFileName()));
        }
        Map<String, byte[]> original = new HashMap<>();
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) original.put(f.getFileName().toString(), Files.readAllBytes(f));
        }
        try (LlamaModel model = LlamaModel.load(backend, dir);
             S3dDraft draft = S3dDraft.initial(model, new S3dConfig(1, 2, 3), 1)) {
            try (S3dTrainer trainer = new S3dTrainer(model, draft, AdamW.Hyper.defaults(0.01f))) {
                trainer.step(S3dExample.sample(List.of(new int[]{5, 9, 13, 70, 81, 99, 4, 3}), 3, 4, new SplittableRandom(1)));
            }
            draft.save(dir);
            assertTrue(S3dDraft.present(dir));
            try (S3dDraft loaded = S3dDraft.load(model, dir)) {
                assertEquals(draft.config(), loaded.config());
                assertArrayEquals(backend.download(draft.maskEmbeddings()), backend.download(loaded.maskEmbeddings()));
            }
        }
        for (Map.Entry<String, byte[]> e : original.entrySet()) {
            assertArrayEquals(e.getValue(), Files.readAllBytes(dir.resolve(e.getKey())), e.getKey() + " was rewritten");
        }
        try (LlamaModel reloaded = LlamaModel.load(backend, dir);
             LlamaModel fixture = LlamaModel.load(backend, src)) {
            Map<String, float[]> a = weights(reloaded), b = weights(fixture);
            for (String name : a.keySet()) assertArrayEquals(b.get(name), a.get(name), name);
        }
    }

    static Map<String, float[]> weights(LlamaModel model) {
        Map<String, float[]> out = new HashMap<>();
        LlamaWeights p = model.parameters();
        for (LlamaWeights.Spec s : p.specs()) out.put(s.name(), backend.download(p.get(s.name())));
        return out;
    }

    @Test
    void trainingResumedFromSavedMomentsContinuesBitForBit(@TempDir Path dir) {
        ModelConfig c = ModelConfig.llama(11, 16, 24, 4, 2, 1, 64);
        S3dConfig s3d = new S3dConfig(1, 3, 2);
        AdamW.Hyper hyper = AdamW.Hyper.defaults(0.05f);
        try (LlamaModel model = LlamaModel.random(backend, c, DType.F32, 3, 0.3f)) {
            List<int[]> texts = ownText(model, 6, 10, 4);
            List<List<S3dExample>> batches = new ArrayList<>();
            SplittableRandom rng = new SplittableRandom(5);
            for (int s = 0; s < 4; s++) batches.add(S3dExample.sample(texts, 2, 5, rng));
            float[] straight;
            try (S3dDraft draft = S3dDraft.initial(model, s3d, 8); S3dTrainer t = new S3dTrainer(model, draft, hyper)) {
                for (List<S3dExample> b : batches) t.step(b);
                straight = draft.values();
                assertEquals(4, t.moments().steps());
            }
            // two steps, the draft and its moments through their files, a new trainer, two more steps
            float[] values;
            try (S3dDraft draft = S3dDraft.initial(model, s3d, 8); S3dTrainer t = new S3dTrainer(model, draft, hyper)) {
                t.step(batches.get(0));
                t.step(batches.get(1));
                draft.save(dir);
                S3dTrainer.write(t.moments(), 2, 16, hyper, dir.resolve(S3dTrainer.OPTIMIZER));
            }
            S3dTrainer.Moments read = S3dTrainer.read(dir.resolve(S3dTrainer.OPTIMIZER), 2, 16);
            assertEquals(2, read.steps());
            try (S3dDraft draft = S3dDraft.load(model, dir); S3dTrainer t = new S3dTrainer(model, draft, hyper, read)) {
                t.step(batches.get(2));
                t.step(batches.get(3));
                values = draft.values();
            }
            assertArrayEquals(straight, values);
            // a fresh optimizer at step 3 (bias corrections and moments restarted) would have gone elsewhere
            try (S3dDraft draft = S3dDraft.load(model, dir); S3dTrainer t = new S3dTrainer(model, draft, hyper)) {
                t.step(batches.get(2));
                t.step(batches.get(3));
                assertTrue(!Arrays.equals(straight, draft.values()));
            }
        }
    }
}

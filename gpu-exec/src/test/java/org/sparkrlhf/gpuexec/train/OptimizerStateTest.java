package org.sparkrlhf.gpuexec.train;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsWriter;
import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A model and its AdamW saved after some steps and restored into fresh objects continue exactly
 * as the originals: the next steps give bit-identical parameters.
 */
@Timeout(120)
class OptimizerStateTest {
    static CpuBackend backend;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static void sftStep(LlamaModel model, AdamW opt, Batch batch) {
        model.zeroGradients();
        TokenStats s = model.forward(batch, false);
        model.backward(SftLoss.of(batch, s).dLogprobs(), null);
        model.releaseActivations();
        opt.step();
    }

    private static List<float[]> parameters(LlamaModel model) {
        List<float[]> out = new ArrayList<>();
        LlamaWeights p = model.parameters();
        for (LlamaWeights.Spec s : p.specs()) out.add(backend.download(p.get(s.name())));
        return out;
    }

    @Test
    void aRestoredOptimizerContinuesBitForBit() {
        Batch batch = TrainingTest.fixtureBatch();
        AdamW.Hyper hyper = new AdamW.Hyper(3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
        Path saved = dir.resolve("actor");
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"));
             AdamW opt = AdamW.forModel(model, hyper)) {
            sftStep(model, opt, batch);
            sftStep(model, opt, batch);
            model.save(saved, StDType.F32, 1L << 30);
            OptimizerState.save(opt, saved.resolve(OptimizerState.FILE));

            SafeTensorsFile file = SafeTensorsFile.open(saved.resolve(OptimizerState.FILE));
            assertEquals("2", file.metadata().get("step"));
            assertEquals("adamw", file.metadata().get("optimizer"));
            assertEquals(2 * opt.params().size(), file.entries().size());
            AdamW.Param first = opt.params().get(0);
            assertArrayEquals(backend.download(first.m()), file.readFloats("exp_avg." + first.name()));
            assertArrayEquals(backend.download(first.v()), file.readFloats("exp_avg_sq." + first.name()));

            try (LlamaModel restored = LlamaModel.load(backend, saved);
                 AdamW restoredOpt = AdamW.forModel(restored, hyper)) {
                OptimizerState.load(restoredOpt, saved.resolve(OptimizerState.FILE));
                assertEquals(2, restoredOpt.stepCount());
                sftStep(model, opt, batch);
                sftStep(restored, restoredOpt, batch);
                List<float[]> a = parameters(model), b = parameters(restored);
                for (int i = 0; i < a.size(); i++) assertArrayEquals(a.get(i), b.get(i), "parameter " + i);
            }
            // a fresh optimizer (zero moments, step 1) would have stepped differently: the state matters
            try (LlamaModel fresh = LlamaModel.load(backend, saved); AdamW freshOpt = AdamW.forModel(fresh, hyper)) {
                sftStep(fresh, freshOpt, batch);
                List<float[]> a = parameters(model), b = parameters(fresh);
                boolean differs = false;
                for (int i = 0; i < a.size(); i++) differs |= !java.util.Arrays.equals(a.get(i), b.get(i));
                assertTrue(differs, "a fresh optimizer gave the restored one's parameters");
            }
        }
    }

    @Test
    void momentsWrittenAsArraysGiveTheOptimizersOwnFile() throws Exception {
        Batch batch = TrainingTest.fixtureBatch();
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"));
             AdamW opt = AdamW.forModel(model, new AdamW.Hyper(3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f))) {
            sftStep(model, opt, batch);
            sftStep(model, opt, batch);
            OptimizerState.save(opt, dir.resolve("own.safetensors"));
            List<OptimizerState.Moments> moments = new ArrayList<>();
            for (AdamW.Param p : opt.params()) {
                float[] m = backend.download(p.m());
                float[] v = backend.download(p.v());
                moments.add(new OptimizerState.Moments(p.name(), p.m().shape(), () -> m, () -> v));
            }
            OptimizerState.write(moments, opt.stepCount(), opt.hyper(), dir.resolve("arrays.safetensors"));
            assertArrayEquals(java.nio.file.Files.readAllBytes(dir.resolve("own.safetensors")),
                    java.nio.file.Files.readAllBytes(dir.resolve("arrays.safetensors")));
        }
    }

    @Test
    void aFileOfAnotherModelIsRejectedAndChangesNothing() {
        try (LlamaModel model = LlamaModel.load(backend, Fixtures.dir("tiny-llama"));
             AdamW opt = AdamW.forModel(model, AdamW.Hyper.defaults(1e-3f))) {
            AdamW.Param p = opt.params().get(0);
            Path wrong = dir.resolve("wrong.safetensors");
            SafeTensorsWriter.write(wrong, List.of(SafeTensorsWriter.Item.floats("exp_avg." + p.name(), StDType.F32,
                    new int[]{1}, () -> new float[]{7f})), Map.of("optimizer", "adamw", "step", "3"));
            CheckpointException e = assertThrows(CheckpointException.class, () -> OptimizerState.load(opt, wrong));
            assertTrue(e.getMessage().contains("exp_avg." + p.name()), e.getMessage());
            assertEquals(0, opt.stepCount());
            for (float x : backend.download(p.m())) assertEquals(0f, x);

            Path noStep = dir.resolve("nostep.safetensors");
            SafeTensorsWriter.write(noStep, List.of(), Map.of("optimizer", "adamw"));
            e = assertThrows(CheckpointException.class, () -> OptimizerState.load(opt, noStep));
            assertTrue(e.getMessage().contains("__metadata__.step"), e.getMessage());
        }
    }
}

package org.sparkrlhf.jobs.gpu;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.jobs.calls.GenerateCall;
import org.sparkrlhf.jobs.calls.GrpoTrainCall;
import org.sparkrlhf.jobs.calls.MiniBatches;
import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.RefLogprobsCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.executor.ModelStore;
import org.sparkrlhf.jobs.executor.RankContext;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The three calls of a GRPO iteration (actor_gen, ref_inf, actor_train) as one rank runs them
 * inside its barrier task, without Spark: a rank whose task was given GPU "0" builds its models
 * on the CUDA backend, a rank without one on the CPU engine, and the two must agree. Runs in a
 * plain JVM on the GPU machine (no Spark jars needed); skipped without a CUDA driver.
 *
 * <p>Tolerances: the CUDA backend in fp32 ({@code Precision.FP32}: no TF32, fp32 accumulation)
 * differs from the CPU engine only in the order of additions; gpu-exec's model test finds them
 * within about 1e-5 relative. Logprobs and the loss are compared at 1e-4 x max(1, |value|), the
 * gradient norm (a sum of squares over every gradient element) at 1e-4 relative.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class GrpoCallsOnCudaGpuTest {
    static final Path TINY_LLAMA = tinyLlama();
    static final int PAD = 0;
    static final ModelSource SOURCE = new ModelSource(TINY_LLAMA.toString(), 0);
    static final RunConfig.OptimizerConfig OPTIMIZER = new RunConfig.OptimizerConfig(1e-3, 0.9, 0.95, 1e-8, 0.0, 0.0, 0);

    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(CudaBackend.isAvailable(), () -> "skipped: " + CudaBackend.unavailableReason());
    }

    @AfterEach
    void releaseModels() {
        for (ModelStore.Key key : ModelStore.get().keys()) {
            if (key.role().startsWith("gpu-test-")) {
                Object held = ModelStore.get().find(key);
                ModelStore.get().remove(key);
                if (held instanceof AutoCloseable c) {
                    try {
                        c.close();
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }
            }
        }
    }

    /**
     * The fixture model: from gpu-exec's test classes when they are on the classpath (the GPU
     * machine's packed run, started at the project root), else from its source folder (Maven, in jobs/).
     */
    private static Path tinyLlama() {
        java.net.URL config = GrpoCallsOnCudaGpuTest.class.getResource("/fixtures/tiny-llama/config.json");
        if (config != null && config.getProtocol().equals("file")) {
            try {
                return Path.of(config.toURI()).getParent();
            } catch (java.net.URISyntaxException e) {
                throw new IllegalStateException(e);
            }
        }
        return Path.of("../gpu-exec/src/test/resources/fixtures/tiny-llama").toAbsolutePath().normalize();
    }

    private static RankContext rank(String call, String gpu) {
        return new RankContext(call, 0, 1, "gpu-test", "127.0.0.1", gpu, null, 60_000);
    }

    @Test
    void anIterationsCallsOnCudaMatchTheCpuEngine() {
        int[][] prompts = {{1, 40, 41, 42}, {1, 50, 51}};
        int group = 2;
        GenerateCall.Slice generate = new GenerateCall.Slice("gpu-test-cuda-actor", SOURCE, 0, 1, OPTIMIZER, prompts, 0,
                group, 6, 1.0f, 0, 1.0f, 5, new int[]{2}, PAD, true);
        GenerateCall.Result sampled;
        try (RankContext context = rank("actor_gen", "0")) {
            assertTrue(context.backend().name().startsWith("cuda("), context.backend().name());
            sampled = new GenerateCall().apply(context, generate);
        }
        int samples = prompts.length * group;
        assertEquals(samples, sampled.responses().length);
        int[][] samplePrompts = new int[samples][];
        for (int k = 0; k < samples; k++) {
            samplePrompts[k] = prompts[k / group];
        }

        // the CPU engine's logprobs of what the GPU sampled, against the GPU's own (actor_gen) and ref_inf's
        float[][] cpuRef = refLogprobs("gpu-test-cpu-ref", null, samplePrompts, sampled.responses());
        float[][] cudaRef = refLogprobs("gpu-test-cuda-ref", "0", samplePrompts, sampled.responses());
        int tokens = 0;
        for (int k = 0; k < samples; k++) {
            assertEquals(sampled.responses()[k].length, cpuRef[k].length);
            for (int j = 0; j < cpuRef[k].length; j++) {
                double tolerance = 1e-4 * Math.max(1, Math.abs(cpuRef[k][j]));
                assertEquals(cpuRef[k][j], sampled.logprobs()[k][j], tolerance, "actor_gen logprob, sample " + k + " token " + j);
                assertEquals(cpuRef[k][j], cudaRef[k][j], tolerance, "ref_inf logprob, sample " + k + " token " + j);
            }
            tokens += cpuRef[k].length;
        }

        // one GRPO step on each engine, from the same rows: the same loss and gradient norm
        float[] advantages = new float[samples];
        for (int k = 0; k < samples; k++) {
            advantages[k] = k % 2 == 0 ? 1f : -1f;
        }
        GrpoTrainCall.Result cpu = train("gpu-test-cpu-actor", null, samplePrompts, sampled.responses(), cpuRef,
                advantages, tokens);
        GrpoTrainCall.Result cuda = train("gpu-test-cuda-actor", "0", samplePrompts, sampled.responses(), cpuRef,
                advantages, tokens);
        assertEquals(cpu.loss(), cuda.loss(), 1e-4 * Math.max(1, Math.abs(cpu.loss())), "GRPO loss");
        assertEquals(cpu.gradNorm(), cuda.gradNorm(), 1e-4 * cpu.gradNorm(), "gradient norm");
        assertEquals(cpu.tokens(), cuda.tokens());
        assertEquals(1, cuda.version());
    }

    private static float[][] refLogprobs(String role, String gpu, int[][] prompts, int[][] responses) {
        try (RankContext context = rank("ref_inf", gpu)) {
            return new RefLogprobsCall().apply(context, new RefLogprobsCall.Slice(role, SOURCE, 1, prompts, responses, PAD));
        }
    }

    private static GrpoTrainCall.Result train(String role, String gpu, int[][] prompts, int[][] responses, float[][] old,
                                              float[] advantages, int tokens) {
        try (RankContext context = rank("actor_train", gpu)) {
            return new GrpoTrainCall().apply(context, new GrpoTrainCall.Slice(role, SOURCE, 0, 1, OPTIMIZER, prompts,
                    responses, old, old, advantages,
                            0.2, 0.04, 1, new MiniBatches(new int[]{0, responses.length}, new int[]{tokens}), PAD));
        }
    }
}

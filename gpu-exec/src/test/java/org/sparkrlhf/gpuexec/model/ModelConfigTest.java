package org.sparkrlhf.gpuexec.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.Fixtures;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;

import java.io.IOException;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(60)
class ModelConfigTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static ObjectNode json(String s) throws IOException {
        return (ObjectNode) JSON.readTree(s.replace('\'', '"'));
    }

    static final String BASE = "{'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'vocab_size': 64, 'hidden_size': 96,"
            + " 'intermediate_size': 128, 'num_hidden_layers': 3, 'num_attention_heads': 6, 'num_key_value_heads': 3, 'rms_norm_eps': 1e-6";

    @Test
    void ropeThetaIsReadAtTheTopLevelOrInRopeParameters() throws IOException {
        ModelConfig v4 = ModelConfig.parse(json(BASE + ", 'rope_theta': 500000.0}"), "v4/config.json");
        assertEquals(500000.0, v4.ropeTheta());
        assertEquals(16, v4.headDim());
        assertEquals(3, v4.numKvHeads());
        assertEquals(1e-6f, v4.rmsNormEps());
        ModelConfig v5 = ModelConfig.parse(json(BASE + ", 'rope_parameters': {'rope_theta': 500000.0, 'rope_type': 'default'}}"), "v5/config.json");
        assertEquals(500000.0, v5.ropeTheta());
        assertEquals("default", v5.rope().type());
        ModelConfig fixture = ModelConfig.read(Fixtures.dir("tiny-qwen2").resolve("config.json"));
        assertEquals(1e6, fixture.ropeTheta());
        assertTrue(fixture.qkvBias() && fixture.tieWordEmbeddings() && !fixture.oBias());
    }

    @Test
    void llama3ScalingFollowsTransformers() throws IOException {
        ModelConfig c = ModelConfig.parse(json(BASE + ", 'head_dim': 32, 'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0,"
                + " 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192}, 'rope_theta': 500000.0}"), "c");
        assertEquals(32, c.headDim());
        float[] scaled = c.rope().inverseFrequencies(c.ropeTheta(), c.headDim());
        float[] plain = RopeScaling.DEFAULT.inverseFrequencies(c.ropeTheta(), c.headDim());
        for (int i = 0; i < plain.length; i++) {
            double wavelen = 2 * Math.PI / plain[i];
            if (wavelen < 8192 / 4.0) assertEquals(plain[i], scaled[i], "high frequencies are kept");
            else if (wavelen > 8192 / 1.0) assertEquals(plain[i] / 8f, scaled[i], 1e-12, "low frequencies are divided by the factor");
            else assertTrue(scaled[i] < plain[i] && scaled[i] > plain[i] / 8f, "medium frequencies are interpolated");
        }
    }

    @Test
    void unsupportedThingsAreNamed() throws IOException {
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> ModelConfig.parse(json(BASE + ", 'rope_parameters': {'rope_type': 'yarn', 'factor': 4.0}}"), "m/config.json"));
        assertTrue(e.getMessage().contains("m/config.json") && e.getMessage().contains("rope_type") && e.getMessage().contains("yarn"), e.getMessage());
        e = assertThrows(CheckpointException.class,
                () -> ModelConfig.parse(json(BASE.replace("LlamaForCausalLM", "GemmaForCausalLM") + "}"), "m/config.json"));
        assertTrue(e.getMessage().contains("unsupported architecture GemmaForCausalLM in m/config.json"), e.getMessage());
        e = assertThrows(CheckpointException.class,
                () -> ModelConfig.parse(json(BASE.replace("LlamaForCausalLM", "LlamaForSequenceClassification") + ", 'num_labels': 3}"), "m/config.json"));
        assertTrue(e.getMessage().contains("num_labels"), e.getMessage());
        e = assertThrows(CheckpointException.class, () -> ModelConfig.parse(json(BASE.replace("'hidden_size': 96,", "") + "}"), "m/config.json"));
        assertTrue(e.getMessage().contains("'hidden_size' is missing"), e.getMessage());
        e = assertThrows(CheckpointException.class, () -> ModelConfig.parse(json(BASE + ", 'hidden_act': 'gelu'}"), "m/config.json"));
        assertTrue(e.getMessage().contains("hidden_act"), e.getMessage());
    }

    @Test
    void mistralSlidingWindowIsAppliedInForwardAndDecode() throws IOException {
        ObjectNode mistral = json("{'architectures': ['MistralForCausalLM'], 'model_type': 'mistral', 'vocab_size': 64, 'hidden_size': 32,"
                + " 'intermediate_size': 48, 'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,"
                + " 'sliding_window': 4, 'rope_theta': 10000.0, 'pad_token_id': 0}");
        ModelConfig windowed = ModelConfig.parse(mistral, "mistral");
        assertArrayEquals(new int[]{4, 4}, windowed.slidingWindows());
        mistral.putNull("sliding_window");
        ModelConfig full = ModelConfig.parse(mistral, "mistral");
        int[] prompt = {3, 9, 27, 1, 44, 12, 7, 30, 5};
        try (CpuBackend backend = new CpuBackend();
             LlamaModel a = LlamaModel.random(backend, windowed, DType.F32, 11, 0.2f);
             LlamaModel b = LlamaModel.random(backend, full, DType.F32, 11, 0.2f);
             Generator g = new Generator(a)) {
            Batch batch = Batch.rightPadded(new int[][]{prompt}, 0);
            float[] la = a.forward(batch, false).logprobs(), lb = b.forward(batch, false).logprobs();
            assertArrayEquals(Arrays.copyOf(la, 3), Arrays.copyOf(lb, 3), "within the window nothing changes");
            assertFalse(Arrays.equals(la, lb), "beyond the window the logprobs change");
            // decode over the cache applies the same window as the full forward
            GenerationResult r = g.generate(new int[][]{Arrays.copyOf(prompt, 3)},
                    new Generator.Options(6, SamplingParams.GREEDY, 0, new int[0], 0, true));
            int[] all = new int[9];
            System.arraycopy(prompt, 0, all, 0, 3);
            System.arraycopy(r.tokens()[0], 0, all, 3, 6);
            a.forward(Batch.rightPadded(new int[][]{all}, 0), false);
            float[] logits = a.logits();
            for (int s = 0; s < 6; s++) {
                int t = 2 + s;
                double d = Fixtures.maxAbsDiff(Arrays.copyOfRange(logits, t * 64, (t + 1) * 64), r.stepLogits()[0][s], null);
                assertTrue(d < 1e-4, "decode step " + s + " differs by " + d);
            }
        }
    }
}

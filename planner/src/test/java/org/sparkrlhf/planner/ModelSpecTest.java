package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.planner.realloc.ModelParameters;
import org.sparkrlhf.planner.realloc.Param;
import org.sparkrlhf.planner.spec.ModelSpec;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelSpecTest {
    /** Parameter counts of the Hugging Face checkpoints (sum of the tensor sizes in their safetensors). */
    @Test
    void presetParameterCountsMatchTheCheckpoints() {
        assertEquals(6_738_415_616L, ModelSpec.preset("llama2-7b").totalParams());
        assertEquals(13_015_864_320L, ModelSpec.preset("llama2-13b").totalParams());
        assertEquals(33_743_970_304L, ModelSpec.preset("codellama-34b").totalParams());
        assertEquals(68_976_648_192L, ModelSpec.preset("llama2-70b").totalParams());
    }

    @Test
    void parameterListAddsUpToTheCount() {
        ModelSpec base = ModelSpec.preset("codellama-34b");
        ModelSpec tied = new ModelSpec("t", 3, 64, 160, 8, 2, 8, 100, true, true, false);
        for (ModelSpec m : new ModelSpec[]{base, base.withValueHead(), tied, tied.withValueHead()}) {
            long sum = 0;
            for (Param p : ModelParameters.all(m)) {
                sum += p.elements();
            }
            assertEquals(m.totalParams(), sum, m.toString());
        }
        assertEquals("model.layers.3.self_attn.k_proj.weight", ModelParameters.layer(base, 3).get(2).name());
        assertEquals(1024, ModelParameters.layer(base, 3).get(2).rows());
    }

    @Test
    void readsAnHfConfig(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
                 "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
                 "vocab_size": 32000, "tie_word_embeddings": false, "model_type": "mistral",
                 "_name_or_path": "mistral-7b"}""");
        ModelSpec m = ModelSpec.resolve(dir.toString());
        assertEquals("mistral-7b", m.name());
        assertEquals(8, m.kvHeads());
        assertEquals(128, m.headDim());
        assertEquals(7_241_732_096L, m.totalParams());
        Files.writeString(dir.resolve("bad.json"), "{\"hidden_size\": 64, \"intermediate_size\": 128}");
        var e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.fromHfConfig(dir.resolve("bad.json")));
        assertTrue(e.getMessage().contains("bad.json") && e.getMessage().contains("num_hidden_layers"), e.getMessage());
        Files.writeString(dir.resolve("neg.json"), """
                {"hidden_size": 64, "intermediate_size": -1, "num_attention_heads": 4, "num_hidden_layers": 2,
                 "vocab_size": 10}""");
        e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.fromHfConfig(dir.resolve("neg.json")));
        assertTrue(e.getMessage().contains("intermediate_size"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ModelSpec.resolve("gpt-5"));
    }
}

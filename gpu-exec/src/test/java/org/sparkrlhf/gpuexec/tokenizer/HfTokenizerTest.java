package org.sparkrlhf.gpuexec.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.sparkrlhf.gpuexec.Fixtures;

import java.io.IOException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class HfTokenizerTest {
    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama", "tiny-qwen2", "tiny-llama-reward"})
    void encodesAndDecodesAsTransformers(String name) throws IOException {
        JsonNode c = new ObjectMapper().readTree(Fixtures.dir(name).resolve("expected.json").toFile()).get("tokenizer_case");
        int[] ids = new int[c.get("ids").size()];
        for (int i = 0; i < ids.length; i++) ids[i] = c.get("ids").get(i).asInt();
        try (HfTokenizer t = HfTokenizer.open(Fixtures.dir(name))) {
            assertArrayEquals(ids, t.encodeInts(c.get("text").asText()));
            assertEquals(c.get("decoded").asText(), t.decode(ids));
        }
    }
}

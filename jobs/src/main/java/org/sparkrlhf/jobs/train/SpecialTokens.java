package org.sparkrlhf.jobs.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;

/** The special token ids from a model's config.json: bos, eos, and pad (eos when the model has none). */
public record SpecialTokens(int bos, int eos, int pad) {
    public static SpecialTokens read(Path modelDir) {
        try {
            JsonNode c = new ObjectMapper().readTree(modelDir.resolve("config.json").toFile());
            JsonNode eosNode = c.path("eos_token_id");
            int eos = eosNode.isArray() ? eosNode.get(0).asInt() : eosNode.asInt(-1);
            int bos = c.path("bos_token_id").asInt(-1);
            int pad = c.path("pad_token_id").asInt(eos);
            if (bos < 0 || eos < 0) {
                throw new IllegalArgumentException(modelDir.resolve("config.json") + ": bos_token_id and eos_token_id are needed");
            }
            return new SpecialTokens(bos, eos, pad);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read " + modelDir.resolve("config.json") + ": " + e.getMessage(), e);
        }
    }
}

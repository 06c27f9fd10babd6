package org.sparkrlhf.gpuexec.parallel;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(60)
class ShardingTest {
    static Map<String, float[]> randomTensors(ModelConfig c, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        Map<String, float[]> m = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : LlamaWeights.specs(c)) {
            int n = 1;
            for (int d : s.shape()) n *= d;
            float[] v = new float[n];
            for (int i = 0; i < n; i++) v[i] = (float) rng.nextDouble(-1, 1);
            m.put(s.name(), v);
        }
        return m;
    }

    static List<ShardSpec> layout(int tp, int pp) {
        List<ShardSpec> l = new ArrayList<>();
        for (int r = 0; r < tp * pp; r++) l.add(ShardSpec.ofLocalRank(r, 1, tp, pp));
        return l;
    }

    @Test
    void slicingThenGatheringIsTheIdentity() {
        for (ModelConfig c : List.of(ParallelConfigs.gqa(false, 5), ParallelConfigs.gqa(true, 3), ParallelConfigs.score(3))) {
            Map<String, float[]> full = randomTensors(c, 7);
            for (int[] tpp : new int[][]{{1, 1}, {2, 1}, {1, 2}, {2, 2}, {1, 3}, {2, 3}}) {
                List<ShardSpec> specs = layout(tpp[0], tpp[1]);
                List<Map<String, float[]>> shards = new ArrayList<>();
                for (ShardSpec s : specs) {
                    Map<String, float[]> sh = Sharding.shard(c, full, s);
                    for (LlamaWeights.Spec spec : Sharding.specs(c, s)) {
                        int n = 1;
                        for (int d : spec.shape()) n *= d;
                        assertEquals(n, sh.get(spec.name()).length, spec.name() + " on " + s.label());
                    }
                    shards.add(sh);
                }
                Map<String, float[]> back = Sharding.gather(c, specs, shards);
                assertEquals(full.keySet(), back.keySet());
                for (String name : full.keySet()) {
                    assertArrayEquals(full.get(name), back.get(name), name + " at tp " + tpp[0] + " pp " + tpp[1]);
                }
            }
        }
    }

    @Test
    void followsThePlannersLayout() {
        ModelConfig c = ParallelConfigs.gqa(true, 5); // tied, 5 layers, vocab 61, intermediate 37
        // local rank r of dp 2 x tp 2 x pp 3: tensor rank r % 2, stage r / 4
        ShardSpec s = ShardSpec.ofLocalRank(9, 2, 2, 3);
        assertEquals(new ShardSpec(2, 1, 3, 2), s);
        assertEquals(1, ShardSpec.dataRankOf(6, 2, 2));
        // stages hold [floor(s L / pp), floor((s + 1) L / pp)): [0, 1), [1, 3), [3, 5)
        assertEquals(3, s.firstLayer(5));
        assertEquals(5, s.endLayer(5));
        assertEquals(1, new ShardSpec(2, 0, 3, 1).firstLayer(5));
        // the last stage of a tied LM holds a vocabulary slice of the embedding: rows [30, 61) on tensor rank 1
        assertTrue(Sharding.holds(c, s, "model.embed_tokens.weight"));
        assertFalse(Sharding.holds(c, new ShardSpec(2, 1, 3, 1), "model.embed_tokens.weight"));
        assertArrayEquals(new int[]{31, 16}, Sharding.shardShape("model.embed_tokens.weight", new int[]{61, 16}, s));
        assertArrayEquals(new int[]{19, 16}, Sharding.shardShape("model.layers.3.mlp.up_proj.weight", new int[]{37, 16}, s));
        assertArrayEquals(new int[]{16, 19}, Sharding.shardShape("model.layers.3.mlp.down_proj.weight", new int[]{16, 37}, s));
        assertArrayEquals(new int[]{4}, Sharding.shardShape("model.layers.3.self_attn.k_proj.bias", new int[]{8}, s));
        assertArrayEquals(new int[]{16}, Sharding.shardShape("model.layers.3.self_attn.o_proj.bias", new int[]{16}, s));
        assertEquals(Sharding.Split.REPLICATED, Sharding.split("model.norm.weight"));
        assertEquals(Sharding.Split.REPLICATED, Sharding.split("score.weight"));
        assertEquals(Sharding.Split.VOCAB_ROWS, Sharding.split("lm_head.weight"));
        // a score model has no tied copy on the last stage, even when the config says tied
        ModelConfig critic = ParallelConfigs.score(3);
        assertFalse(Sharding.holds(critic, new ShardSpec(1, 0, 2, 1), "model.embed_tokens.weight"));
        assertTrue(Sharding.holds(critic, new ShardSpec(1, 0, 2, 1), "score.weight"));
        // columns of o_proj: rank 1 of 2 gets input features [8, 16) of each row
        float[] o = new float[16 * 16];
        for (int i = 0; i < o.length; i++) o[i] = i;
        float[] part = Sharding.slice("model.layers.3.self_attn.o_proj.weight", new int[]{16, 16}, o, s);
        assertEquals(8f, part[0]);
        assertEquals(16 + 8f, part[8]);
    }
}

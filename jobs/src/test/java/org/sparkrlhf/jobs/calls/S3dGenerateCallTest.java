package org.sparkrlhf.jobs.calls;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.sparkrlhf.jobs.config.RunConfig.SpeculativeConfig;
import org.sparkrlhf.jobs.executor.RankContext;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.OPTIMIZER;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.PAD;
import static org.sparkrlhf.jobs.calls.PreferencePairsFixture.TINY_LLAMA;

/**
 * actor_gen with S3D speculative decoding on the tiny fixture: greedy, its tokens are exactly those
 * of plain decoding, in one batch and in micro-batches, whether the mask embeddings are fresh or
 * passed back in; it reports what it drafted and the embeddings it used.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class S3dGenerateCallTest {
    private static final SpeculativeConfig S3D = new SpeculativeConfig("s3d", 1, 2, 3, 4, 0.01, 0.5);

    private static GenerateCall.Slice greedy(String role, SpeculativeConfig speculative, float[] masks) {
        int[][] prompts = {{1, 40, 41, 42}, {1, 50}, {1, 60, 61, 62, 63, 64}, {1, 45, 46}};
        return new GenerateCall.Slice(role, new ModelSource(TINY_LLAMA.toString(), 0), 0, 1, OPTIMIZER, prompts, 0, 1,
                12, 0f, 0, 1f, 0L, new int[]{2}, PAD, true, speculative, masks);
    }

    private static GenerateCall.Result run(GenerateCall.Slice slice, int microBatches) throws Exception {
        try (RankContext context = PreferencePairsFixture.placed("actor_gen", microBatches)) {
            return new GenerateCall().apply(context, slice);
        }
    }

    @Test
    void greedySpeculativeGivesPlainGreedysTokens() throws Exception {
        String role = "s3d-test-actor";
        try {
            GenerateCall.Result plain = run(greedy(role, null, null), 1);
            assertNull(plain.speculative());
            GenerateCall.Result fresh = run(greedy(role, S3D, null), 1);
            GenerateCall.Result passed = run(greedy(role, S3D, fresh.maskEmbeddings()), 2);
            for (GenerateCall.Result s : new GenerateCall.Result[]{fresh, passed}) {
                assertEquals(plain.responses().length, s.responses().length);
                for (int k = 0; k < plain.responses().length; k++) {
                    assertArrayEquals(plain.responses()[k], s.responses()[k], "sample " + k);
                    // the old logprobs' forward rounds by its micro-batch's shape off the reference kernels
                    assertArrayEquals(plain.logprobs()[k], s.logprobs()[k], MicroBatchedCallsTest.ROUNDING, "sample " + k);
                }
                assertArrayEquals(plain.stoppedAtEos(), s.stoppedAtEos());
                assertNotNull(s.speculative());
                // each step drafts k = 3 tokens per live sequence
                assertEquals(3 * s.speculative().sequenceSteps(), s.speculative().draftedTokens());
                assertTrue(s.speculative().sequenceSteps() > 0);
                // [draft tokens, hidden 64]
                assertEquals(3 * 64, s.maskEmbeddings().length);
            }
            assertArrayEquals(fresh.maskEmbeddings(), passed.maskEmbeddings());
            // a sequence's steps account for its tokens: each step gives its accepted drafts and one more
            long tokens = 0;
            for (int[] r : fresh.responses()) {
                tokens += r.length;
            }
            long prefillTokens = fresh.responses().length;
            assertTrue(tokens - prefillTokens <= fresh.speculative().acceptedTokens() + fresh.speculative().sequenceSteps());
        } finally {
            PreferencePairsFixture.release(role);
        }
    }
}

package org.sparkrlhf.jobs.calls;

import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.SpeculativeGenerator;
import org.sparkrlhf.jobs.config.RunConfig.OptimizerConfig;
import org.sparkrlhf.jobs.config.RunConfig.SpeculativeConfig;
import org.sparkrlhf.jobs.executor.RankContext;
import org.sparkrlhf.jobs.executor.RankFunction;
import org.sparkrlhf.jobs.executor.ResidentModel;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The actor_gen call on a data-parallel layout: each rank samples {@code groupSize} responses for
 * each of its prompts with the engine's KV-cache generation, on the actor replica it keeps for
 * training (generation and training share the replica, so the policy is the one just trained).
 * Sample k of the rank (prompt k / groupSize) draws with sequence id {@code firstSequenceId + k},
 * so a run's samples depend on the seed alone, not on how the batch was split over ranks. With
 * {@code withLogprobs}, a forward over prompt + response gives each response token's logprob
 * under the generating policy (the "old" logprobs of the clipped loss). Both run in the placement's
 * micro-batches ({@link MicroBatches}): generation one micro-batch after the other, the forward
 * pipelined over a sharded copy's stages. With {@code speculative}, a whole model's rank decodes
 * with S3D ({@link SpeculativeGenerator}) drafting from {@code maskEmbeddings} (freshly initialised
 * when null): greedy gives plain greedy's tokens, sampling plain sampling's distribution.
 */
public final class GenerateCall implements RankFunction<GenerateCall.Slice, GenerateCall.Result> {
    public record Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                        int[][] prompts, int firstSequenceId, int groupSize, int maxNewTokens, float temperature,
                        int topK, float topP, long seed, int[] eosIds, int padId, boolean withLogprobs,
                        SpeculativeConfig speculative, float[] maskEmbeddings)
            implements Serializable {
        /** Plain decoding. */
        public Slice(String role, ModelSource source, long version, int dataParallel, OptimizerConfig optimizer,
                     int[][] prompts, int firstSequenceId, int groupSize, int maxNewTokens, float temperature,
                     int topK, float topP, long seed, int[] eosIds, int padId, boolean withLogprobs) {
            this(role, source, version, dataParallel, optimizer, prompts, firstSequenceId, groupSize, maxNewTokens,
                    temperature, topK, topP, seed, eosIds, padId, withLogprobs, null, null);
        }
    }

    /**
     * Per sample (prompt-major: prompt i's samples are i * groupSize ...): tokens, EOS flag, logprobs or
     * null; with speculative decoding, the mask embeddings it drafted with and what it did (else null).
     */
    public record Result(int[][] responses, boolean[] stoppedAtEos, float[][] logprobs, float[] maskEmbeddings,
                         SpeculativeFigures speculative) implements Serializable {
    }

    /** The seed of freshly initialised mask embeddings: fixed, so every rank initialises the same. */
    static final long DRAFT_SEED = 0x53_3D;

    @Override
    public Result apply(RankContext context, Slice slice) {
        if (slice.dataParallel() != context.dataParallel()) {
            throw new IllegalArgumentException("a dp" + slice.dataParallel() + " call run with dp " + context.dataParallel());
        }
        ResidentModel replica = Replicas.trained(context, slice.role(), slice.source(), slice.version(), slice.optimizer());
        int samples = slice.prompts().length * slice.groupSize();
        if (samples == 0) {
            return new Result(new int[0][], new boolean[0], slice.withLogprobs() ? new float[0][] : null,
                    slice.maskEmbeddings(), slice.speculative() == null ? null : SpeculativeFigures.NONE);
        }
        int[][] prompts = new int[samples][];
        int[] sequenceIds = new int[samples];
        for (int k = 0; k < samples; k++) {
            prompts[k] = slice.prompts()[k / slice.groupSize()];
            sequenceIds[k] = slice.firstSequenceId() + k;
        }
        // the plan's micro-batches, one after the other (the generators have no pipelined decode); sequence
        // ids keep every sample's draws, and so its tokens, those of a single batch
        int[] starts = MicroBatches.starts(context, samples);
        List<int[][]> promptParts = new ArrayList<>(starts.length - 1);
        List<int[]> idParts = new ArrayList<>(starts.length - 1);
        for (int j = 0; j + 1 < starts.length; j++) {
            promptParts.add(Arrays.copyOfRange(prompts, starts[j], starts[j + 1]));
            idParts.add(Arrays.copyOfRange(sequenceIds, starts[j], starts[j + 1]));
        }
        SamplingParams sampling = new SamplingParams(slice.temperature(), slice.topK(), slice.topP());
        Generator.Options options = new Generator.Options(slice.maxNewTokens(), sampling, slice.seed(), slice.eosIds(),
                slice.padId(), false);
        List<GenerationResult> parts;
        float[] maskEmbeddings = null;
        SpeculativeFigures figures = null;
        if (slice.speculative() == null) {
            parts = replica.generate(promptParts, idParts, options);
        } else {
            if (replica.isSharded()) {
                throw new IllegalArgumentException("generation.speculative: S3D decoding runs on a whole model per rank "
                        + "(a data-parallel layout), not on a tensor/pipeline shard; place actor_gen with tp = pp = 1");
            }
            SpeculativeConfig c = slice.speculative();
            S3dConfig s3d = new S3dConfig(c.skipFrom(), c.skipTo(), c.draftTokens());
            LlamaModel model = replica.model();
            parts = new ArrayList<>(promptParts.size());
            figures = SpeculativeFigures.NONE;
            try (S3dDraft draft = slice.maskEmbeddings() == null ? S3dDraft.initial(model, s3d, DRAFT_SEED)
                    : S3dDraft.of(model, s3d, slice.maskEmbeddings())) {
                SpeculativeGenerator generator = new SpeculativeGenerator(model, draft);
                for (int j = 0; j < promptParts.size(); j++) {
                    SpeculativeGenerator.Result r = generator.generate(promptParts.get(j), idParts.get(j), options);
                    parts.add(r.generation());
                    figures = figures.plus(SpeculativeFigures.of(r.stats()));
                }
                maskEmbeddings = draft.values();
            }
        }
        int[][] tokens = new int[samples][];
        boolean[] stoppedAtEos = new boolean[samples];
        for (int j = 0; j < parts.size(); j++) {
            GenerationResult part = parts.get(j);
            System.arraycopy(part.tokens(), 0, tokens, starts[j], part.tokens().length);
            System.arraycopy(part.stoppedAtEos(), 0, stoppedAtEos, starts[j], part.stoppedAtEos().length);
        }
        float[][] logprobs = slice.withLogprobs()
                ? RefLogprobsCall.logprobs(context, replica, prompts, tokens, slice.padId()) : null;
        return new Result(tokens, stoppedAtEos, logprobs, maskEmbeddings, figures);
    }
}

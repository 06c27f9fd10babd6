package org.sparkrlhf.jobs.graph;

import org.sparkrlhf.jobs.calls.GenerateCall;
import org.sparkrlhf.jobs.calls.SpeculativeFigures;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.plan.Placement;

import java.util.ArrayList;
import java.util.List;

/**
 * The generate executor function, on the driver: {@code samples} responses to each prompt from the
 * current version of {@code role} on {@code at} (moved there first when another placement holds it),
 * sampled with the run's generation settings and {@code seed}, or greedy. Sample j of prompt p is
 * sequence {@code p * samples + j} of the call: its random stream depends on that id and the seed
 * only, so the tokens do not depend on the layout.
 */
public final class Generation {
    /** The responses (prompt i's rows repeated per sample) and, when asked for, their logprobs. */
    public record Output(Sequences sequences, float[][] logprobs) {
    }

    /** The iteration's summed speculative figures, as a result in its keys. */
    private static final String SPECULATIVE = "s3d";

    private Generation() {
    }

    public static Output run(RunContext run, String role, Placement at, Keys keys, int[][] prompts, int samples,
                             boolean greedy, long seed, boolean withLogprobs, String description) {
        return run(run, role, at, keys, prompts, samples, greedy, seed, withLogprobs, description, null);
    }

    /**
     * As above, decoding speculatively with {@code draft} when not null; the call's figures
     * ({@code <call>/tokens_per_second}: response tokens over the call's seconds; with a draft
     * {@code s3d/acceptance}, {@code s3d/tokens_per_step}, {@code s3d/draft_seconds},
     * {@code s3d/verify_seconds}, the last two summed over ranks) go to {@code keys}.
     */
    public static Output run(RunContext run, String role, Placement at, Keys keys, int[][] prompts, int samples,
                             boolean greedy, long seed, boolean withLogprobs, String description,
                             SpeculativeDraft draft) {
        keys.addRealloc(run.models().prepare(role, at, false));
        long start = System.nanoTime();
        RunConfig config = run.config();
        RunConfig.GenerationConfig g = config.generation();
        int dp = at.dp();
        int n = prompts.length;
        List<GenerateCall.Slice> slices = new ArrayList<>(dp);
        for (int r = 0; r < dp; r++) {
            int from = RowSplit.from(n, 1, dp, r);
            int to = RowSplit.from(n, 1, dp, r + 1);
            slices.add(new GenerateCall.Slice(role, run.models().source(role), run.models().version(role), dp,
                    config.optimizer(), java.util.Arrays.copyOfRange(prompts, from, to), from * samples, samples,
                    g.maxNewTokens(), greedy ? 0f : (float) g.temperature(), greedy ? 0 : g.topK(),
                    greedy ? 1f : (float) g.topP(), greedy ? 0 : seed, new int[]{run.special().eos()},
                    run.special().pad(), withLogprobs, draft == null ? null : draft.config(),
                    draft == null ? null : draft.values()));
        }
        List<GenerateCall.Result> results = at.perDataRank(run.runner().run(description, at, at.perRank(slices),
                new GenerateCall()));
        run.models().holds(role, at);
        int total = n * samples;
        int[][] rowPrompts = new int[total][];
        int[][] responses = new int[total][];
        boolean[] stopped = new boolean[total];
        float[][] logprobs = withLogprobs ? new float[total][] : null;
        int k = 0;
        for (GenerateCall.Result result : results) {
            for (int j = 0; j < result.responses().length; j++, k++) {
                rowPrompts[k] = prompts[k / samples];
                responses[k] = result.responses()[j];
                stopped[k] = result.stoppedAtEos()[j];
                if (withLogprobs) {
                    logprobs[k] = result.logprobs()[j];
                }
            }
        }
        if (k != total) {
            throw new IllegalStateException(description + ": " + k + " responses came back for " + total);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        String name = callName(description);
        keys.addSeconds(name, seconds);
        long tokens = 0;
        for (int[] r : responses) {
            tokens += r.length;
        }
        keys.putFigure(name + "/tokens_per_second", tokens / seconds);
        if (draft != null) {
            SpeculativeFigures f = SpeculativeFigures.NONE;
            for (GenerateCall.Result result : results) {
                f = f.plus(result.speculative());
            }
            // summed over the iteration's speculative calls (ReMax's greedy baseline is one too)
            synchronized (keys) {
                if (keys.hasResult(SPECULATIVE)) {
                    f = f.plus(keys.result(SPECULATIVE, SpeculativeFigures.class));
                }
                keys.putResult(SPECULATIVE, f);
            }
            if (draft.values() == null) {
                draft.update(results.get(0).maskEmbeddings());
            }
            keys.putFigure("s3d/acceptance", f.acceptance());
            keys.putFigure("s3d/tokens_per_step", f.tokensPerStep());
            keys.putFigure("s3d/draft_seconds", f.draftSeconds());
            keys.putFigure("s3d/verify_seconds", f.verifySeconds());
        }
        return new Output(new Sequences(rowPrompts, responses, stopped), logprobs);
    }

    /** The first word of a description: the call's name. */
    static String callName(String description) {
        int space = description.indexOf(' ');
        return space < 0 ? description : description.substring(0, space);
    }
}

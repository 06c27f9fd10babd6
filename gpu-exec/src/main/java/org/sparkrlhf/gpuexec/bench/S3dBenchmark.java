package org.sparkrlhf.gpuexec.bench;

import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.S3dCalibration;
import org.sparkrlhf.gpuexec.model.S3dConfig;
import org.sparkrlhf.gpuexec.model.S3dDraft;
import org.sparkrlhf.gpuexec.model.S3dExample;
import org.sparkrlhf.gpuexec.model.S3dSpeedup;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.SpeculativeGenerator;
import org.sparkrlhf.gpuexec.model.SpeculativeStats;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.train.AdamW;
import org.sparkrlhf.gpuexec.train.S3dTrainer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * S3D against plain decoding on the CPU backend: trains a small Llama on {@link CountingText}
 * (the base model), S3D-trains the mask embeddings of a few drafts (layer-skip range, k), ranks
 * them with {@link S3dCalibration}, and prints greedy new tokens/s of plain and S3D decoding at
 * batch 1, 8 and 64 with the best draft, its acceptance and tokens per step, and whether both
 * gave the same tokens (they must). Times are the fastest of three runs; r and c (the speedup
 * model's verify and draft costs, see {@link S3dSpeedup}) are measured from the same runs.
 *
 * <pre>
 *   java -cp gpu-exec/target/classes:... org.sparkrlhf.gpuexec.bench.S3dBenchmark
 *       [--hidden 256] [--layers 8] [--base-steps 400] [--s3d-steps 300] [--s3d-lr 0.02] [--new-tokens 96] [--batches 1,8,64]
 * </pre>
 */
public final class S3dBenchmark {
    private S3dBenchmark() {
    }

    public static void main(String[] args) {
        int hidden = intArg(args, "--hidden", 256), layers = intArg(args, "--layers", 8);
        int baseSteps = intArg(args, "--base-steps", 400), s3dSteps = intArg(args, "--s3d-steps", 300);
        int newTokens = intArg(args, "--new-tokens", 96);
        float s3dLr = Float.parseFloat(stringArg(args, "--s3d-lr", "0.02"));
        int[] batches = Arrays.stream(stringArg(args, "--batches", "1,8,64").split(",")).mapToInt(Integer::parseInt).toArray();
        ModelConfig config = ModelConfig.llama(CountingText.VOCAB, hidden, hidden * 8 / 3 / 16 * 16, layers, hidden / 64, Math.max(1, hidden / 128), 1024);
        try (CpuBackend backend = new CpuBackend();
             LlamaModel model = LlamaModel.random(backend, config, DType.F32, 1, 0.02f)) {
            long params = 0;
            for (var s : model.parameters().specs()) params += Arrays.stream(s.shape()).asLongStream().reduce(1, (a, b) -> a * b);
            System.out.printf(Locale.ROOT, "backend %s; model: Llama, %d layers, hidden %d, vocab %d, %.2fM parameters (F32)%n",
                    backend.name(), layers, hidden, CountingText.VOCAB, params / 1e6);
            trainBase(model, baseSteps);
            SplittableRandom rng = new SplittableRandom(7);
            List<int[]> texts = new ArrayList<>();
            for (int i = 0; i < 512; i++) texts.add(CountingText.sample(rng, 64));
            List<S3dConfig> candidates = List.of(
                    new S3dConfig(layers / 4, layers - layers / 4, 3),
                    new S3dConfig(layers / 4, layers / 2, 3),
                    new S3dConfig(layers / 4, layers - layers / 4, 5));
            List<S3dDraft> drafts = new ArrayList<>();
            try {
                for (S3dConfig c : candidates) drafts.add(trainDraft(model, c, texts, s3dSteps, s3dLr));
                int[][] calib = prompts(8, 99);
                List<S3dCalibration.Candidate> ranked = S3dCalibration.rank(model, drafts, calib, 48, 1.0);
                System.out.println("calibration (greedy, 8 prompts, 48 new tokens; predicted speedup with r = 1):");
                for (S3dCalibration.Candidate c : ranked) {
                    System.out.printf(Locale.ROOT, "  skip [%d,%d) k=%d  alpha %.3f  tokens/step measured %.2f expected %.2f  predicted speedup %.2f%n",
                            c.config().skipFrom(), c.config().skipTo(), c.config().draftTokens(), c.acceptanceRate(),
                            c.measuredTokensPerStep(), c.expectedTokensPerStep(), c.predictedSpeedup());
                }
                S3dDraft best = drafts.get(candidates.indexOf(ranked.get(0).config()));
                compare(model, best, batches, newTokens);
            } finally {
                for (S3dDraft d : drafts) d.close();
            }
        }
    }

    /** Next-token training of the base model on the counting text. */
    static void trainBase(LlamaModel model, int steps) {
        SplittableRandom rng = new SplittableRandom(1);
        long t0 = System.nanoTime();
        try (AdamW opt = AdamW.forModel(model, new AdamW.Hyper(3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f))) {
            for (int step = 1; step <= steps; step++) {
                int[][] rows = new int[16][];
                for (int i = 0; i < rows.length; i++) rows[i] = CountingText.sample(rng, 64);
                Batch batch = Batch.rightPadded(rows, CountingText.PAD);
                model.zeroGradients();
                TokenStats stats = model.forward(batch, false);
                SftLoss.Result loss = SftLoss.of(batch, stats);
                model.backward(loss.dLogprobs(), null);
                opt.step();
                if (step % 100 == 0 || step == steps) {
                    System.out.printf(Locale.ROOT, "base model step %d: next-token loss %.4f (%.0f s)%n", step, loss.loss(), (System.nanoTime() - t0) * 1e-9);
                }
            }
        }
        model.releaseActivations();
    }

    static S3dDraft trainDraft(LlamaModel model, S3dConfig c, List<int[]> texts, int steps, float lr) {
        S3dDraft draft = S3dDraft.initial(model, c, 3);
        SplittableRandom rng = new SplittableRandom(5);
        List<S3dExample> held = S3dExample.sample(texts, c.draftTokens(), 64, new SplittableRandom(11));
        long t0 = System.nanoTime();
        try (S3dTrainer trainer = new S3dTrainer(model, draft, new AdamW.Hyper(lr, 0.9f, 0.999f, 1e-8f, 0f, 0f))) {
            float before = trainer.evaluate(held);
            for (int step = 0; step < steps; step++) trainer.step(S3dExample.sample(texts, c.draftTokens(), 32, rng));
            System.out.printf(Locale.ROOT, "S3D draft skip [%d,%d) k=%d: %d steps of 32 examples, held-out mask loss %.4f -> %.4f (%.0f s)%n",
                    c.skipFrom(), c.skipTo(), c.draftTokens(), steps, before, trainer.evaluate(held), (System.nanoTime() - t0) * 1e-9);
        }
        return draft;
    }

    /** Prompts of the task: bos and the first numbers of a counting text. */
    static int[][] prompts(int n, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[][] p = new int[n][];
        for (int i = 0; i < n; i++) p[i] = CountingText.sample(rng, 6 + rng.nextInt(8));
        return p;
    }

    static void compare(LlamaModel model, S3dDraft draft, int[] batches, int newTokens) {
        S3dConfig c = draft.config();
        System.out.printf(Locale.ROOT, "greedy decoding, %d new tokens per sequence, draft skip [%d,%d) k=%d%n",
                newTokens, c.skipFrom(), c.skipTo(), c.draftTokens());
        System.out.println("batch | plain tok/s | S3D tok/s | speedup | accepted/drafted | alpha | tokens/step | r = verify/plain step | c = draft/verify | predicted speedup | same tokens");
        Generator.Options o = Generator.Options.greedy(newTokens, new int[0], CountingText.PAD);
        SpeculativeGenerator spec = new SpeculativeGenerator(model, draft);
        try (Generator plain = new Generator(model)) {
            for (int B : batches) {
                int[][] prompts = prompts(B, 1000 + B);
                plain.generate(prompts, o);      // warm-up: allocation, JIT
                spec.generate(prompts, o);
                // the fastest of three runs each, alternating: the machine's cores are shared
                GenerationResult p = null;
                SpeculativeGenerator.Result s = null;
                double plainSeconds = Double.MAX_VALUE, specSeconds = Double.MAX_VALUE;
                for (int run = 0; run < 3; run++) {
                    long t0 = System.nanoTime();
                    p = plain.generate(prompts, o);
                    plainSeconds = Math.min(plainSeconds, (System.nanoTime() - t0) * 1e-9);
                    t0 = System.nanoTime();
                    SpeculativeGenerator.Result r = spec.generate(prompts, o);
                    double seconds = (System.nanoTime() - t0) * 1e-9;
                    if (seconds < specSeconds) {
                        specSeconds = seconds;
                        s = r;
                    }
                }
                long tokens = Arrays.stream(p.tokens()).mapToLong(t -> t.length).sum();
                long specTokens = Arrays.stream(s.generation().tokens()).mapToLong(t -> t.length).sum();
                SpeculativeStats st = s.stats();
                // the speedup model with this machine's measured costs: r = a verification step's
                // time over a plain decoding step's, c = a draft step's over a verification step's
                double r = (st.verifySeconds() / st.verifySteps()) / (plainSeconds / newTokens);
                double cost = st.draftSeconds() / st.verifySeconds();
                double predicted = S3dSpeedup.expectedTokensPerStep(st.conditionalAcceptance(), c.draftTokens()) / (r * (1 + cost));
                System.out.printf(Locale.ROOT, "%5d | %11.1f | %9.1f | %7.2f | %16.3f | %5.3f | %11.2f | %20.2f | %16.2f | %17.2f | %s%n",
                        B, tokens / plainSeconds, specTokens / specSeconds, plainSeconds / specSeconds * specTokens / tokens,
                        st.acceptanceRate(), st.conditionalAcceptance(), st.tokensPerStep(), r, cost, predicted,
                        Arrays.deepEquals(p.tokens(), s.generation().tokens()) ? "yes" : "NO");
            }
            int[][] one = prompts(1, 5);
            System.out.println("sample: " + CountingText.decode(one[0]) + " -> "
                    + CountingText.decode(spec.generate(one, Generator.Options.greedy(40, new int[0], 0)).generation().tokens()[0]));
        }
    }

    private static int intArg(String[] args, String name, int dflt) {
        return Integer.parseInt(stringArg(args, name, Integer.toString(dflt)));
    }

    private static String stringArg(String[] args, String name, String dflt) {
        for (int i = 0; i + 1 < args.length; i++) if (args[i].equals(name)) return args[i + 1];
        return dflt;
    }
}

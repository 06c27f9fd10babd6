package org.sparkrlhf.gpuexec.bench;

import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.checkpoint.StDType;
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

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * S3D against plain decoding on the CPU backend: trains a Llama on {@link CountingText} (the base
 * model), S3D-trains the mask embeddings of one or more drafts (layer-skip range, k), ranks them
 * with {@link S3dCalibration} when there are several, and prints greedy new tokens/s of plain and
 * S3D decoding at each batch size with the best draft, its acceptance and tokens per step, and
 * whether both gave the same tokens (they must). Plain and S3D runs alternate and the fastest of
 * {@code --runs} each counts (the machine's cores are shared); r and c (the speedup model's verify
 * and draft costs, see {@link S3dSpeedup}) are measured from the same runs.
 *
 * <p>Options (defaults: a 6M-parameter model that runs in minutes): --hidden 256, --layers 8,
 * --threads (the backend's pool; OpenBLAS runs one thread per call inside it; default all cores),
 * --base-steps 400, --base-rows 16, --base-length 64, --base-lr 3e-3 (warmed up over a tenth of
 * the steps, then decayed to a tenth), --base DIR (loads the base model saved there, else trains
 * and saves it), --drafts from-to:k,... (default three drafts from the layer count),
 * --s3d-steps 300, --s3d-batch 32, --s3d-length 64 (tokens per training text), --s3d-lr 0.02,
 * --s3d-texts counting|generated (the task's text, or the base model's greedy continuations),
 * --new-tokens 96, --batches 1,8,64, --runs 3.
 *
 * <p>A model whose decoding is bound by reading its weights (103.57M parameters, 414 MB of F32):
 * <pre>
 *   nice java -Xmx10g -cp gpu-exec/target/classes:$(cat cp.txt) org.sparkrlhf.gpuexec.bench.S3dBenchmark \
 *       --hidden 1024 --layers 9 --base-steps 120 --base-rows 8 --base-length 32 --base-lr 1e-3 \
 *       --drafts 2-7:4 --s3d-steps 150 --s3d-batch 8 --s3d-length 32 --s3d-lr 0.05 \
 *       --new-tokens 24 --runs 3 --batches 1,2,4,8,64
 * </pre>
 * took 12.4 minutes on 2 shared cores (base training 6, S3D training 3.4) and printed, greedy
 * output identical at every batch, draft skipping layers [2, 7) of 9 with k = 4:
 * <pre>
 * batch | plain tok/s | S3D tok/s | speedup | accepted/drafted | alpha | tokens/step | r    | c
 *     1 |        13.9 |      24.9 |    1.80 |            0.607 | 0.773 |        3.43 | 1.19 | 0.45
 *     2 |        27.4 |      32.5 |    1.19 |            0.355 | 0.600 |        2.42 | 1.23 | 0.44
 *     4 |        53.5 |      51.0 |    0.95 |            0.478 | 0.714 |        2.91 | 1.63 | 0.44
 *     8 |        95.1 |      58.0 |    0.61 |            0.475 | 0.693 |        2.90 | 2.22 | 0.45
 *    64 |       206.6 |     115.1 |    0.56 |            0.468 | 0.697 |        2.87 | 2.04 | 0.45
 * </pre>
 * At batch 1 a plain step reads every weight for one row, and the verification of k + 1 = 5 rows
 * reads them once too (r near 1); from batch 4 on the k + 1 rows per sequence make the products
 * compute-bound on the CPU, r grows with the batch and the gain is gone. The same run with
 * {@code --base DIR --s3d-texts generated} (the draft trained on the saved base model's own
 * continuations) accepted more: speedup 2.12, 1.57, 1.21, 1.05, 0.56 at batch 1, 2, 4, 8, 64
 * (alpha 1.0, 0.88, 0.91, 0.91, 0.84); see the README.
 */
public final class S3dBenchmark {
    private S3dBenchmark() {
    }

    /** The knobs of a run (defaults: the small model, a few minutes on two cores). */
    record Options(int hidden, int layers, int threads, int baseSteps, int baseRows, int baseLength, float baseLr,
                   int s3dSteps, int s3dBatch, int s3dLength, float s3dLr, boolean s3dOnGenerated, List<S3dConfig> drafts,
                   int newTokens, int[] batches, int runs, Path base) {
        static Options parse(String[] args) {
            int layers = intArg(args, "--layers", 8);
            List<S3dConfig> drafts = new ArrayList<>();
            String spec = stringArg(args, "--drafts", null);
            if (spec == null) {
                drafts.add(new S3dConfig(layers / 4, layers - layers / 4, 3));
                drafts.add(new S3dConfig(layers / 4, layers / 2, 3));
                drafts.add(new S3dConfig(layers / 4, layers - layers / 4, 5));
            } else {
                // from-to:k, comma separated (skip the layers [from, to), k drafted tokens)
                for (String d : spec.split(",")) {
                    String[] ft = d.split(":"), r = ft[0].split("-");
                    if (ft.length != 2 || r.length != 2) throw new IllegalArgumentException("--drafts: expected from-to:k, got '" + d + "'");
                    drafts.add(new S3dConfig(Integer.parseInt(r[0]), Integer.parseInt(r[1]), Integer.parseInt(ft[1])));
                }
            }
            return new Options(intArg(args, "--hidden", 256), layers, intArg(args, "--threads", Runtime.getRuntime().availableProcessors()),
                    intArg(args, "--base-steps", 400), intArg(args, "--base-rows", 16), intArg(args, "--base-length", 64),
                    Float.parseFloat(stringArg(args, "--base-lr", "3e-3")),
                    intArg(args, "--s3d-steps", 300), intArg(args, "--s3d-batch", 32), intArg(args, "--s3d-length", 64),
                    Float.parseFloat(stringArg(args, "--s3d-lr", "0.02")), texts(stringArg(args, "--s3d-texts", "counting")), List.copyOf(drafts),
                    intArg(args, "--new-tokens", 96),
                    Arrays.stream(stringArg(args, "--batches", "1,8,64").split(",")).mapToInt(Integer::parseInt).toArray(),
                    intArg(args, "--runs", 3), Optional.ofNullable(stringArg(args, "--base", null)).map(Path::of).orElse(null));
        }
    }

    /** --s3d-texts: counting (the task's text) or generated (the base model's own greedy continuations). */
    private static boolean texts(String v) {
        return switch (v) {
            case "counting" -> false;
            case "generated" -> true;
            default -> throw new IllegalArgumentException("--s3d-texts: expected counting or generated, got '" + v + "'");
        };
    }

    public static void main(String[] args) {
        Options opt = Options.parse(args);
        int hidden = opt.hidden(), layers = opt.layers();
        long start = System.nanoTime();
        ModelConfig config = ModelConfig.llama(CountingText.VOCAB, hidden, hidden * 8 / 3 / 16 * 16, layers, hidden / 64, Math.max(1, hidden / 128), 1024);
        for (S3dConfig c : opt.drafts()) c.check(layers);
        // a base model saved by an earlier run with --base is loaded instead of trained again
        boolean saved = opt.base() != null && Files.exists(opt.base().resolve("config.json"));
        try (CpuBackend backend = new CpuBackend(opt.threads());
             LlamaModel model = saved ? LlamaModel.load(backend, opt.base()) : LlamaModel.random(backend, config, DType.F32, 1, 0.02f)) {
            ModelConfig m = model.config();
            if (m.hiddenSize() != hidden || m.numLayers() != layers || m.vocabSize() != CountingText.VOCAB || m.intermediateSize() != config.intermediateSize()) {
                throw new IllegalArgumentException(opt.base() + ": the saved base model's config is not the one of --hidden " + hidden + " --layers " + layers);
            }
            long params = 0;
            for (var s : model.parameters().specs()) params += Arrays.stream(s.shape()).asLongStream().reduce(1, (a, b) -> a * b);
            System.out.printf(Locale.ROOT, "backend %s; model: Llama, %d layers, hidden %d, intermediate %d, %d heads (%d kv), vocab %d, %.2fM parameters (F32, %.0f MB)%n",
                    backend.name(), layers, hidden, config.intermediateSize(), config.numHeads(), config.numKvHeads(),
                    CountingText.VOCAB, params / 1e6, params * 4 / 1e6);
            if (saved) {
                System.out.println("base model loaded from " + opt.base());
            } else {
                trainBase(model, opt);
                if (opt.base() != null) model.save(opt.base(), StDType.F32, Long.MAX_VALUE);
            }
            List<int[]> texts = opt.s3dOnGenerated() ? generatedTexts(model, opt.s3dLength()) : countingTexts(opt.s3dLength());
            List<S3dDraft> drafts = new ArrayList<>();
            try {
                for (S3dConfig c : opt.drafts()) drafts.add(trainDraft(model, c, texts, opt));
                S3dDraft best = drafts.get(0);
                if (drafts.size() > 1) {
                    int[][] calib = prompts(8, 99);
                    List<S3dCalibration.Candidate> ranked = S3dCalibration.rank(model, drafts, calib, 48, 1.0);
                    System.out.println("calibration (greedy, 8 prompts, 48 new tokens; predicted speedup with r = 1):");
                    for (S3dCalibration.Candidate c : ranked) {
                        System.out.printf(Locale.ROOT, "  skip [%d,%d) k=%d  alpha %.3f  tokens/step measured %.2f expected %.2f  predicted speedup %.2f%n",
                                c.config().skipFrom(), c.config().skipTo(), c.config().draftTokens(), c.acceptanceRate(),
                                c.measuredTokensPerStep(), c.expectedTokensPerStep(), c.predictedSpeedup());
                    }
                    best = drafts.get(opt.drafts().indexOf(ranked.get(0).config()));
                }
                compare(model, best, opt);
            } finally {
                for (S3dDraft d : drafts) d.close();
            }
        }
        System.out.printf(Locale.ROOT, "total %.0f s%n", (System.nanoTime() - start) * 1e-9);
    }

    /** Next-token training of the base model on the counting text. */
    static void trainBase(LlamaModel model, Options o) {
        SplittableRandom rng = new SplittableRandom(1);
        long t0 = System.nanoTime();
        int steps = o.baseSteps();
        AdamW.Hyper hyper = new AdamW.Hyper(o.baseLr(), 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f);
        // linear warm-up over the first tenth of the steps, then linear decay to a tenth: a short
        // run at a large learning rate on a large model diverges without the warm-up
        int warmup = Math.max(1, steps / 10);
        try (AdamW opt = AdamW.forModel(model, hyper)) {
            for (int step = 1; step <= steps; step++) {
                float scale = step <= warmup ? (float) step / warmup : 1f - 0.9f * (step - warmup) / Math.max(1, steps - warmup);
                opt.setHyper(new AdamW.Hyper(o.baseLr() * scale, hyper.beta1(), hyper.beta2(), hyper.eps(), hyper.weightDecay(), hyper.maxGradNorm()));
                int[][] rows = new int[o.baseRows()][];
                for (int i = 0; i < rows.length; i++) rows[i] = CountingText.sample(rng, o.baseLength());
                Batch batch = Batch.rightPadded(rows, CountingText.PAD);
                model.zeroGradients();
                TokenStats stats = model.forward(batch, false);
                SftLoss.Result loss = SftLoss.of(batch, stats);
                model.backward(loss.dLogprobs(), null);
                opt.step();
                if (step % Math.max(1, steps / 8) == 0 || step == steps) {
                    System.out.printf(Locale.ROOT, "base model step %d: next-token loss %.4f (%.0f s)%n", step, loss.loss(), (System.nanoTime() - t0) * 1e-9);
                }
            }
        }
        model.releaseActivations();
    }

    static List<int[]> countingTexts(int length) {
        SplittableRandom rng = new SplittableRandom(7);
        List<int[]> texts = new ArrayList<>();
        for (int i = 0; i < 512; i++) texts.add(CountingText.sample(rng, length));
        return texts;
    }

    /**
     * Texts of the base model itself: 256 task prompts of 8 tokens and their greedy continuations
     * to {@code length} tokens. The draft must predict what the verifier will emit, and where the
     * model departs from the task's text (a short training leaves it imperfect) its own
     * continuations teach the draft that, as an RLHF actor's rollouts would.
     */
    static List<int[]> generatedTexts(LlamaModel model, int length) {
        long t0 = System.nanoTime();
        SplittableRandom rng = new SplittableRandom(7);
        List<int[]> texts = new ArrayList<>();
        try (Generator g = new Generator(model)) {
            Generator.Options o = Generator.Options.greedy(length - 8, new int[0], CountingText.PAD);
            for (int batch = 0; batch < 4; batch++) {
                int[][] prompts = new int[64][];
                for (int i = 0; i < prompts.length; i++) prompts[i] = CountingText.sample(rng, 8);
                int[][] out = g.generate(prompts, o).tokens();
                for (int i = 0; i < prompts.length; i++) {
                    int[] t = Arrays.copyOf(prompts[i], 8 + out[i].length);
                    System.arraycopy(out[i], 0, t, 8, out[i].length);
                    texts.add(t);
                }
            }
        }
        System.out.printf(Locale.ROOT, "S3D texts: %d greedy continuations of the base model, %d tokens each (%.0f s)%n",
                texts.size(), length, (System.nanoTime() - t0) * 1e-9);
        return texts;
    }

    static S3dDraft trainDraft(LlamaModel model, S3dConfig c, List<int[]> texts, Options o) {
        int steps = o.s3dSteps();
        S3dDraft draft = S3dDraft.initial(model, c, 3);
        SplittableRandom rng = new SplittableRandom(5);
        List<S3dExample> held = S3dExample.sample(texts, c.draftTokens(), Math.min(64, 2 * o.s3dBatch()), new SplittableRandom(11));
        long t0 = System.nanoTime();
        try (S3dTrainer trainer = new S3dTrainer(model, draft, new AdamW.Hyper(o.s3dLr(), 0.9f, 0.999f, 1e-8f, 0f, 0f))) {
            float before = trainer.evaluate(held);
            double sum = 0;
            int every = Math.max(1, steps / 5);
            for (int step = 1; step <= steps; step++) {
                sum += trainer.step(S3dExample.sample(texts, c.draftTokens(), o.s3dBatch(), rng));
                if (step % every == 0) {
                    System.out.printf(Locale.ROOT, "  S3D step %d: mean mask loss of the last %d steps %.4f (%.0f s)%n", step, every, sum / every, (System.nanoTime() - t0) * 1e-9);
                    sum = 0;
                }
            }
            System.out.printf(Locale.ROOT, "S3D draft skip [%d,%d) k=%d: %d steps of %d examples, held-out mask loss %.4f -> %.4f (%.0f s)%n",
                    c.skipFrom(), c.skipTo(), c.draftTokens(), steps, o.s3dBatch(), before, trainer.evaluate(held), (System.nanoTime() - t0) * 1e-9);
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

    static void compare(LlamaModel model, S3dDraft draft, Options opt) {
        S3dConfig c = draft.config();
        int newTokens = opt.newTokens();
        System.out.printf(Locale.ROOT, "greedy decoding, %d new tokens per sequence, draft skip [%d,%d) k=%d%n",
                newTokens, c.skipFrom(), c.skipTo(), c.draftTokens());
        System.out.println("batch | plain tok/s | S3D tok/s | speedup | accepted/drafted | alpha | tokens/step | r = verify/plain step | c = draft/verify | predicted speedup | same tokens");
        Generator.Options o = Generator.Options.greedy(newTokens, new int[0], CountingText.PAD);
        SpeculativeGenerator spec = new SpeculativeGenerator(model, draft);
        try (Generator plain = new Generator(model)) {
            for (int B : opt.batches()) {
                int[][] prompts = prompts(B, 1000 + B);
                plain.generate(prompts, o);      // warm-up: allocation, JIT
                spec.generate(prompts, o);
                // the fastest of several runs each, alternating: the machine's cores are shared
                GenerationResult p = null;
                SpeculativeGenerator.Result s = null;
                double plainSeconds = Double.MAX_VALUE, specSeconds = Double.MAX_VALUE;
                for (int run = 0; run < opt.runs(); run++) {
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

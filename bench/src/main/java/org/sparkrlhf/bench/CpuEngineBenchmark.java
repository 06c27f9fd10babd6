package org.sparkrlhf.bench;

import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Forward, forward+backward and decode throughput of the CPU engine on a ~10M-parameter LLaMA
 * with random weights, and of the same model on PyTorch's CPU engine (through DJL, offline, same
 * weights, same thread count) in the same run.
 *
 * <pre>
 *   mvn -B -o -q -pl bench -am package -DskipTests
 *   java -cp bench/target/bench-0.1.0-SNAPSHOT.jar:$(cat bench/target/classpath.txt) org.sparkrlhf.bench.CpuEngineBenchmark
 * </pre>
 * Options: --iterations N (default 5), --no-peer.
 */
public final class CpuEngineBenchmark {
    private CpuEngineBenchmark() {
    }

    public static void main(String[] args) {
        int iterations = 5;
        boolean peer = true;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--iterations" -> iterations = Integer.parseInt(args[++i]);
                case "--no-peer" -> peer = false;
                default -> {
                    System.err.println("usage: CpuEngineBenchmark [--iterations N] [--no-peer]");
                    System.exit(2);
                }
            }
        }
        BenchShape s = new BenchShape(8192, 256, 688, 6, 8, 8, 8, 64, 64, iterations);
        int threads = Runtime.getRuntime().availableProcessors();
        ModelConfig config = s.config();
        int B = s.batch(), T = s.seq();
        SplittableRandom rng = new SplittableRandom(7);
        int[] ids = new int[B * T];
        for (int i = 0; i < ids.length; i++) ids[i] = rng.nextInt(config.vocabSize());
        int[][] prompts = new int[B][T];
        for (int b = 0; b < B; b++) System.arraycopy(ids, b * T, prompts[b], 0, T);
        Batch batch = Batch.rightPadded(prompts, 0);

        try (CpuBackend backend = new CpuBackend(threads);
             LlamaModel model = LlamaModel.random(backend, config, DType.F32, 1, 0.02f);
             Generator generator = new Generator(model)) {
            System.out.println("shape: " + s.describe(model.parameters().count()));
            System.out.println("threads: " + threads + " (" + backend.name() + "; PyTorch intra-op threads set to the same)");

            double fwd = Timing.medianSeconds(1, iterations, () -> model.forward(batch, false));
            double fwdBwd = Timing.medianSeconds(1, iterations, () -> {
                model.zeroGradients();
                TokenStats st = model.forward(batch, false);
                model.backward(SftLoss.of(batch, st).dLogprobs(), null);
            });
            Generator.Options greedy = new Generator.Options(s.newTokens(), SamplingParams.GREEDY, 0, new int[0], 0, false);
            int[][] ours = new int[1][];
            double gen = Timing.medianSeconds(1, Math.max(1, iterations / 2), () -> {
                GenerationResult r = generator.generate(prompts, greedy);
                ours[0] = flatten(r.tokens());
            });
            double[] engine = {B * T / fwd, B * T / fwdBwd, B * s.newTokens() / gen};
            float[] ourLogprobs = model.forward(batch, false).logprobs();

            double[] torch = null;
            String peerNote = "";
            if (peer) {
                System.setProperty("ai.djl.offline", "true");
                System.setProperty("ai.djl.pytorch.num_threads", Integer.toString(threads));
                System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
                List<String> names = new ArrayList<>();
                for (LlamaWeights.Spec sp : model.parameters().specs()) names.add(sp.name());
                float[] invFreq = config.rope().inverseFrequencies(config.ropeTheta(), config.headDim());
                try (TorchPeer t = new TorchPeer(config, names, n -> backend.download(model.parameters().get(n)),
                        n -> model.parameters().get(n).shape(), invFreq)) {
                    System.out.println("peer: " + TorchPeer.engineVersion() + " (DJL, offline, bundled pytorch-native-cpu)");
                    float[] theirs = t.forward(ids, B, T);
                    double maxDiff = 0;
                    for (int i = 0; i < theirs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(theirs[i] - ourLogprobs[i]));
                    double tf = Timing.medianSeconds(1, iterations, () -> t.forward(ids, B, T));
                    double tfb = Timing.medianSeconds(1, iterations, () -> t.forwardBackward(ids, B, T));
                    int[][] peerTokens = new int[1][];
                    double tg = Timing.medianSeconds(1, Math.max(1, iterations / 2), () -> peerTokens[0] = t.generate(ids, B, T, s.newTokens()));
                    torch = new double[]{B * T / tf, B * T / tfb, B * s.newTokens() / tg};
                    int same = 0;
                    for (int i = 0; i < peerTokens[0].length; i++) if (peerTokens[0][i] == ours[0][i]) same++;
                    peerNote = String.format("peer check: token logprobs max |diff| %.2e; greedy tokens equal %d/%d", maxDiff, same, peerTokens[0].length);
                }
            }

            System.out.println();
            System.out.printf("%-34s %14s %14s %10s%n", "tokens/s", "cpu engine", "pytorch", "ratio");
            String[] rows = {"forward (logprobs)", "forward + backward", "decode (new tokens, incl. prefill)"};
            for (int i = 0; i < 3; i++) {
                if (torch == null) System.out.printf("%-34s %14.0f %14s %10s%n", rows[i], engine[i], "-", "-");
                else System.out.printf("%-34s %14.0f %14.0f %9.2fx%n", rows[i], engine[i], torch[i], engine[i] / torch[i]);
            }
            if (!peerNote.isEmpty()) System.out.println(peerNote);
            System.out.println("(ratio = cpu engine / pytorch; above 1 means the cpu engine is faster)");
        }
    }

    private static int[] flatten(int[][] rows) {
        int n = 0;
        for (int[] r : rows) n += r.length;
        int[] out = new int[n];
        int i = 0;
        for (int[] r : rows) for (int v : r) out[i++] = v;
        return out;
    }
}

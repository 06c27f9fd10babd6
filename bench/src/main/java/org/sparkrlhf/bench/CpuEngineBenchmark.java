package org.sparkrlhf.bench;

import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuKernels;
import org.sparkrlhf.gpuexec.model.Batch;
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
 * Forward, forward+backward and decode throughput of the CPU engine on a LLaMA with random
 * weights (--model 9m: 8.94M parameters; 134m: the 134M model of the GPU benchmark, 12 layers,
 * hidden 768, vocab 32000), and of the same model on PyTorch's CPU engine (through DJL, offline,
 * same weights, same thread count) in the same run.
 *
 * <pre>
 *   mvn -B -o -q -pl bench -am package -DskipTests
 *   java --add-modules jdk.incubator.vector -cp bench/target/bench-0.1.0-SNAPSHOT.jar:$(cat bench/target/classpath.txt) org.sparkrlhf.bench.CpuEngineBenchmark
 * </pre>
 * Options: --model 9m|134m (default 9m), --iterations N (default 5), --warmups N (default 8),
 * --threads N (default: all cores), --kernels fast|reference (default: the CPU backend's
 * default), --no-peer.
 * Figures are tokens per wall-clock second and tokens per CPU-second of the process (steadier
 * when other work shares the machine); the timed runs of the two engines alternate, so that both
 * see the same load; forward and forward+backward are warmed up by at least --warmups runs each,
 * decode by at least 1, and on until the JIT has settled (see {@link Timing#interleaved}); the
 * last column is the JIT's compiling seconds during each figure's timed runs (of both engines),
 * which the process's CPU time counts. Eight warm-ups at least because the JIT is still compiling
 * the backward's kernels after three: on the 9m model at one thread the process spent 0.64-0.82
 * CPU-s per forward+backward in runs 2 to 5 against 0.36 on the calling thread, and 0.36-0.39 from
 * run 6 on (this is a steady-state throughput, the JIT's one-off cost is not part of it).
 */
public final class CpuEngineBenchmark {
    private CpuEngineBenchmark() {
    }

    public static void main(String[] args) {
        int iterations = 5, warmups = 8;
        int threads = Runtime.getRuntime().availableProcessors();
        boolean peer = true;
        String modelName = "9m";
        CpuKernels kernels = CpuKernels.defaultKernels();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--iterations" -> iterations = Integer.parseInt(args[++i]);
                case "--warmups" -> warmups = Integer.parseInt(args[++i]);
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--no-peer" -> peer = false;
                case "--model" -> modelName = args[++i];
                case "--kernels" -> kernels = CpuKernels.valueOf(args[++i].toUpperCase(java.util.Locale.ROOT));
                default -> {
                    System.err.println("usage: CpuEngineBenchmark [--model 9m|134m] [--iterations N] [--warmups N] [--threads N] [--kernels fast|reference] [--no-peer]");
                    System.exit(2);
                }
            }
        }
        BenchShape s = BenchShape.named(modelName, iterations);
        ModelConfig config = s.config();
        int B = s.batch(), T = s.seq();
        SplittableRandom rng = new SplittableRandom(7);
        int[] ids = new int[B * T];
        for (int i = 0; i < ids.length; i++) ids[i] = rng.nextInt(config.vocabSize());
        int[][] prompts = new int[B][T];
        for (int b = 0; b < B; b++) System.arraycopy(ids, b * T, prompts[b], 0, T);
        Batch batch = Batch.rightPadded(prompts, 0);

        try (CpuBackend backend = new CpuBackend(threads, kernels);
             LlamaModel model = LlamaModel.random(backend, config, DType.F32, 1, 0.02f);
             Generator generator = new Generator(model)) {
            System.out.println("shape: " + s.describe(model.parameters().count()));
            System.out.println("threads: " + threads + " (" + backend.name() + "; PyTorch intra-op threads set to the same); cores: "
                    + Runtime.getRuntime().availableProcessors() + ", load average at start: "
                    + String.format("%.1f", java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage()));

            Runnable fwd = () -> model.forward(batch, false);
            Runnable fwdBwd = () -> {
                model.zeroGradients();
                TokenStats st = model.forward(batch, false);
                model.backward(SftLoss.of(batch, st).dLogprobs(), null);
            };
            Generator.Options greedy = new Generator.Options(s.newTokens(), SamplingParams.GREEDY, 0, new int[0], 0, false);
            int[][] ours = new int[1][];
            Runnable gen = () -> ours[0] = flatten(generator.generate(prompts, greedy).tokens());
            float[] ourLogprobs = model.forward(batch, false).logprobs();

            Timing.Seconds[] engine = new Timing.Seconds[3];
            Timing.Seconds[] torch = null;
            String peerNote = "";
            TorchPeer t = null;
            try {
                if (peer) {
                    System.setProperty("ai.djl.offline", "true");
                    System.setProperty("ai.djl.pytorch.num_threads", Integer.toString(threads));
                    System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
                    List<String> names = new ArrayList<>();
                    for (LlamaWeights.Spec sp : model.parameters().specs()) names.add(sp.name());
                    float[] invFreq = config.rope().inverseFrequencies(config.ropeTheta(), config.headDim());
                    t = new TorchPeer(config, names, n -> backend.download(model.parameters().get(n)),
                            n -> model.parameters().get(n).shape(), invFreq);
                    System.out.println("peer: " + TorchPeer.engineVersion() + " (DJL, offline, bundled pytorch-native-cpu);"
                            + " each figure's runs alternate between the two engines");
                    torch = new Timing.Seconds[3];
                }
                TorchPeer tp = t;
                int[][] peerTokens = new int[1][];
                Runnable[] mine = {fwd, fwdBwd, gen};
                Runnable[] theirs = tp == null ? new Runnable[3] : new Runnable[]{
                        () -> tp.forward(ids, B, T), () -> tp.forwardBackward(ids, B, T),
                        () -> peerTokens[0] = tp.generate(ids, B, T, s.newTokens())};
                for (int i = 0; i < 3; i++) {
                    Timing.Seconds[] r = i == 2 ? Timing.interleaved(1, Math.max(1, iterations / 2), mine[i], theirs[i])
                            : Timing.interleaved(warmups, iterations, mine[i], theirs[i]);
                    engine[i] = r[0];
                    if (torch != null) torch[i] = r[1];
                }
                if (tp != null) {
                    float[] theirLogprobs = tp.forward(ids, B, T);
                    double maxDiff = 0;
                    for (int i = 0; i < theirLogprobs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(theirLogprobs[i] - ourLogprobs[i]));
                    int same = 0;
                    for (int i = 0; i < peerTokens[0].length; i++) if (peerTokens[0][i] == ours[0][i]) same++;
                    peerNote = String.format("peer check: token logprobs max |diff| %.2e; greedy tokens equal %d/%d", maxDiff, same, peerTokens[0].length);
                }
            } finally {
                if (t != null) t.close();
            }

            double[] tokens = {B * T, B * T, B * s.newTokens()};
            System.out.println();
            System.out.printf("%-36s %12s %12s %8s   %12s %12s %8s   %6s%n", "", "tokens/s", "", "", "tokens/CPU-s", "", "", "JIT s");
            System.out.printf("%-36s %12s %12s %8s   %12s %12s %8s%n", "", "cpu engine", "pytorch", "ratio", "cpu engine", "pytorch", "ratio");
            String[] rows = {"forward (token logprobs)", "forward + backward", "decode (new tokens, incl. prefill)"};
            for (int i = 0; i < 3; i++) {
                double ew = tokens[i] / engine[i].wall(), ec = tokens[i] / engine[i].cpu();
                if (torch == null) {
                    System.out.printf("%-36s %12.0f %12s %8s   %12.0f %12s %8s   %6.2f%n", rows[i], ew, "-", "-", ec, "-", "-",
                            engine[i].jitDuringTimed());
                } else {
                    double tw = tokens[i] / torch[i].wall(), tc = tokens[i] / torch[i].cpu();
                    System.out.printf("%-36s %12.0f %12.0f %7.2fx   %12.0f %12.0f %7.2fx   %6.2f%n", rows[i], ew, tw, ew / tw, ec, tc,
                            ec / tc, engine[i].jitDuringTimed());
                }
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

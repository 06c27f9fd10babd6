package org.sparkrlhf.gpuexec.cuda.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointWeights;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsWriter;
import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBuffer;
import org.sparkrlhf.gpuexec.cuda.CudaStream;
import org.sparkrlhf.gpuexec.cuda.MemoryKind;
import org.sparkrlhf.gpuexec.cuda.Precision;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;
import org.sparkrlhf.gpuexec.train.AdamW;

/**
 * The pieces of one PPO iteration on one GPU with the CUDA backend (bf16 tensor cores, fp32 master
 * weights), on the shapes of bench/peer_torch_ppo.py: the 134M and 953M LLaMA configurations, batch
 * 64, prompts of 128 tokens, 128 new tokens sampled (temperature 1, no top-k/top-p), an inference
 * forward (logprobs) over the 64 x 256 tokens, and a training step (forward, backward, AdamW) over
 * them in micro-batches of 16. Prints tokens/s, the decode step against the memory-bandwidth bound,
 * and the peer's figures and the ratios when given the peer's output.
 *
 * <pre>
 *   java ... org.sparkrlhf.gpuexec.cuda.bench.CudaBenchmark [--peer peer_output.txt] [--models 134m,953m]
 * </pre>
 */
public final class CudaBenchmark {
    private static final int B = 64, PROMPT = 128, NEW = 128, MICRO = 16;

    record Shape(String name, String peerName, ModelConfig config) {}

    public static void main(String[] args) throws IOException {
        Path peerFile = null;
        List<String> models = List.of("134m", "953m");
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--peer" -> peerFile = Path.of(args[++i]);
                case "--models" -> models = Arrays.asList(args[++i].split(","));
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (!CudaBackend.isAvailable()) {
            System.out.println(CudaBackend.unavailableReason());
            return;
        }
        Map<String, JsonNode> peer = readPeer(peerFile);
        List<Shape> shapes = new ArrayList<>();
        if (models.contains("134m")) shapes.add(new Shape("134m", "160m", ModelConfig.llama(32000, 768, 2048, 12, 12, 12, 4096)));
        if (models.contains("953m")) shapes.add(new Shape("953m", "1b", ModelConfig.llama(32000, 2048, 5632, 16, 16, 16, 4096)));
        List<String> summary = new ArrayList<>();
        for (Shape s : shapes) {
            try (CudaBackend gpu = new CudaBackend(0, Precision.BF16)) {
                summary.addAll(run(gpu, s, peer.get(s.peerName())));
            }
        }
        System.out.println();
        System.out.println("== summary (CUDA backend vs PyTorch " + (peer.isEmpty() ? "peer: not given" : "peer, same run") + ")");
        summary.forEach(System.out::println);
    }

    static List<String> run(CudaBackend gpu, Shape shape, JsonNode peer) throws IOException {
        ModelConfig c = shape.config();
        System.out.println("== " + shape.name() + " on " + gpu.name());
        double copyBandwidth = copyBandwidth(gpu);
        System.out.printf(Locale.ROOT, "device-to-device copy: %.0f GB/s (read + write)%n", copyBandwidth / 1e9);
        gpu.allocationKind(MemoryKind.WEIGHTS);
        LlamaModel model = randomModel(gpu, c, 1);
        gpu.allocationKind(MemoryKind.ACTIVATIONS);
        long params = model.parameters().count();
        System.out.printf(Locale.ROOT, "parameters: %.1f M%n", params / 1e6);
        List<String> out = new ArrayList<>();
        SplittableRandom r = new SplittableRandom(3);
        int[][] prompts = new int[B][PROMPT];
        for (int[] p : prompts) for (int t = 0; t < PROMPT; t++) p[t] = 3 + r.nextInt(c.vocabSize() - 3);

        // ---- generation: prefill, then decode steps replayed from a CUDA graph
        Generator.Options gen = new Generator.Options(NEW, new SamplingParams(1f, 0, 1f), 7, new int[0], 0, false);
        Generator.Options one = new Generator.Options(1, new SamplingParams(1f, 0, 1f), 7, new int[0], 0, false);
        int[][] sequences;
        double genSeconds, decodeStep;
        try (Generator g = new Generator(model)) {
            g.generate(prompts, gen); // records the decode step
            gpu.synchronize();
            long t0 = System.nanoTime();
            GenerationResult res = g.generate(prompts, gen);
            genSeconds = (System.nanoTime() - t0) / 1e9;
            try (Generator g1 = new Generator(model)) {
                g1.generate(prompts, one);
                long t1 = System.nanoTime();
                g1.generate(prompts, one);
                double prefill = (System.nanoTime() - t1) / 1e9;
                decodeStep = (genSeconds - prefill) / (NEW - 1);
            }
            sequences = new int[B][];
            for (int b = 0; b < B; b++) {
                int[] s = Arrays.copyOf(prompts[b], PROMPT + NEW);
                System.arraycopy(res.tokens()[b], 0, s, PROMPT, Math.min(NEW, res.tokens()[b].length));
                sequences[b] = s;
            }
            System.out.println("memory while generating: " + gpu.memoryReport());
        }
        double genRate = B * NEW / genSeconds;
        // What a decode step must read at least: the bf16 weights once and the KV cache up to the
        // middle of the generation (F32, as the model's generator allocates it).
        long weightBytes = params * 2;
        double avgLen = PROMPT + NEW / 2.0;
        double kvBytes = 2.0 * c.numLayers() * B * avgLen * c.kvDim() * 4;
        double bound = (weightBytes + kvBytes) / (copyBandwidth / 2); // a copy moves each byte twice
        System.out.printf(Locale.ROOT, "generation: %.0f new tokens/s (%.3f s for %d x %d), decode step %.3f ms; "
                        + "bandwidth bound %.3f ms (%.0f MB weights + %.0f MB KV cache at %.0f GB/s): %.2fx the bound%n",
                genRate, genSeconds, B, NEW, decodeStep * 1e3, bound * 1e3, weightBytes / 1e6, kvBytes / 1e6,
                copyBandwidth / 2e9, decodeStep / bound);

        // ---- inference forward: logprobs of the 64 x 256 tokens
        int T = PROMPT + NEW;
        Batch full = Batch.rightPadded(sequences, 0);
        model.forward(full, false);
        gpu.synchronize();
        long t0 = System.nanoTime();
        for (int i = 0; i < 3; i++) model.forward(full, false);
        double infSeconds = (System.nanoTime() - t0) / 3e9;
        double infRate = (double) B * T / infSeconds;
        System.out.printf(Locale.ROOT, "inference forward: %.0f tokens/s (%.1f ms for %d x %d)%n", infRate, infSeconds * 1e3, B, T);
        System.out.println("memory after inference: " + gpu.memoryReport());
        model.releaseActivations();

        // ---- training step: forward + backward over micro-batches of 16, then AdamW
        AdamW opt;
        gpu.allocationKind(MemoryKind.OPTIMIZER);
        opt = AdamW.forModel(model, AdamW.Hyper.defaults(1e-5f));
        gpu.allocationKind(MemoryKind.ACTIVATIONS);
        List<Batch> micro = new ArrayList<>();
        for (int i = 0; i < B; i += MICRO) micro.add(Batch.rightPadded(Arrays.copyOfRange(sequences, i, i + MICRO), 0));
        int totalTargets = 0;
        for (Batch m : micro) for (int v : m.targetMask()) totalTargets += v;
        float loss = trainStep(model, opt, micro, totalTargets);
        gpu.synchronize();
        t0 = System.nanoTime();
        for (int i = 0; i < 3; i++) loss = trainStep(model, opt, micro, totalTargets);
        double trainSeconds = (System.nanoTime() - t0) / 3e9;
        double trainRate = (double) B * T / trainSeconds;
        double mfu = 6.0 * params * B * T / trainSeconds / 989e12;
        System.out.printf(Locale.ROOT, "training step: %.0f tokens/s (%.1f ms, loss %.3f, MFU %.1f%% of 989 TFLOP/s)%n",
                trainRate, trainSeconds * 1e3, loss, mfu * 100);
        System.out.println("memory while training: " + gpu.memoryReport());
        opt.close();
        model.close();

        out.add(String.format(Locale.ROOT, "%s generation: %.0f new tokens/s, decode step %.3f ms = %.2fx the bandwidth bound (%.3f ms)%s",
                shape.name(), genRate, decodeStep * 1e3, decodeStep / bound, bound * 1e3,
                ratio(genRate, peer, "gen_tok_per_s", "HF generate")));
        out.add(String.format(Locale.ROOT, "%s inference: %.0f tokens/s%s", shape.name(), infRate,
                ratio(infRate, peer, "infer_tok_per_s", "torch")));
        out.add(String.format(Locale.ROOT, "%s training: %.0f tokens/s, MFU %.1f%%%s", shape.name(), trainRate, mfu * 100,
                ratio(trainRate, peer, "train_tok_per_s", "torch")));
        return out;
    }

    static String ratio(double ours, JsonNode peer, String field, String what) {
        if (peer == null || !peer.has(field)) return "";
        double p = peer.get(field).asDouble();
        return String.format(Locale.ROOT, "; %s %.0f -> %.2fx", what, p, ours / p);
    }

    static float trainStep(LlamaModel model, AdamW opt, List<Batch> micro, int totalTargets) {
        model.zeroGradients();
        double loss = 0;
        for (Batch m : micro) {
            TokenStats s = model.forward(m, false);
            SftLoss.Result l = SftLoss.of(m, s, totalTargets);
            loss += l.loss();
            model.backward(l.dLogprobs(), null);
        }
        opt.step();
        return (float) loss;
    }

    /**
     * Random weights (std 0.02, norms 1), drawn from a pool of normal samples at random offsets and
     * loaded through a bf16 safetensors checkpoint in a temporary directory: LlamaModel.random draws
     * every value in Java, which takes half a minute for 1e9 parameters.
     */
    static LlamaModel randomModel(Backend gpu, ModelConfig c, long seed) throws IOException {
        SplittableRandom r = new SplittableRandom(seed);
        float[] pool = new float[1 << 22];
        for (int i = 0; i < pool.length; i++) pool[i] = (float) (gaussian(r) * 0.02);
        Path dir = Files.createTempDirectory("cuda-bench-model");
        try {
            List<SafeTensorsWriter.Item> items = new ArrayList<>();
            for (LlamaWeights.Spec s : LlamaWeights.specs(c)) {
                long n = 1;
                for (int d : s.shape()) n *= d;
                int size = Math.toIntExact(n);
                boolean ones = s.name().endsWith("norm.weight");
                items.add(SafeTensorsWriter.Item.floats(s.name(), StDType.BF16, s.shape(), () -> {
                    float[] v = new float[size];
                    if (ones) {
                        Arrays.fill(v, 1f);
                        return v;
                    }
                    for (int i = 0; i < size; ) {
                        int off = r.nextInt(pool.length), k = Math.min(size - i, pool.length - off);
                        System.arraycopy(pool, off, v, i, k);
                        i += k;
                    }
                    return v;
                }));
            }
            CheckpointWeights.write(dir, items, 8L << 30);
            Files.writeString(dir.resolve("config.json"), new ObjectMapper().writeValueAsString(c.toJson("bfloat16")));
            return LlamaModel.load(gpu, dir, DType.F32);
        } finally {
            try (var files = Files.list(dir)) {
                for (Path f : (Iterable<Path>) files::iterator) Files.deleteIfExists(f);
            }
            Files.deleteIfExists(dir);
        }
    }

    private static double gaussian(SplittableRandom r) {
        double u1 = 1.0 - r.nextDouble(), u2 = r.nextDouble();
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }

    /** Bytes moved per second (read plus write) by a 1 GiB device-to-device copy. */
    static double copyBandwidth(CudaBackend gpu) {
        long n = 1L << 30;
        CudaStream s = gpu.stream();
        try (CudaBuffer a = CudaBuffer.allocate(s, n, MemoryKind.WORKSPACE, null);
             CudaBuffer b = CudaBuffer.allocate(s, n, MemoryKind.WORKSPACE, null)) {
            b.copyFrom(0, a, 0, n);
            float ms = s.timeMillis(() -> {
                for (int i = 0; i < 5; i++) b.copyFrom(0, a, 0, n);
            });
            return 2.0 * 5 * n / (ms / 1e3);
        }
    }

    static Map<String, JsonNode> readPeer(Path file) throws IOException {
        Map<String, JsonNode> out = new LinkedHashMap<>();
        if (file == null || !Files.exists(file)) return out;
        ObjectMapper json = new ObjectMapper();
        for (String line : Files.readAllLines(file)) {
            int brace = line.indexOf('{');
            if (brace <= 0) continue;
            String name = line.substring(0, brace).trim();
            try {
                out.put(name, json.readTree(line.substring(brace)));
            } catch (IOException e) {
                // not a figures line
            }
        }
        return out;
    }
}

package org.sparkrlhf.bench;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.backend.cpu.CpuKernels;
import org.sparkrlhf.gpuexec.model.Batch;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.SftLoss;
import org.sparkrlhf.gpuexec.model.TokenStats;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Where the CPU engine's time goes: the benchmark's forward, forward+backward and decode on one
 * backend whose every op is timed through a proxy of {@link Backend}, as a table of seconds and
 * shares per op. With one thread an op is timed by the calling thread's CPU time (every op runs
 * on the caller: figures then hold on a machine shared with other work); with several by the
 * whole process's (the pool's threads work inside the op; the machine must be otherwise idle).
 *
 * <pre>
 *   java --add-modules jdk.incubator.vector -cp ... org.sparkrlhf.bench.CpuOpProfile [--model 9m|134m] [--threads N] [--kernels fast|reference] [--iterations N]
 * </pre>
 */
public final class CpuOpProfile {
    private static final com.sun.management.OperatingSystemMXBean PROCESS =
            (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    private static final java.lang.management.ThreadMXBean THREAD_CPU = java.lang.management.ManagementFactory.getThreadMXBean();
    /** Bytes the calling thread allocates on the Java heap in an op (garbage the process's GC threads collect). */
    private static final com.sun.management.ThreadMXBean ALLOCATED = (com.sun.management.ThreadMXBean) THREAD_CPU;

    private CpuOpProfile() {
    }

    public static void main(String[] args) {
        String modelName = "9m";
        int threads = 1, iterations = 3;
        CpuKernels kernels = CpuKernels.defaultKernels();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> modelName = args[++i];
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--iterations" -> iterations = Integer.parseInt(args[++i]);
                case "--kernels" -> kernels = CpuKernels.valueOf(args[++i].toUpperCase(java.util.Locale.ROOT));
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        BenchShape s = BenchShape.named(modelName, iterations);
        int B = s.batch(), T = s.seq();
        SplittableRandom rng = new SplittableRandom(7);
        int[][] prompts = new int[B][T];
        for (int[] p : prompts) for (int t = 0; t < T; t++) p[t] = rng.nextInt(s.vocab());
        Batch batch = Batch.rightPadded(prompts, 0);
        Map<String, long[]> times = new TreeMap<>();
        boolean[] on = {false};
        try (CpuBackend cpu = new CpuBackend(threads, kernels)) {
            java.util.function.LongSupplier clock = threads == 1 ? THREAD_CPU::getCurrentThreadCpuTime : PROCESS::getProcessCpuTime;
            Backend timed = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[]{Backend.class}, (proxy, m, a) -> {
                long t0 = clock.getAsLong(), b0 = ALLOCATED.getCurrentThreadAllocatedBytes();
                try {
                    return m.invoke(cpu, a);
                } catch (InvocationTargetException e) {
                    throw e.getCause();
                } finally {
                    if (on[0]) {
                        long[] f = times.computeIfAbsent(m.getName(), k -> new long[3]);
                        f[0] += clock.getAsLong() - t0;
                        f[1]++;
                        f[2] += ALLOCATED.getCurrentThreadAllocatedBytes() - b0;
                    }
                }
            });
            try (LlamaModel model = LlamaModel.random(timed, s.config(), DType.F32, 1, 0.02f); Generator g = new Generator(model)) {
                Generator.Options greedy = new Generator.Options(s.newTokens(), SamplingParams.GREEDY, 0, new int[0], 0, false);
                Runnable[] work = {
                        () -> model.forward(batch, false),
                        () -> {
                            model.zeroGradients();
                            TokenStats st = model.forward(batch, false);
                            model.backward(SftLoss.of(batch, st).dLogprobs(), null);
                        },
                        () -> g.generate(prompts, greedy)};
                String[] names = {"forward", "forward + backward", "decode (incl. prefill)"};
                System.out.println(s.describe(model.parameters().count()) + "; " + cpu.name());
                for (int w = 0; w < work.length; w++) {
                    work[w].run();
                    times.clear();
                    on[0] = true;
                    long t0 = clock.getAsLong(), p0 = PROCESS.getProcessCpuTime(), a0 = ALLOCATED.getCurrentThreadAllocatedBytes();
                    for (int i = 0; i < iterations; i++) work[w].run();
                    double allocated = (ALLOCATED.getCurrentThreadAllocatedBytes() - a0) / 1e6 / iterations;
                    double total = (clock.getAsLong() - t0) / 1e9 / iterations;
                    double process = (PROCESS.getProcessCpuTime() - p0) / 1e9 / iterations;
                    on[0] = false;
                    System.out.printf("%n== %s: %.4f CPU-s per run %s, %.4f in the whole process; %.1f MB allocated on the heap%n",
                            names[w], total, threads == 1 ? "on the calling thread" : "in the ops", process, allocated);
                    int runs = iterations;
                    times.entrySet().stream().sorted((x, y) -> Long.compare(y.getValue()[0], x.getValue()[0])).forEach(e ->
                            System.out.printf("  %-24s %9.4f s %6.1f%%  (%d calls, %.2f MB allocated)%n", e.getKey(), e.getValue()[0] / 1e9 / runs,
                                    100.0 * e.getValue()[0] / 1e9 / runs / total, e.getValue()[1] / runs, e.getValue()[2] / 1e6 / runs));
                }
            }
        }
    }
}

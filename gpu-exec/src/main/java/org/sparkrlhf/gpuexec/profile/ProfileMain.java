package org.sparkrlhf.gpuexec.profile;

import org.sparkrlhf.gpuexec.backend.Backend;
import org.sparkrlhf.gpuexec.backend.DType;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.cuda.CudaBackend;
import org.sparkrlhf.gpuexec.cuda.Precision;
import org.sparkrlhf.gpuexec.model.ModelConfig;

import java.nio.file.Path;
import java.util.Locale;

/**
 * Profiles a model's architecture (its config.json; the weights are random) on one backend of this
 * machine, without Spark: {@code ProfileMain CONFIG.json NAME DEVICE PROMPT GEN SEQUENCES OUT.csv}, DEVICE
 * being {@code cpu} or a GPU preset name (the CUDA backend on GPU 0). Prints the rows and the time taken.
 */
public final class ProfileMain {
    private ProfileMain() {
    }

    public static void main(String[] args) {
        if (args.length != 7) {
            System.err.println("usage: ProfileMain CONFIG.json NAME DEVICE PROMPT GEN SEQUENCES OUT.csv");
            System.exit(2);
        }
        ModelConfig config = ModelConfig.read(Path.of(args[0]));
        String device = args[2];
        if (!device.equals("cpu") && !CudaBackend.isAvailable()) {
            System.err.println("no GPU: " + CudaBackend.unavailableReason());
            System.exit(2);
        }
        Backend backend = device.equals("cpu") ? new CpuBackend() : new CudaBackend(0, Precision.FP32);
        ProfileGrid grid = ProfileGrid.forWorkload(Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                Long.parseLong(args[5]), 8192);
        long start = System.nanoTime();
        EngineProfile p = new EngineProfiler(backend, config, DType.F32, 5).run(args[1], device, grid);
        ProfileCsv.write(Path.of(args[6]), p.rows());
        System.out.print(ProfileCsv.format(p.rows()));
        System.out.printf(Locale.ROOT, "%d rows in %.1f s%n", p.rows().size(), (System.nanoTime() - start) / 1e9);
        backend.close();
    }
}

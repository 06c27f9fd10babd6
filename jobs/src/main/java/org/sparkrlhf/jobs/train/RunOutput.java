package org.sparkrlhf.jobs.train;

import org.sparkrlhf.jobs.calls.ModelSource;
import org.sparkrlhf.jobs.calls.SaveModelCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.DeviceSlot;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.List;

/**
 * Where a run writes: {@code <output>/tables/{rollouts,metrics,plans}} (Delta),
 * {@code <output>/checkpoints/}, and the final models ({@code final} for the first trained model,
 * {@code final-<role>} for the others).
 */
public final class RunOutput {
    private RunOutput() {
    }

    /** The run's output folder, created (a local folder for now). */
    public static Path local(RunConfig config) {
        try {
            Path out = new ModelSource(config.output(), 0).localPath().toAbsolutePath();
            Files.createDirectories(out);
            return out;
        } catch (UnsupportedOperationException e) {
            throw new UnsupportedOperationException(config.source() + ": output: runs write to a local folder for now, not "
                    + config.output());
        } catch (IOException e) {
            throw new IllegalStateException("cannot create " + config.output() + ": " + e.getMessage(), e);
        }
    }

    public static String metricsPath(Path output) {
        return output.resolve("tables").resolve("metrics").toString();
    }

    public static String plansPath(Path output) {
        return output.resolve("tables").resolve("plans").toString();
    }

    public static String rolloutsPath(Path output) {
        return output.resolve("tables").resolve("rollouts").toString();
    }

    /** The final model's folder name of a trained role: {@code final} for the first, {@code final-<role>} for others. */
    public static String finalName(String role, boolean first) {
        return first ? "final" : "final-" + role;
    }

    /**
     * Writes {@code role} at {@code version}, held whole by {@code mesh} under {@code layout}, to
     * {@code <output>/<name>} as an HF folder (config and tokenizer from {@code modelDir}), through
     * {@code <name>.partial} moved into place.
     */
    public static Path writeFinal(BarrierCallRunner runner, List<DeviceSlot> mesh, String role, long version,
                                  String layout, Path modelDir, Path output, String name) {
        Path finalDir = output.resolve(name);
        Path partial = output.resolve(name + ".partial");
        try {
            deleteRecursively(partial);
            SaveModelCall.save(runner, mesh, role, version, layout, modelDir, partial, false);
            deleteRecursively(finalDir);
            Files.move(partial, finalDir, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write the final " + role + " to " + finalDir + ": " + e.getMessage(), e);
        }
        return finalDir;
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}

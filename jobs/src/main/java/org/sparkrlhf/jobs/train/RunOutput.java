package org.sparkrlhf.jobs.train;

import org.sparkrlhf.jobs.calls.SaveModelCall;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.jobs.runtime.BarrierCallRunner;
import org.sparkrlhf.jobs.runtime.DeviceSlot;

import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;

/**
 * Where a run writes, on any Hadoop file system ({@link HadoopFiles}):
 * {@code <output>/tables/{rollouts,metrics,plans}} (Delta), {@code <output>/checkpoints/}, and the
 * final models ({@code final} for the first trained model, {@code final-<role>} for the others).
 */
public final class RunOutput {
    private RunOutput() {
    }

    /** The run's output folder, created, as a qualified path ({@code file:/...}, {@code s3a://...}). */
    public static String create(RunConfig config) {
        try {
            String out = HadoopFiles.qualified(config.output());
            HadoopFiles.mkdirs(out);
            return out;
        } catch (UncheckedIOException | IllegalArgumentException e) {
            throw new IllegalStateException(config.source() + ": output: cannot create " + config.output() + ": "
                    + e.getMessage(), e);
        }
    }

    public static String metricsPath(String output) {
        return HadoopFiles.resolve(output, "tables/metrics");
    }

    public static String plansPath(String output) {
        return HadoopFiles.resolve(output, "tables/plans");
    }

    public static String rolloutsPath(String output) {
        return HadoopFiles.resolve(output, "tables/rollouts");
    }

    /** The tables of a local output folder. */
    public static String metricsPath(Path output) {
        return metricsPath(output.toString());
    }

    public static String plansPath(Path output) {
        return plansPath(output.toString());
    }

    public static String rolloutsPath(Path output) {
        return rolloutsPath(output.toString());
    }

    /** The final model's folder name of a trained role: {@code final} for the first, {@code final-<role>} for others. */
    public static String finalName(String role, boolean first) {
        return first ? "final" : "final-" + role;
    }

    /**
     * Writes {@code role} at {@code version}, held whole by {@code mesh} under {@code layout}, to
     * {@code <output>/<name>} as an HF folder (config and tokenizer from {@code modelDir}), through
     * {@code <name>.partial} renamed into place: whole or absent where a rename is atomic; on an
     * object store the rename is a copy, and {@code <name>.partial} stays whole until it is done.
     */
    public static String writeFinal(BarrierCallRunner runner, List<DeviceSlot> mesh, String role, long version,
                                    String layout, Path modelDir, String output, String name) {
        String finalDir = HadoopFiles.resolve(output, name);
        String partial = HadoopFiles.resolve(output, name + ".partial");
        try {
            HadoopFiles.delete(partial);
            SaveModelCall.save(runner, mesh, role, version, layout, modelDir, partial, false);
            HadoopFiles.delete(finalDir);
            HadoopFiles.rename(partial, finalDir);
        } catch (UncheckedIOException e) {
            throw new IllegalStateException("cannot write the final " + role + " to " + finalDir + ": " + e.getMessage(), e);
        }
        return finalDir;
    }
}

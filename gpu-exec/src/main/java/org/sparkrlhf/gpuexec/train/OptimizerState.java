package org.sparkrlhf.gpuexec.train;

import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsWriter;
import org.sparkrlhf.gpuexec.checkpoint.StDType;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An {@link AdamW}'s state as one safetensors file, {@value #FILE}, kept beside the model's HF
 * weights in a checkpoint folder. The names follow torch.optim.AdamW's state dict:
 * <ul>
 *   <li>{@code exp_avg.<param>}: the first moment m of parameter {@code <param>} (F32, the
 *       parameter's shape);</li>
 *   <li>{@code exp_avg_sq.<param>}: the second moment v (F32, the parameter's shape);</li>
 *   <li>metadata {@code optimizer = adamw} and {@code step}: the steps taken (the t of the bias
 *       corrections); {@code lr}, {@code beta1}, {@code beta2}, {@code eps}, {@code weight_decay}
 *       and {@code max_grad_norm} record the settings in use, for the reader: a resumed run takes
 *       its settings from its own config.</li>
 * </ul>
 * Moments are F32 whatever the parameters' type, so a restored optimizer continues bit for bit.
 * Loading checks every name and shape before it changes anything, so a file of another model
 * leaves the optimizer as it was.
 */
public final class OptimizerState {
    public static final String FILE = "optimizer.safetensors";
    static final String FIRST = "exp_avg.";
    static final String SECOND = "exp_avg_sq.";

    private OptimizerState() {
    }

    /** Writes the optimizer's moments and step count to {@code file} (atomically: a temporary file renamed). */
    public static void save(AdamW optimizer, Path file) {
        List<SafeTensorsWriter.Item> items = new ArrayList<>();
        for (AdamW.Param p : optimizer.params()) {
            items.add(SafeTensorsWriter.Item.floats(FIRST + p.name(), StDType.F32, p.m().shape(),
                    () -> optimizer.backend().download(p.m())));
        }
        for (AdamW.Param p : optimizer.params()) {
            items.add(SafeTensorsWriter.Item.floats(SECOND + p.name(), StDType.F32, p.v().shape(),
                    () -> optimizer.backend().download(p.v())));
        }
        AdamW.Hyper h = optimizer.hyper();
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("optimizer", "adamw");
        metadata.put("step", Integer.toString(optimizer.stepCount()));
        metadata.put("lr", Float.toString(h.lr()));
        metadata.put("beta1", Float.toString(h.beta1()));
        metadata.put("beta2", Float.toString(h.beta2()));
        metadata.put("eps", Float.toString(h.eps()));
        metadata.put("weight_decay", Float.toString(h.weightDecay()));
        metadata.put("max_grad_norm", Float.toString(h.maxGradNorm()));
        SafeTensorsWriter.write(file, items, metadata);
    }

    /**
     * Restores the moments and step count that {@link #save} wrote into {@code optimizer}, whose
     * parameters must have the names and shapes of the saved ones.
     */
    public static void load(AdamW optimizer, Path file) {
        SafeTensorsFile f = SafeTensorsFile.open(file);
        String kind = f.metadata().get("optimizer");
        if (!"adamw".equals(kind)) {
            throw new CheckpointException(file + ": field '__metadata__.optimizer' is " + kind + ", expected adamw");
        }
        int step;
        try {
            step = Integer.parseInt(f.metadata().getOrDefault("step", ""));
        } catch (NumberFormatException e) {
            throw new CheckpointException(file + ": field '__metadata__.step' is '" + f.metadata().get("step")
                    + "', expected the step count");
        }
        if (step < 0) throw new CheckpointException(file + ": field '__metadata__.step' is negative (" + step + ")");
        Set<String> expected = new HashSet<>();
        for (AdamW.Param p : optimizer.params()) {
            for (String name : List.of(FIRST + p.name(), SECOND + p.name())) {
                expected.add(name);
                SafeTensorsFile.Entry e = f.entries().get(name);
                if (e == null) throw new CheckpointException(file + ": no tensor '" + name + "' for parameter " + p.name());
                if (e.dtype() != StDType.F32) {
                    throw new CheckpointException(file + ": tensor '" + name + "' is " + e.dtype() + ", expected F32");
                }
                if (!Arrays.equals(e.shape(), p.m().shape())) {
                    throw new CheckpointException(file + ": tensor '" + name + "' has shape " + Arrays.toString(e.shape())
                            + ", parameter " + p.name() + " has " + Arrays.toString(p.m().shape()));
                }
            }
        }
        for (String name : f.entries().keySet()) {
            if (!expected.contains(name)) {
                throw new CheckpointException(file + ": tensor '" + name + "' belongs to no parameter of this model");
            }
        }
        for (AdamW.Param p : optimizer.params()) {
            optimizer.backend().upload(p.m(), f.readFloats(FIRST + p.name()));
            optimizer.backend().upload(p.v(), f.readFloats(SECOND + p.name()));
        }
        optimizer.restoreStepCount(step);
    }
}

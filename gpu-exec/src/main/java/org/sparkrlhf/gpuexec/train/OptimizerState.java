package org.sparkrlhf.gpuexec.train;

import org.sparkrlhf.gpuexec.backend.Tensor;
import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsFile;
import org.sparkrlhf.gpuexec.checkpoint.SafeTensorsWriter;
import org.sparkrlhf.gpuexec.checkpoint.StDType;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.LlamaWeights;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.parallel.ShardSpec;
import org.sparkrlhf.gpuexec.parallel.Sharding;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

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
        List<Moments> moments = new ArrayList<>();
        for (AdamW.Param p : optimizer.params()) {
            moments.add(new Moments(p.name(), p.m().shape(), () -> optimizer.backend().download(p.m()),
                    () -> optimizer.backend().download(p.v())));
        }
        write(moments, optimizer.stepCount(), optimizer.hyper(), file);
    }

    /** One parameter's moments as the file holds them: its name, whole shape, and the values of m and v. */
    public record Moments(String name, int[] shape, Supplier<float[]> m, Supplier<float[]> v) {
    }

    /**
     * Writes a whole model's moments given as arrays (gathered from the shards of a tensor / pipeline
     * parallel optimizer), in {@code moments}' order, with the step count and settings they were
     * taken with: the file {@link #save(AdamW, Path)} writes for an unsharded optimizer of the same state.
     */
    public static void write(List<Moments> moments, int step, AdamW.Hyper h, Path file) {
        if (step < 0) throw new IllegalArgumentException("step count " + step + " is negative");
        List<SafeTensorsWriter.Item> items = new ArrayList<>();
        for (Moments p : moments) {
            items.add(SafeTensorsWriter.Item.floats(FIRST + p.name(), StDType.F32, p.shape(), p.m()));
        }
        for (Moments p : moments) {
            items.add(SafeTensorsWriter.Item.floats(SECOND + p.name(), StDType.F32, p.shape(), p.v()));
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("optimizer", "adamw");
        metadata.put("step", Integer.toString(step));
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
        Map<String, int[]> shapes = new LinkedHashMap<>();
        for (AdamW.Param p : optimizer.params()) {
            shapes.put(p.name(), p.m().shape());
        }
        load(optimizer, file, shapes, (name, shape, whole) -> whole);
    }

    /**
     * Restores one rank's part of a whole model's optimizer state ({@link #FILE}, as a data-parallel
     * run or a gathered tensor / pipeline run writes it) into the optimizer of shard {@code shard}:
     * each moment cut to the shard's slice exactly as {@link LlamaModel#load} cuts the weights, and
     * the step count. On the whole model it is {@link #load(AdamW, Path)}.
     */
    public static void load(AdamW optimizer, Path file, ModelConfig config, ShardSpec shard) {
        Map<String, int[]> whole = new LinkedHashMap<>();
        for (LlamaWeights.Spec s : LlamaWeights.specs(config)) {
            whole.put(s.name(), s.shape());
        }
        load(optimizer, file, whole, (name, shape, values) -> Sharding.slice(name, shape, values, shard));
    }

    /** What a sharded optimizer keeps of a whole parameter's moment: its slice of it. */
    @FunctionalInterface
    public interface Cut {
        float[] apply(String name, int[] wholeShape, float[] whole);
    }

    /**
     * Restores a whole model's moments and step count (the file {@link #save} or {@link #write}
     * wrote) into an optimizer over a part of that model (a tensor / pipeline shard): the file must
     * hold exactly the parameters of {@code wholeShapes}, with those shapes; each of
     * {@code optimizer}'s parameters, all among them, gets {@code cut} of its moments, which must
     * have the parameter's (shard) shape.
     */
    public static void load(AdamW optimizer, Path file, Map<String, int[]> wholeShapes, Cut cut) {
        SafeTensorsFile f = SafeTensorsFile.open(file);
        int step = checkedStep(f, file, wholeShapes);
        for (AdamW.Param p : optimizer.params()) {
            if (!wholeShapes.containsKey(p.name())) {
                throw new IllegalArgumentException("parameter " + p.name() + " is not among the model's " + wholeShapes.keySet());
            }
        }
        // one tensor at a time, so that no more than one whole moment is in host memory
        for (AdamW.Param p : optimizer.params()) {
            int[] whole = wholeShapes.get(p.name());
            for (boolean first : new boolean[]{true, false}) {
                Tensor moment = first ? p.m() : p.v();
                float[] values = cut.apply(p.name(), whole, f.readFloats((first ? FIRST : SECOND) + p.name()));
                if (values.length != moment.numel()) {
                    throw new IllegalStateException(file + ": the cut of '" + p.name() + "' has " + values.length
                            + " values, the optimizer's moment " + Arrays.toString(moment.shape()) + " needs " + moment.numel());
                }
                optimizer.backend().upload(moment, values);
            }
        }
        optimizer.restoreStepCount(step);
    }

    /** Moments and step count read into host memory: per parameter name, m and v. */
    public record Read(int step, Map<String, float[]> first, Map<String, float[]> second) {
    }

    /**
     * The moments and step count of a file that holds exactly the parameters of {@code shapes}
     * (checked as {@link #load} checks them), in host memory: for an optimizer of a few small
     * parameters whose state a driver keeps between calls (S3D's mask embeddings).
     */
    public static Read read(Path file, Map<String, int[]> shapes) {
        SafeTensorsFile f = SafeTensorsFile.open(file);
        int step = checkedStep(f, file, shapes);
        Map<String, float[]> first = new LinkedHashMap<>(), second = new LinkedHashMap<>();
        for (String name : shapes.keySet()) {
            first.put(name, f.readFloats(FIRST + name));
            second.put(name, f.readFloats(SECOND + name));
        }
        return new Read(step, first, second);
    }

    /** The file's step count, after checking that it holds an AdamW's moments of exactly {@code wholeShapes}. */
    private static int checkedStep(SafeTensorsFile f, Path file, Map<String, int[]> wholeShapes) {
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
        for (Map.Entry<String, int[]> w : wholeShapes.entrySet()) {
            for (String name : List.of(FIRST + w.getKey(), SECOND + w.getKey())) {
                expected.add(name);
                SafeTensorsFile.Entry e = f.entries().get(name);
                if (e == null) throw new CheckpointException(file + ": no tensor '" + name + "' for parameter " + w.getKey());
                if (e.dtype() != StDType.F32) {
                    throw new CheckpointException(file + ": tensor '" + name + "' is " + e.dtype() + ", expected F32");
                }
                if (!Arrays.equals(e.shape(), w.getValue())) {
                    throw new CheckpointException(file + ": tensor '" + name + "' has shape " + Arrays.toString(e.shape())
                            + ", parameter " + w.getKey() + " has " + Arrays.toString(w.getValue()));
                }
            }
        }
        for (String name : f.entries().keySet()) {
            if (!expected.contains(name)) {
                throw new CheckpointException(file + ": tensor '" + name + "' belongs to no parameter of this model");
            }
        }
        return step;
    }
}

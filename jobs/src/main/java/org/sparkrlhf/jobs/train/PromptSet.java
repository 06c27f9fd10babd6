package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.DatasetFormat;
import org.sparkrlhf.datasets.DatasetKind;
import org.sparkrlhf.datasets.DatasetReader;
import org.sparkrlhf.datasets.PromptRow;
import org.sparkrlhf.datasets.ReadOptions;
import org.sparkrlhf.datasets.tasks.ShippedDatasets;
import org.sparkrlhf.jobs.files.HadoopFiles;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;
import org.sparkrlhf.jobs.config.RunConfig;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * A run's prompts, tokenized as [bos] + the prompt text's tokens: the training prompts and the
 * held-out ones. From data.path (a prompt dataset), eval_size prompts are drawn by the seed and
 * kept out of training; from data.task, the held-out prompts are the first eval_size of the task's
 * held-out split. Prompts need a reference answer only when a reward function scores them.
 */
public record PromptSet(List<PromptRow> rows, List<int[]> tokens, List<PromptRow> heldOut, List<int[]> heldOutTokens) {

    public static PromptSet read(SparkSession spark, RunConfig config, Path actorDir, int bos, String output) {
        int evalSize = config.data().evalSize();
        List<PromptRow> train;
        List<PromptRow> heldOut;
        String trainSource;
        if (config.data().path() != null) {
            trainSource = config.data().path();
            List<PromptRow> all = read(spark, config.data().path(), config.data().format());
            if (evalSize >= all.size()) {
                throw new IllegalArgumentException(config.source() + ": data.eval_size " + evalSize + " leaves none of the "
                        + all.size() + " prompts of " + config.data().path() + " to train on");
            }
            int[] order = DataOrder.permutation(all.size(), config.seed(), -1);
            boolean[] held = new boolean[all.size()];
            for (int i = 0; i < evalSize; i++) {
                held[order[i]] = true;
            }
            train = new ArrayList<>();
            heldOut = new ArrayList<>();
            for (int i = 0; i < all.size(); i++) {
                (held[i] ? heldOut : train).add(all.get(i));
            }
        } else {
            String dir = HadoopFiles.resolve(output, "data");
            String task = config.data().task();
            String trainFile = shipped(task + "/train.jsonl", dir);
            trainSource = trainFile;
            train = read(spark, trainFile, "jsonl");
            List<PromptRow> held = evalSize == 0 ? List.of()
                    : read(spark, shipped(task + "/heldout.jsonl", dir), "jsonl");
            if (evalSize > held.size()) {
                throw new IllegalArgumentException(config.source() + ": data.eval_size " + evalSize + " is more than the "
                        + held.size() + " held-out prompts of task " + task);
            }
            heldOut = held.subList(0, evalSize);
        }
        try (HfTokenizer tokenizer = HfTokenizer.open(actorDir)) {
            return new PromptSet(train, tokenize(tokenizer, actorDir, train, config, bos, trainSource), heldOut,
                    tokenize(tokenizer, actorDir, heldOut, config, bos, trainSource + " (held out)"));
        }
    }

    /** A shipped dataset copied into {@code dir} of the run's output, where the executors read it; returns the file. */
    private static String shipped(String name, String dir) {
        if (HadoopFiles.isLocal(dir)) {
            return ShippedDatasets.copyTo(name, HadoopFiles.localPath(dir)).toString();
        }
        try {
            Path staging = Files.createTempDirectory("spark-rlhf-data");
            Path file = ShippedDatasets.copyTo(name, staging);
            String to = HadoopFiles.resolve(dir, file.getFileName().toString());
            HadoopFiles.upload(file, to);
            Files.delete(file);
            Files.delete(staging);
            return to;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot stage shipped dataset " + name + ": " + e.getMessage(), e);
        }
    }

    private static List<PromptRow> read(SparkSession spark, String path, String format) {
        ReadOptions options = ReadOptions.defaults().withFormat(DatasetFormat.parse(format));
        List<PromptRow> rows = new ArrayList<>(DatasetReader.read(spark, path, DatasetKind.PROMPTS, options).collectPrompts());
        rows.sort(Comparator.comparing(PromptRow::id));
        if (rows.isEmpty()) {
            throw new IllegalArgumentException(path + ": the prompt dataset has no prompts");
        }
        return rows;
    }

    /** A prompt longer than data.max_prompt_tokens is an error naming it. */
    private static List<int[]> tokenize(HfTokenizer tokenizer, Path tokenizerDir, List<PromptRow> rows,
                                        RunConfig config, int bos, String source) {
        List<int[]> out = new ArrayList<>(rows.size());
        PromptTokens prompts = new PromptTokens(tokenizer, tokenizerDir, bos);
        for (PromptRow row : rows) {
            if (!config.reward().fromModel() && row.reference() == null) {
                throw new IllegalArgumentException(source + ": prompt " + row.id() + ": field reference: the reward "
                        + "function " + config.reward().function() + " needs a reference answer");
            }
            int[] ids = prompts.of(row.prompt(), row.messages(), source + ": prompt " + row.id());
            if (ids.length > config.data().maxPromptTokens()) {
                throw new IllegalArgumentException(source + ": prompt " + row.id() + ": " + ids.length
                        + " tokens, more than data.max_prompt_tokens = " + config.data().maxPromptTokens());
            }
            out.add(ids);
        }
        return out;
    }
}

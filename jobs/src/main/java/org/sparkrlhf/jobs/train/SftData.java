package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.DatasetFormat;
import org.sparkrlhf.datasets.DatasetKind;
import org.sparkrlhf.datasets.DatasetReader;
import org.sparkrlhf.datasets.ReadOptions;
import org.sparkrlhf.datasets.SftRow;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.Sequences;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * SFT examples: [bos] + prompt + answer + [eos], cut to data.max_prompt_tokens +
 * generation.max_new_tokens, sorted by id (so the data order does not depend on how the dataset
 * was written). {@code packed_input_ids} is the prompt part and the answer part (trained on) of
 * each picked example.
 */
public record SftData(List<Example> examples) implements TrainingData {
    /** One example: [bos] + prompt + answer + [eos], of which the first promptTokens are not trained on. */
    public record Example(int[] ids, int promptTokens) {
    }

    public static SftData read(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special) {
        if (config.data().path() == null) {
            throw new UnsupportedOperationException(config.source() + ": data.task: generated SFT tasks are not "
                    + "available yet; give data.path (an SFT dataset: prompt, answer)");
        }
        ReadOptions options = ReadOptions.defaults().withFormat(DatasetFormat.parse(config.data().format()));
        List<SftRow> rows = new ArrayList<>(DatasetReader.read(spark, config.data().path(), DatasetKind.SFT, options)
                .collectSft());
        rows.sort(Comparator.comparing(SftRow::id));
        int maxLength = config.data().maxPromptTokens() + config.generation().maxNewTokens();
        List<Example> examples = new ArrayList<>(rows.size());
        try (HfTokenizer tokenizer = HfTokenizer.open(tokenizerDir)) {
            for (SftRow row : rows) {
                if (row.prompt() == null) {
                    throw new UnsupportedOperationException(config.data().path() + ": example " + row.id()
                            + ": chat messages need a chat template, which SFT does not apply yet; give a prompt text");
                }
                int[] prompt = tokenizer.encodeInts(row.prompt());
                int[] answer = tokenizer.encodeInts(row.answer());
                int length = Math.min(maxLength, 1 + prompt.length + answer.length + 1);
                int[] ids = new int[length];
                int n = 0;
                ids[n++] = special.bos();
                for (int i = 0; i < prompt.length && n < length; i++) {
                    ids[n++] = prompt[i];
                }
                for (int i = 0; i < answer.length && n < length; i++) {
                    ids[n++] = answer[i];
                }
                if (n < length) {
                    ids[n++] = special.eos();
                }
                if (n < 2) {
                    throw new IllegalArgumentException(config.data().path() + ": example " + row.id() + " has no tokens");
                }
                if (n <= 1 + prompt.length) {
                    throw new IllegalArgumentException(config.data().path() + ": example " + row.id() + ": the prompt fills "
                            + "max_prompt_tokens + max_new_tokens = " + maxLength + " tokens; nothing of the answer is left to train on");
                }
                examples.add(new Example(ids, 1 + prompt.length));
            }
        }
        if (examples.isEmpty()) {
            throw new IllegalArgumentException(config.data().path() + ": the SFT dataset has no examples");
        }
        return new SftData(List.copyOf(examples));
    }

    @Override
    public int size() {
        return examples.size();
    }

    @Override
    public Lengths lengths() {
        int longest = 0;
        for (Example e : examples) {
            longest = Math.max(longest, e.ids().length);
        }
        return new Lengths(longest, 0);
    }

    @Override
    public void batch(List<Integer> picked, Keys keys) {
        int n = picked.size();
        int[][] prompts = new int[n][];
        int[][] answers = new int[n][];
        boolean[] whole = new boolean[n];
        for (int i = 0; i < n; i++) {
            Example e = examples.get(picked.get(i));
            prompts[i] = Arrays.copyOf(e.ids(), e.promptTokens());
            answers[i] = Arrays.copyOfRange(e.ids(), e.promptTokens(), e.ids().length);
            whole[i] = true;
        }
        Sequences rows = new Sequences(prompts, answers, whole);
        keys.put("packed_input_ids", rows);
        keys.put("prompt_mask", rows);
    }

    @Override
    public String describe() {
        return examples.size() + " examples";
    }
}

package org.sparkrlhf.jobs.train;

import org.apache.spark.sql.SparkSession;
import org.sparkrlhf.datasets.DatasetFormat;
import org.sparkrlhf.datasets.DatasetKind;
import org.sparkrlhf.datasets.DatasetReader;
import org.sparkrlhf.datasets.PreferenceRow;
import org.sparkrlhf.datasets.ReadOptions;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;
import org.sparkrlhf.jobs.config.RunConfig;
import org.sparkrlhf.jobs.graph.Keys;
import org.sparkrlhf.jobs.graph.Sequences;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.TreeSet;

/**
 * Preference pairs for RW, DPO, IPO and the group-robust variants: a PREFERENCES dataset (JSONL,
 * Parquet or Delta: prompt, chosen, rejected, optional group), sorted by id, and its held-out pairs
 * ({@code data.eval_path}, a dataset of the same kind, or {@code data.eval_size} pairs drawn from the
 * dataset by the run's seed). A prompt is its text or its chat messages under the model's chat
 * template ({@link PromptTokens}), at most data.max_prompt_tokens tokens; an
 * answer is its tokens + [eos], cut to generation.max_new_tokens. A batch's {@code packed_input_ids}
 * has pair i's chosen answer in row 2i and its rejected one in row 2i + 1; {@code group_ids} is each
 * pair's group index in {@link #groups} (the training set's group names, sorted; pairs without a
 * group are in group {@code all}).
 */
public record PreferenceData(List<Pair> pairs, List<Pair> heldOut, List<String> groups, long[] groupSizes)
        implements TrainingData {
    /** A tokenized pair: the prompt, the chosen and rejected answers, and the group's index. */
    public record Pair(String id, int[] prompt, int[] chosen, int[] rejected, int group) {
    }

    /** The group of pairs that name none. */
    public static final String NO_GROUP = "all";

    public static PreferenceData read(SparkSession spark, RunConfig config, Path tokenizerDir, SpecialTokens special) {
        RunConfig.DataConfig d = config.data();
        List<PreferenceRow> all = rows(spark, d.path(), d.format());
        List<PreferenceRow> train;
        List<PreferenceRow> held;
        if (d.evalPath() != null) {
            train = all;
            held = rows(spark, d.evalPath(), null);
        } else {
            if (d.evalSize() >= all.size()) {
                throw new IllegalArgumentException(config.source() + ": data.eval_size " + d.evalSize() + " leaves none of "
                        + "the " + all.size() + " pairs of " + d.path() + " to train on");
            }
            int[] order = DataOrder.permutation(all.size(), config.seed(), -1);
            boolean[] out = new boolean[all.size()];
            for (int i = 0; i < d.evalSize(); i++) {
                out[order[i]] = true;
            }
            train = new ArrayList<>();
            held = new ArrayList<>();
            for (int i = 0; i < all.size(); i++) {
                (out[i] ? held : train).add(all.get(i));
            }
        }
        TreeSet<String> names = new TreeSet<>();
        for (PreferenceRow r : train) {
            names.add(groupOf(r));
        }
        List<String> groups = List.copyOf(names);
        long[] sizes = new long[groups.size()];
        try (HfTokenizer tokenizer = HfTokenizer.open(tokenizerDir)) {
            List<Pair> pairs = tokenize(tokenizer, tokenizerDir, train, groups, config, special, d.path());
            for (Pair p : pairs) {
                sizes[p.group()]++;
            }
            return new PreferenceData(pairs, tokenize(tokenizer, tokenizerDir, held, groups, config, special,
                    d.evalPath() != null ? d.evalPath() : d.path() + " (held out)"), groups, sizes);
        }
    }

    private static List<PreferenceRow> rows(SparkSession spark, String path, String format) {
        ReadOptions options = ReadOptions.defaults();
        if (format != null) {
            options = options.withFormat(DatasetFormat.parse(format));
        }
        List<PreferenceRow> rows = new ArrayList<>(DatasetReader.read(spark, path, DatasetKind.PREFERENCES, options)
                .collectPreferences());
        rows.sort(Comparator.comparing(PreferenceRow::id));
        if (rows.isEmpty()) {
            throw new IllegalArgumentException(path + ": the preference dataset has no pairs");
        }
        return rows;
    }

    private static String groupOf(PreferenceRow r) {
        return r.group() == null || r.group().isBlank() ? NO_GROUP : r.group();
    }

    private static List<Pair> tokenize(HfTokenizer tokenizer, Path tokenizerDir, List<PreferenceRow> rows,
                                       List<String> groups, RunConfig config, SpecialTokens special, String source) {
        int maxPrompt = config.data().maxPromptTokens();
        int maxAnswer = config.generation().maxNewTokens();
        List<Pair> out = new ArrayList<>(rows.size());
        PromptTokens prompts = new PromptTokens(tokenizer, tokenizerDir, special.bos());
        for (PreferenceRow r : rows) {
            int group = groups.indexOf(groupOf(r));
            if (group < 0) {
                throw new IllegalArgumentException(source + ": pair " + r.id() + ": field group: '" + groupOf(r)
                        + "' is not a group of the training pairs " + groups);
            }
            int[] prompt = prompts.of(r.prompt(), r.messages(), source + ": pair " + r.id());
            if (prompt.length > maxPrompt) {
                throw new IllegalArgumentException(source + ": pair " + r.id() + ": the prompt has " + prompt.length
                        + " tokens, more than data.max_prompt_tokens = " + maxPrompt);
            }
            out.add(new Pair(r.id(), prompt, answer(tokenizer, r.chosen(), special, maxAnswer),
                    answer(tokenizer, r.rejected(), special, maxAnswer), group));
        }
        return out;
    }

    /** The answer's tokens and eos, cut to {@code max} tokens. */
    private static int[] answer(HfTokenizer tokenizer, String text, SpecialTokens special, int max) {
        int[] t = tokenizer.encodeInts(text);
        int[] ids = Arrays.copyOf(t, t.length + 1);
        ids[t.length] = special.eos();
        return ids.length > max ? Arrays.copyOf(ids, max) : ids;
    }

    @Override
    public int size() {
        return pairs.size();
    }

    @Override
    public void batch(List<Integer> picked, Keys keys) {
        List<Pair> chosen = new ArrayList<>(picked.size());
        for (int i : picked) {
            chosen.add(pairs.get(i));
        }
        keys.put("group_ids", groupsOf(chosen));
        Sequences rows = rows(chosen);
        keys.put("packed_input_ids", rows);
        keys.put("prompt_mask", rows);
    }

    /** Pairs as rows: 2i chosen, 2i + 1 rejected. */
    public static Sequences rows(List<Pair> pairs) {
        int n = pairs.size();
        int[][] prompts = new int[2 * n][];
        int[][] answers = new int[2 * n][];
        boolean[] stopped = new boolean[2 * n];
        for (int i = 0; i < n; i++) {
            Pair p = pairs.get(i);
            prompts[2 * i] = p.prompt();
            prompts[2 * i + 1] = p.prompt();
            answers[2 * i] = p.chosen();
            answers[2 * i + 1] = p.rejected();
        }
        return new Sequences(prompts, answers, stopped);
    }

    public static int[] groupsOf(List<Pair> pairs) {
        return pairs.stream().mapToInt(Pair::group).toArray();
    }

    @Override
    public Lengths lengths() {
        int prompt = 0;
        int answer = 0;
        for (Pair p : pairs) {
            prompt = Math.max(prompt, p.prompt().length);
            answer = Math.max(answer, Math.max(p.chosen().length, p.rejected().length));
        }
        return new Lengths(prompt, answer);
    }

    @Override
    public String describe() {
        return pairs.size() + " preference pairs in groups " + groups + " " + Arrays.toString(groupSizes) + " ("
                + heldOut.size() + " held out)";
    }
}

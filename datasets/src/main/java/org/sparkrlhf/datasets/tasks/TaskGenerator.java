package org.sparkrlhf.datasets.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.sparkrlhf.datasets.JsonlFiles;
import org.sparkrlhf.datasets.PromptRow;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Writes a task's prompt dataset as JSONL (id, prompt, reference, group):
 *
 * <pre>
 * TaskGenerator --task arithmetic|digit-sort --seed FIRST_SEED --count N --out FILE.jsonl
 *               [--levels 1,2] [--exclude OTHER.jsonl]
 * </pre>
 *
 * Problem k comes from seed FIRST_SEED + k; {@code --exclude} skips the questions of another
 * dataset (a held-out set excludes the training set's).
 */
public final class TaskGenerator {
    private TaskGenerator() {
    }

    public static void main(String[] args) {
        String task = null;
        Long seed = null;
        Integer count = null;
        Path out = null;
        List<Integer> levels = List.of(1, 2);
        Set<String> exclude = Set.of();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value");
            String v = args[++i];
            switch (a) {
                case "--task" -> task = v;
                case "--seed" -> seed = Long.parseLong(v);
                case "--count" -> count = Integer.parseInt(v);
                case "--out" -> out = Path.of(v);
                case "--levels" -> {
                    List<Integer> l = new ArrayList<>();
                    for (String s : v.split(",")) l.add(Integer.parseInt(s.strip()));
                    levels = List.copyOf(l);
                }
                case "--exclude" -> exclude = promptsOf(Path.of(v));
                default -> throw new IllegalArgumentException("unknown argument " + a);
            }
        }
        if (task == null || seed == null || count == null || out == null) {
            throw new IllegalArgumentException("usage: --task arithmetic|digit-sort --seed N --count N --out FILE "
                    + "[--levels 1,2] [--exclude FILE]");
        }
        List<PromptRow> rows = generate(task, seed, count, levels, exclude);
        JsonlFiles.write(out, rows);
        System.out.println("wrote " + rows.size() + " " + task + " prompts to " + out);
    }

    public static List<PromptRow> generate(String task, long seed, int count, List<Integer> levels, Set<String> exclude) {
        return switch (task) {
            case "arithmetic" -> ArithmeticTask.generate(seed, count, levels, exclude);
            case "digit-sort" -> DigitSortTask.generate(seed, count, levels, exclude);
            default -> throw new IllegalArgumentException("unknown task '" + task + "'; tasks are " + RewardFunctions.TASKS);
        };
    }

    /** The "prompt" of every line of a JSONL file. */
    static Set<String> promptsOf(Path file) {
        ObjectMapper json = new ObjectMapper();
        Set<String> out = new HashSet<>();
        try {
            int lineNumber = 0;
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                lineNumber++;
                if (line.isBlank()) continue;
                JsonNode node = json.readTree(line);
                JsonNode prompt = node.get("prompt");
                if (prompt == null || !prompt.isTextual()) {
                    throw new IllegalArgumentException(file + ", line " + lineNumber + ": field 'prompt': missing or not a string");
                }
                out.add(prompt.asText());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read", e);
        }
        return out;
    }
}

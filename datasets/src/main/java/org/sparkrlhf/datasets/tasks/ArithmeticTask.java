package org.sparkrlhf.datasets.tasks;

import org.sparkrlhf.datasets.PromptRow;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Synthetic arithmetic problems with exact answers: "What is 37 + 58?" -> "95".
 *
 * <p>Each problem comes from its own seed, so a dataset is a range of seeds: the same seeds give
 * the same problems, and a held-out set is another range (with the training set's questions
 * excluded). Levels:
 * <ol>
 *   <li>one-digit operands, + and - (results not negative)</li>
 *   <li>two-digit operands, + and - (not negative), and * by a one-digit number</li>
 *   <li>up to three-digit operands, + and - (may be negative), and two-digit * two-digit</li>
 * </ol>
 * The group of a problem is its operation: add, sub or mul.
 */
public final class ArithmeticTask {
    private ArithmeticTask() {
    }

    /** One problem with its numbers, for building responses (the preference dataset does). */
    public record Problem(long seed, int level, long a, char op, long b) {
        public long answer() {
            return switch (op) {
                case '+' -> a + b;
                case '-' -> a - b;
                case '*' -> a * b;
                default -> throw new IllegalStateException("operation " + op);
            };
        }

        public String question() {
            return "What is " + a + " " + op + " " + b + "?";
        }

        public String group() {
            return op == '+' ? "add" : op == '-' ? "sub" : "mul";
        }

        public PromptRow toPrompt(String idPrefix) {
            return PromptRow.text(idPrefix + seed, question(), Long.toString(answer()), group());
        }
    }

    /** The problem of one seed, its level drawn from {@code levels}. */
    public static Problem problem(long seed, List<Integer> levels) {
        SplittableRandom rng = new SplittableRandom(seed);
        int level = levels.get(rng.nextInt(levels.size()));
        char op;
        long a, b;
        switch (level) {
            case 1 -> {
                op = rng.nextBoolean() ? '+' : '-';
                a = rng.nextInt(10);
                b = rng.nextInt(10);
            }
            case 2 -> {
                op = "+-*".charAt(rng.nextInt(3));
                a = 10 + rng.nextInt(90);
                b = op == '*' ? 2 + rng.nextInt(8) : 10 + rng.nextInt(90);
            }
            case 3 -> {
                op = "+-*".charAt(rng.nextInt(3));
                a = op == '*' ? 10 + rng.nextInt(90) : 10 + rng.nextInt(990);
                b = op == '*' ? 10 + rng.nextInt(90) : 10 + rng.nextInt(990);
            }
            default -> throw new IllegalArgumentException("arithmetic level " + level + " does not exist; levels are 1, 2, 3");
        }
        if (op == '-' && level < 3 && a < b) {
            long t = a;
            a = b;
            b = t;
        }
        return new Problem(seed, level, a, op, b);
    }

    /**
     * Prompts for seeds {@code firstSeed, firstSeed + 1, ...}, skipping questions in
     * {@code exclude} and questions already made (a dataset never repeats a question), until
     * {@code count} are made. Ids are "arith-SEED".
     */
    public static List<PromptRow> generate(long firstSeed, int count, List<Integer> levels, Set<String> exclude) {
        List<PromptRow> out = new ArrayList<>(count);
        for (Problem p : problems(firstSeed, count, levels, exclude)) out.add(p.toPrompt("arith-"));
        return out;
    }

    /** The problems behind {@link #generate}. */
    public static List<Problem> problems(long firstSeed, int count, List<Integer> levels, Set<String> exclude) {
        return DistinctQuestions.draw(firstSeed, count, levels, exclude, seed -> problem(seed, levels), Problem::question);
    }
}

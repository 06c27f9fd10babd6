package org.sparkrlhf.datasets.tasks;

import org.sparkrlhf.datasets.JsonlFiles;
import org.sparkrlhf.datasets.PreferenceRow;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * A small preference dataset whose groups want different things, for group-robust preference
 * optimisation (GR-DPO / GR-IPO): on the same arithmetic questions,
 * <ul>
 *   <li>{@code concise} prefers the bare answer ("95"),</li>
 *   <li>{@code explained} prefers a worked answer ("37 + 58 = 95. The answer is 95."),</li>
 *   <li>{@code boxed} prefers the answer boxed ("\boxed{95}"),</li>
 * </ul>
 * and every group prefers a right answer to a wrong one in its own style. Each prompt says which
 * group asks, as the paper's prompts name the group (its "opinion of people in country X"): the
 * group's instruction ({@link #instruction}) before the question, so one policy can serve every
 * group. The groups are imbalanced (150, 90 and 60 pairs): plain DPO fits the majority; a
 * group-robust objective must serve the smallest group too. Pair k of every group is on the same
 * question (the k-th of the arithmetic problems from seed {@code PROMPT_SEED}, levels 1 and 2, no
 * question twice), so questions 0-59 appear in all three groups with opposite preferences. For each
 * pair, with probability 3/4 the rejected answer is the right answer in another group's style
 * (chosen uniformly), else a wrong answer (off by 1 to 3) in the group's own style. The seed picks
 * the rejected answers only: another seed gives a held-out set on the same questions.
 *
 * <pre>GroupPreferences --seed 7 --out pairs.jsonl</pre>
 */
public final class GroupPreferences {
    private GroupPreferences() {
    }

    public static final long PROMPT_SEED = 2_000_000L;
    public static final List<String> GROUPS = List.of("concise", "explained", "boxed");
    public static final List<Integer> PAIRS_PER_GROUP = List.of(150, 90, 60);

    /** What a group's prompt says before the question: the style it wants. */
    public static String instruction(String group) {
        return switch (group) {
            case "concise" -> "Just the number.";
            case "explained" -> "Show your work.";
            case "boxed" -> "Box the answer.";
            default -> throw new IllegalArgumentException("no group " + group);
        };
    }

    /** The right (or given) answer to a problem in a group's style. */
    public static String inStyle(String group, ArithmeticTask.Problem p, long answer) {
        return switch (group) {
            case "concise" -> Long.toString(answer);
            case "explained" -> p.a() + " " + p.op() + " " + p.b() + " = " + answer + ". The answer is " + answer + ".";
            case "boxed" -> "\\boxed{" + answer + "}";
            default -> throw new IllegalArgumentException("no group " + group);
        };
    }

    public static List<PreferenceRow> generate(long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        List<ArithmeticTask.Problem> problems = ArithmeticTask.problems(PROMPT_SEED, PAIRS_PER_GROUP.get(0), List.of(1, 2), Set.of());
        List<PreferenceRow> out = new ArrayList<>();
        for (int g = 0; g < GROUPS.size(); g++) {
            String group = GROUPS.get(g);
            for (int k = 0; k < PAIRS_PER_GROUP.get(g); k++) {
                ArithmeticTask.Problem p = problems.get(k);
                String chosen = inStyle(group, p, p.answer());
                String rejected;
                if (rng.nextInt(4) < 3) {
                    String other = GROUPS.get((g + 1 + rng.nextInt(GROUPS.size() - 1)) % GROUPS.size());
                    rejected = inStyle(other, p, p.answer());
                } else {
                    long off = 1 + rng.nextInt(3);
                    long wrong = p.answer() - off >= 0 && rng.nextBoolean() ? p.answer() - off : p.answer() + off;
                    rejected = inStyle(group, p, wrong);
                }
                out.add(new PreferenceRow(group + "-" + k, instruction(group) + " " + p.question(), null, chosen, rejected,
                        group));
            }
        }
        return out;
    }

    public static void main(String[] args) {
        Long seed = null;
        Path out = null;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--seed" -> seed = Long.parseLong(args[i + 1]);
                case "--out" -> out = Path.of(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (seed == null || out == null || args.length % 2 != 0) throw new IllegalArgumentException("usage: --seed N --out FILE");
        List<PreferenceRow> rows = generate(seed);
        JsonlFiles.write(out, rows);
        System.out.println("wrote " + rows.size() + " preference pairs to " + out);
    }
}

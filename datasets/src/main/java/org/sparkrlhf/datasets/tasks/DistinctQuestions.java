package org.sparkrlhf.datasets.tasks;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Function;
import java.util.function.LongFunction;

/** Seeded task generation shared by the tasks: one seed a problem, no question twice, none excluded. */
final class DistinctQuestions {
    private DistinctQuestions() {
    }

    /**
     * Problems from seeds firstSeed, firstSeed + 1, ... until count distinct questions not in
     * exclude are found; gives up after 1000 seeds a problem, as the levels may not hold that many.
     */
    static <T> List<T> draw(long firstSeed, int count, List<Integer> levels, Set<String> exclude,
                            LongFunction<T> problem, Function<T, String> question) {
        List<T> out = new ArrayList<>(count);
        Set<String> skip = new HashSet<>(exclude);
        long limit = firstSeed + 1000L * Math.max(count, 1);
        for (long seed = firstSeed; out.size() < count; seed++) {
            if (seed >= limit) {
                throw new IllegalArgumentException("only " + out.size() + " of " + count + " questions at levels " + levels
                        + " are not excluded; ask for fewer or other levels");
            }
            T p = problem.apply(seed);
            if (!skip.add(question.apply(p))) continue;
            out.add(p);
        }
        return out;
    }
}

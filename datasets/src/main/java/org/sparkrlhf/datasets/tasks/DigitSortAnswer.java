package org.sparkrlhf.datasets.tasks;

import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a sorted-digits answer from a response: a run of digits separated only by spaces or
 * commas ("1 3 4 9", "1,3,4,9", "1349"); the first run of the marked answer ({@code \boxed{...}},
 * after {@code ####} or "answer is"/"answer:") when there is one, else the last run of the
 * response's last line.
 */
public final class DigitSortAnswer {
    private DigitSortAnswer() {
    }

    private static final Pattern RUN = Pattern.compile("\\d(?:[ ,]*\\d)*");
    private static final Pattern BOXED = Pattern.compile("\\\\boxed\\{([^{}]*)}");
    private static final Pattern ANSWER_IS = Pattern.compile("answer(?:\\s+is|\\s*:|\\s*=)", Pattern.CASE_INSENSITIVE);

    /** The answer's digits as one string ("1349"), or empty. */
    public static Optional<String> extract(String response) {
        if (response == null || response.isBlank()) return Optional.empty();
        String text = response.strip();
        String candidate = null;
        Matcher boxed = BOXED.matcher(text);
        while (boxed.find()) candidate = boxed.group(1);
        if (candidate == null && text.lastIndexOf("####") >= 0) candidate = text.substring(text.lastIndexOf("####") + 4);
        if (candidate == null) {
            Matcher a = ANSWER_IS.matcher(text);
            int after = -1;
            while (a.find()) after = a.end();
            if (after >= 0) candidate = text.substring(after);
        }
        boolean marked = candidate != null;
        if (!marked) {
            String[] lines = text.split("\\R");
            candidate = lines[lines.length - 1];
        }
        // A marked answer is the first run after its mark; an unmarked one the last run of the last line.
        Matcher run = RUN.matcher(candidate);
        String found = null;
        while (run.find()) {
            found = run.group();
            if (marked) break;
        }
        return found == null ? Optional.empty() : Optional.of(found.replaceAll("[ ,]", ""));
    }

    public static boolean isCorrect(String response, String reference) {
        String expected = reference.replaceAll("[ ,]", "");
        return extract(response).map(expected::equals).orElse(false);
    }
}

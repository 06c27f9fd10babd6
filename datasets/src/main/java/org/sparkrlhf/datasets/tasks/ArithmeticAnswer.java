package org.sparkrlhf.datasets.tasks;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the final numeric answer out of a model's response, tolerant of spaces and formatting:
 * "95", " 95 ", "95.0", "1,234", "The answer is 95.", "#### 95", "\boxed{95}", "37 + 58 = 95".
 *
 * <p>Where the answer is marked, the mark decides: the last {@code \boxed{...}}, else the text after
 * the last {@code ####}, else the first number after the last "answer is" / "answer:"; a boxed
 * or #### answer that is not one number is no answer. Unmarked, a sentence or an equation gives
 * its last number; otherwise the response must hold exactly one number: numbers side by side
 * ("9 5") are ambiguous and give no answer.
 */
public final class ArithmeticAnswer {
    private ArithmeticAnswer() {
    }

    /** A number: optional sign, digits with optional thousands separators, optional decimals. */
    private static final Pattern NUMBER = Pattern.compile("[-\u2212]?(?:\\d{1,3}(?:,\\d{3})+|\\d+)(?:\\.\\d+)?(?![\\d,]*\\d)");
    private static final Pattern BOXED = Pattern.compile("\\\\boxed\\{([^{}]*)}");
    private static final Pattern ANSWER_IS = Pattern.compile("answer(?:\\s+is|\\s*:|\\s*=)", Pattern.CASE_INSENSITIVE);

    /** The response's final answer, or empty when there is none or it is ambiguous. */
    public static Optional<BigDecimal> extract(String response) {
        if (response == null) return Optional.empty();
        String text = response.strip();
        if (text.isEmpty()) return Optional.empty();

        Matcher boxed = BOXED.matcher(text);
        String lastBoxed = null;
        while (boxed.find()) lastBoxed = boxed.group(1);
        if (lastBoxed != null) return single(lastBoxed);

        int hashes = text.lastIndexOf("####");
        if (hashes >= 0) return single(text.substring(hashes + 4));

        Matcher answerIs = ANSWER_IS.matcher(text);
        int after = -1;
        while (answerIs.find()) after = answerIs.end();
        if (after >= 0) {
            List<String> numbers = numbers(text.substring(after));
            return numbers.isEmpty() ? Optional.empty() : Optional.of(parse(numbers.get(0)));
        }

        List<String> numbers = numbers(text);
        if (numbers.isEmpty()) return Optional.empty();
        boolean prose = text.codePoints().anyMatch(Character::isLetter) || text.indexOf('=') >= 0;
        if (prose) return Optional.of(parse(numbers.get(numbers.size() - 1)));
        return numbers.size() == 1 ? Optional.of(parse(numbers.get(0))) : Optional.empty();
    }

    /** Whether the response's final answer equals the reference (an integer or decimal), numerically. */
    public static boolean isCorrect(String response, String reference) {
        BigDecimal expected = parse(reference.strip());
        return extract(response).map(a -> a.compareTo(expected) == 0).orElse(false);
    }

    /** A text that is exactly one number, give or take spaces, a final period and surrounding $...$. */
    private static Optional<BigDecimal> single(String s) {
        String t = s.strip();
        if (t.startsWith("$") && t.endsWith("$") && t.length() > 1) t = t.substring(1, t.length() - 1).strip();
        if (t.endsWith(".")) t = t.substring(0, t.length() - 1).strip();
        Matcher m = NUMBER.matcher(t);
        if (!m.matches()) return Optional.empty();
        return Optional.of(parse(t));
    }

    private static List<String> numbers(String s) {
        List<String> out = new ArrayList<>();
        Matcher m = NUMBER.matcher(s);
        while (m.find()) out.add(m.group());
        return out;
    }

    private static BigDecimal parse(String number) {
        return new BigDecimal(number.replace(",", "").replace('\u2212', '-').toLowerCase(Locale.ROOT));
    }
}

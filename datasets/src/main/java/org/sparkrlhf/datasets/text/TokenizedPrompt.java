package org.sparkrlhf.datasets.text;

import java.util.Arrays;

/**
 * A prompt as the model sees it: the text after the chat template, its token ids (at most the
 * maximum prompt length), the length before truncation and whether it was truncated.
 */
public record TokenizedPrompt(String text, int[] tokens, int fullLength, boolean truncated) {
    @Override
    public boolean equals(Object o) {
        return o instanceof TokenizedPrompt t && text.equals(t.text) && Arrays.equals(tokens, t.tokens)
                && fullLength == t.fullLength && truncated == t.truncated;
    }

    @Override
    public int hashCode() {
        return 31 * text.hashCode() + Arrays.hashCode(tokens);
    }

    @Override
    public String toString() {
        return "TokenizedPrompt[text=" + text + ", tokens=" + Arrays.toString(tokens) + ", fullLength=" + fullLength
                + ", truncated=" + truncated + "]";
    }
}

package org.sparkrlhf.datasets.text;

/**
 * What tokenizing a dataset did: how many prompts, how many were longer than the maximum (and so
 * truncated), and the longest prompt before truncation.
 */
public record TokenizationReport(long prompts, long truncated, int maxPromptTokens, int longestPrompt) {
    public String summary() {
        return prompts + " prompts, " + truncated + " longer than " + maxPromptTokens
                + " tokens and truncated; longest " + longestPrompt + " tokens";
    }
}

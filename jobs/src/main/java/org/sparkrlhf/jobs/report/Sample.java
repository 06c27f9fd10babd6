package org.sparkrlhf.jobs.report;

/** A rollouts-table row as the report shows it. */
public record Sample(String rowId, String promptText, String responseText, double reward, String rewardDetail,
                     int responseLength, String finishReason) {
}

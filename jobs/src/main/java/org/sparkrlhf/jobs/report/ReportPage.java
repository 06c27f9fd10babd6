package org.sparkrlhf.jobs.report;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * The report of a run as one self-contained HTML page: the charts are inline SVG drawn here, the
 * style is inline, and the page has no script and loads nothing, so it opens offline and can be
 * mailed or attached to a ticket as one file.
 */
public final class ReportPage {
    /** A chart of the metrics whose names the filter accepts. */
    private record Curves(String title, String id, Predicate<String> names) {
    }

    private static final List<Curves> CURVES = List.of(
            new Curves("Reward: training batches and held-out prompts", "reward",
                    n -> n.startsWith("reward/") || n.equals("eval/reward_mean")),
            new Curves("Held-out evaluation", "eval", n -> n.startsWith("eval/") && !n.equals("eval/reward_mean")),
            new Curves("KL to the reference model", "kl", n -> n.startsWith("kl/") && !n.equals("kl/coef")),
            new Curves("Losses", "loss", n -> n.startsWith("loss/")),
            new Curves("Seconds per call", "seconds", n -> n.startsWith("seconds/")),
            new Curves("Tokens per second", "throughput", n -> n.equals("tokens_per_second")),
            new Curves("Gradient norms", "grad-norm", n -> n.startsWith("grad_norm/")));

    private static final String STYLE = """
            body { font: 14px/1.4 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 1160px; padding: 0 16px; }
            h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
            .meta, .absent, .caption { color: #666; }
            .charts { display: flex; flex-wrap: wrap; gap: 8px 24px; }
            figure.chart { margin: 0; } figcaption { font-weight: 600; margin: 6px 0 2px; }
            svg.plot { display: block; background: #fff; }
            svg .grid { stroke: #e6e6e6; } svg .axis { stroke: #888; }
            svg .series { fill: none; stroke-width: 2; }
            svg text { font: 11px system-ui, sans-serif; fill: #555; } svg text.call { font-size: 12px; fill: #222; }
            .legend { list-style: none; padding: 0; margin: 2px 0 0 64px; display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px; }
            .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
            table.samples { border-collapse: collapse; width: 100%; font-size: 13px; margin-bottom: 12px; }
            table.samples th, table.samples td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
            table.samples th { background: #f4f4f4; }
            td.text { white-space: pre-wrap; font-family: ui-monospace, monospace; max-width: 420px; word-break: break-word; }
            """;

    private ReportPage() {
    }

    public static String html(RunReport r) {
        StringBuilder b = new StringBuilder();
        b.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>spark-rlhf run ")
                .append(Html.escape(r.runId())).append("</title>\n<style>\n").append(STYLE).append("</style></head>\n<body>\n")
                .append("<h1>spark-rlhf run ").append(Html.escape(r.runId())).append("</h1>\n<p class=\"meta\">from the Delta tables under ")
                .append(Html.escape(r.output())).append("/tables</p>\n");
        curves(b, r);
        timeline(b, r);
        samples(b, r);
        return b.append("</body></html>\n").toString();
    }

    private static void curves(StringBuilder b, RunReport r) {
        b.append("<h2>Curves</h2>\n<div class=\"charts\">\n");
        List<String> absent = new ArrayList<>();
        for (Curves c : CURVES) {
            List<Series> chosen = new ArrayList<>();
            for (Series s : r.curves()) {
                if (c.names().test(s.name())) {
                    chosen.add(s);
                }
            }
            if (chosen.isEmpty()) {
                absent.add(c.title());
            } else {
                b.append(LineChart.html(c.title(), c.id(), chosen));
            }
            if (c.id().equals("kl")) {
                responseLengths(b, r, absent);
            }
        }
        b.append("</div>\n");
        if (!absent.isEmpty()) {
            b.append("<p class=\"absent\">Not in this run: ").append(Html.escape(String.join("; ", absent))).append(".</p>\n");
        }
    }

    /** From the rollouts table (min, mean, max), else the run's mean-length metric. */
    private static void responseLengths(StringBuilder b, RunReport r, List<String> absent) {
        String title = "Response length (tokens)";
        if (!r.responseLengths().isEmpty()) {
            b.append(LineChart.html(title + ", from the rollouts", "response-length", r.responseLengths()));
        } else if (r.curve("response_length/mean") != null) {
            b.append(LineChart.html(title, "response-length", List.of(r.curve("response_length/mean"))));
        } else {
            absent.add(title);
        }
    }

    private static void timeline(StringBuilder b, RunReport r) {
        b.append("<h2>Timeline: the plan's estimate against the run</h2>\n");
        if (r.measured().isEmpty() && r.estimated().isEmpty()) {
            b.append("<p class=\"absent\">The run recorded no timeline.</p>\n");
            return;
        }
        StringBuilder caption = new StringBuilder("Iteration " + r.timelineIteration());
        if (r.estimatedSeconds() != null) {
            caption.append(": the plan estimated ").append(Html.number(r.estimatedSeconds())).append(" s");
        }
        if (r.measuredSeconds() != null) {
            caption.append(r.estimatedSeconds() != null ? ", it took " : ": it took ")
                    .append(Html.number(r.measuredSeconds())).append(" s");
        }
        if (r.estimated().isEmpty()) {
            caption.append(" (the plan has no estimate for this run's layout)");
        }
        b.append(TimelineChart.html(caption.toString(), "timeline", r.estimated(), r.measured()));
    }

    private static void samples(StringBuilder b, RunReport r) {
        b.append("<h2>Samples of the last iteration</h2>\n");
        if (r.samplesIteration() < 0) {
            b.append("<p class=\"absent\">The run wrote no rollouts.</p>\n");
            return;
        }
        b.append("<p class=\"caption\">Iteration ").append(r.samplesIteration())
                .append(", by reward (ties in row-id order).</p>\n");
        sampleTable(b, "Best", "best", r.best());
        sampleTable(b, "Worst", "worst", r.worst());
    }

    private static void sampleTable(StringBuilder b, String title, String id, List<Sample> samples) {
        b.append("<h3>").append(title).append("</h3>\n<table class=\"samples\" id=\"").append(id).append("\">")
                .append("<tr><th>reward</th><th>verdict</th><th>tokens</th><th>finish</th><th>prompt</th><th>response</th>")
                .append("<th>row id</th></tr>\n");
        for (Sample s : samples) {
            b.append("<tr><td>").append(Html.number(s.reward())).append("</td><td>").append(Html.escape(s.rewardDetail()))
                    .append("</td><td>").append(s.responseLength()).append("</td><td>").append(Html.escape(s.finishReason()))
                    .append("</td><td class=\"text\">").append(Html.escape(s.promptText())).append("</td><td class=\"text\">")
                    .append(Html.escape(s.responseText())).append("</td><td>").append(Html.escape(s.rowId()))
                    .append("</td></tr>\n");
        }
        b.append("</table>\n");
    }
}

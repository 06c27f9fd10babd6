package org.sparkrlhf.jobs.report;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One iteration's schedule as inline SVG: per call or hook a row with the plan's estimated span
 * (light) above the measured one (dark), on one axis of seconds from the iteration's start. Hooks
 * have no estimate; a call the plan placed but that did not run has no measured bar.
 */
final class TimelineChart {
    static final int WIDTH = 1120;
    private static final int LEFT = 160;
    private static final int RIGHT = 16;
    private static final int TOP = 8;
    private static final int ROW = 30;
    private static final int BOTTOM = 40;
    static final String ESTIMATED = "#a0cbe8";
    static final String MEASURED = "#4e79a7";

    private TimelineChart() {
    }

    static String html(String title, String id, List<Span> estimated, List<Span> measured) {
        Map<String, Span[]> rows = new LinkedHashMap<>();
        for (Span s : measured) {
            rows.computeIfAbsent(s.name(), n -> new Span[2])[1] = s;
        }
        for (Span s : estimated) {
            rows.computeIfAbsent(s.name(), n -> new Span[2])[0] = s;
        }
        double end = 0;
        for (Span s : concat(estimated, measured)) {
            end = Math.max(end, s.end());
        }
        int height = TOP + ROW * rows.size() + BOTTOM;
        Axis x = Axis.covering(0, end, 10, LEFT, WIDTH - RIGHT);
        StringBuilder svg = new StringBuilder();
        svg.append("<figure class=\"chart wide\" id=\"").append(id).append("\"><figcaption>").append(Html.escape(title))
                .append("</figcaption>\n<svg class=\"plot\" width=\"").append(WIDTH).append("\" height=\"").append(height)
                .append("\" viewBox=\"0 0 ").append(WIDTH).append(' ').append(height).append("\" role=\"img\">\n");
        int bottom = height - BOTTOM;
        for (double t : x.ticks()) {
            String px = Html.coordinate(x.pixel(t));
            svg.append("<line class=\"grid\" x1=\"").append(px).append("\" x2=\"").append(px).append("\" y1=\"").append(TOP)
                    .append("\" y2=\"").append(bottom).append("\"/><text class=\"tick\" text-anchor=\"middle\" x=\"")
                    .append(px).append("\" y=\"").append(bottom + 16).append("\">").append(Html.number(t)).append("</text>\n");
        }
        svg.append("<text class=\"label\" text-anchor=\"middle\" x=\"").append((LEFT + WIDTH - RIGHT) / 2).append("\" y=\"")
                .append(height - 6).append("\">seconds from the iteration's start</text>\n");
        int row = 0;
        for (Map.Entry<String, Span[]> e : rows.entrySet()) {
            int top = TOP + row * ROW;
            svg.append("<text class=\"call\" text-anchor=\"end\" x=\"").append(LEFT - 8).append("\" y=\"").append(top + 19)
                    .append("\">").append(Html.escape(e.getKey())).append("</text>\n");
            bar(svg, e.getValue()[0], "estimated", ESTIMATED, x, top + 3, 11);
            bar(svg, e.getValue()[1], "measured", MEASURED, x, top + 15, 11);
            row++;
        }
        svg.append("</svg>\n<ul class=\"legend\"><li><span class=\"swatch\" style=\"background:").append(ESTIMATED)
                .append("\"></span>estimated (the plan's simulator)</li><li><span class=\"swatch\" style=\"background:")
                .append(MEASURED).append("\"></span>measured (the run)</li></ul></figure>\n");
        return svg.toString();
    }

    private static void bar(StringBuilder svg, Span s, String kind, String colour, Axis x, int y, int h) {
        if (s == null) {
            return;
        }
        double x0 = x.pixel(s.start());
        // a span shorter than a pixel is still shown
        double w = Math.max(1, x.pixel(s.end()) - x0);
        svg.append("<rect class=\"span ").append(kind).append("\" fill=\"").append(colour).append("\" x=\"")
                .append(Html.coordinate(x0)).append("\" y=\"").append(y).append("\" width=\"").append(Html.coordinate(w))
                .append("\" height=\"").append(h).append("\"><title>").append(Html.escape(s.name())).append(", ")
                .append(kind).append(": ").append(Html.number(s.start())).append(" to ").append(Html.number(s.end()))
                .append(" s</title></rect>\n");
    }

    private static List<Span> concat(List<Span> a, List<Span> b) {
        List<Span> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }
}

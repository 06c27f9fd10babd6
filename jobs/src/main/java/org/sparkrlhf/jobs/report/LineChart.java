package org.sparkrlhf.jobs.report;

import java.util.List;

/**
 * A chart of curves over iterations as inline SVG, with an HTML legend. Values that are not finite
 * (a diverged loss) break the line and are not drawn.
 */
final class LineChart {
    static final int WIDTH = 560;
    static final int HEIGHT = 240;
    private static final int LEFT = 64;
    private static final int RIGHT = 16;
    private static final int TOP = 12;
    private static final int BOTTOM = 40;
    /** Points are marked (each with its value as a tooltip) up to this many per series. */
    private static final int MARKED = 60;

    private LineChart() {
    }

    /** The chart of {@code series} (each non-empty), titled {@code title}. */
    static String html(String title, String id, List<Series> series) {
        double xLo = Double.POSITIVE_INFINITY;
        double xHi = Double.NEGATIVE_INFINITY;
        double yLo = Double.POSITIVE_INFINITY;
        double yHi = Double.NEGATIVE_INFINITY;
        for (Series s : series) {
            for (Point p : s.points()) {
                if (!Double.isFinite(p.y())) {
                    continue;
                }
                xLo = Math.min(xLo, p.x());
                xHi = Math.max(xHi, p.x());
                yLo = Math.min(yLo, p.y());
                yHi = Math.max(yHi, p.y());
            }
        }
        if (xLo > xHi) {
            xLo = xHi = yLo = yHi = 0;
        }
        Axis x = Axis.wholeNumbers(xLo, xHi, 8, LEFT, WIDTH - RIGHT);
        Axis y = Axis.covering(yLo, yHi, 5, HEIGHT - BOTTOM, TOP);

        StringBuilder svg = new StringBuilder();
        svg.append("<figure class=\"chart\" id=\"").append(id).append("\"><figcaption>").append(Html.escape(title))
                .append("</figcaption>\n<svg class=\"plot\" width=\"").append(WIDTH).append("\" height=\"").append(HEIGHT)
                .append("\" viewBox=\"0 0 ").append(WIDTH).append(' ').append(HEIGHT).append("\" role=\"img\">\n");
        axes(svg, x, y);
        for (int i = 0; i < series.size(); i++) {
            line(svg, series.get(i), x, y, Palette.colour(i));
        }
        svg.append("</svg>\n<ul class=\"legend\">");
        for (int i = 0; i < series.size(); i++) {
            svg.append("<li><span class=\"swatch\" style=\"background:").append(Palette.colour(i)).append("\"></span>")
                    .append(Html.escape(series.get(i).name())).append("</li>");
        }
        return svg.append("</ul></figure>\n").toString();
    }

    private static void axes(StringBuilder svg, Axis x, Axis y) {
        for (double t : y.ticks()) {
            String py = Html.coordinate(y.pixel(t));
            svg.append("<line class=\"grid\" x1=\"").append(LEFT).append("\" x2=\"").append(WIDTH - RIGHT)
                    .append("\" y1=\"").append(py).append("\" y2=\"").append(py).append("\"/>")
                    .append("<text class=\"tick\" text-anchor=\"end\" x=\"").append(LEFT - 6).append("\" y=\"").append(py)
                    .append("\" dy=\"4\">").append(Html.number(t)).append("</text>\n");
        }
        for (double t : x.ticks()) {
            String px = Html.coordinate(x.pixel(t));
            svg.append("<line class=\"axis\" x1=\"").append(px).append("\" x2=\"").append(px).append("\" y1=\"")
                    .append(HEIGHT - BOTTOM).append("\" y2=\"").append(HEIGHT - BOTTOM + 4).append("\"/>")
                    .append("<text class=\"tick\" text-anchor=\"middle\" x=\"").append(px).append("\" y=\"")
                    .append(HEIGHT - BOTTOM + 16).append("\">").append(Html.number(t)).append("</text>\n");
        }
        svg.append("<line class=\"axis\" x1=\"").append(LEFT).append("\" x2=\"").append(WIDTH - RIGHT).append("\" y1=\"")
                .append(HEIGHT - BOTTOM).append("\" y2=\"").append(HEIGHT - BOTTOM).append("\"/>")
                .append("<text class=\"label\" text-anchor=\"middle\" x=\"").append((LEFT + WIDTH - RIGHT) / 2)
                .append("\" y=\"").append(HEIGHT - 6).append("\">iteration</text>\n");
    }

    private static void line(StringBuilder svg, Series s, Axis x, Axis y, String colour) {
        StringBuilder d = new StringBuilder();
        boolean pen = false;
        for (Point p : s.points()) {
            if (!Double.isFinite(p.y())) {
                pen = false;
                continue;
            }
            d.append(pen ? " L" : (d.length() == 0 ? "M" : " M")).append(Html.coordinate(x.pixel(p.x()))).append(' ')
                    .append(Html.coordinate(y.pixel(p.y())));
            pen = true;
        }
        svg.append("<path class=\"series\" data-series=\"").append(Html.escape(s.name())).append("\" stroke=\"")
                .append(colour).append("\" d=\"").append(d).append("\"/>\n");
        if (s.points().size() > MARKED) {
            return;
        }
        for (Point p : s.points()) {
            if (Double.isFinite(p.y())) {
                svg.append("<circle class=\"point\" fill=\"").append(colour).append("\" cx=\"")
                        .append(Html.coordinate(x.pixel(p.x()))).append("\" cy=\"").append(Html.coordinate(y.pixel(p.y())))
                        .append("\" r=\"3\"><title>").append(Html.escape(s.name())).append(", iteration ")
                        .append(Html.number(p.x())).append(": ").append(Html.number(p.y())).append("</title></circle>\n");
            }
        }
    }
}

package org.sparkrlhf.planner.sim;

import org.sparkrlhf.planner.mesh.DeviceMesh;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A Gantt chart of a simulated plan as plain SVG: one row per device, time to the right; a bar per call
 * (spanning the rows of its mesh) and per reallocation (hatched), labelled with the call's name and
 * iteration where it fits (every bar also carries a tooltip); nodes are shaded alternately.
 */
public final class TimelineSvg {
    private static final String[] PALETTE = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
            "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

    private TimelineSvg() {
    }

    public static String render(List<TimelineEvent> events, int gpus, int gpusPerNode, String title) {
        double end = 0;
        for (TimelineEvent e : events) {
            end = Math.max(end, e.end());
        }
        if (end <= 0) {
            end = 1;
        }
        int left = 72;
        int right = 24;
        int top = 48;
        int width = 1280;
        double rowH = Math.max(5, Math.min(22, 640.0 / gpus));
        double plotH = rowH * gpus;
        double plotW = width - left - right;
        Map<String, String> colours = new LinkedHashMap<>();
        for (TimelineEvent e : events) {
            if (!e.reallocation()) {
                colours.computeIfAbsent(e.label(), k -> PALETTE[colours.size() % PALETTE.length]);
            }
        }
        int legendRows = (colours.size() + 1 + 5) / 6;
        int height = (int) Math.ceil(top + plotH + 44 + 22 * legendRows);
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                + "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">%n", width, height, width, height));
        b.append("<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
                + "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#d0d0d0\"/>"
                + "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#707070\" stroke-width=\"2\"/></pattern></defs>\n");
        b.append(String.format(Locale.ROOT, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>%n", width, height));
        b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"24\" font-size=\"15\" font-weight=\"bold\">%s</text>%n",
                left, escape(title)));
        for (int n = 0; n * gpusPerNode < gpus; n++) {
            double y = top + n * gpusPerNode * rowH;
            double h = Math.min(gpusPerNode, gpus - n * gpusPerNode) * rowH;
            b.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>%n",
                    left, y, plotW, h, n % 2 == 0 ? "#f7f7f7" : "#ececec"));
        }
        double labelEvery = Math.ceil(11 / rowH);
        for (int g = 0; g < gpus; g++) {
            if (g % labelEvery != 0) {
                continue;
            }
            b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.2f\" font-size=\"%.1f\" text-anchor=\"end\" "
                    + "dominant-baseline=\"middle\">GPU %d</text>%n", left - 6, top + (g + 0.5) * rowH,
                    Math.min(11, Math.max(8, rowH * labelEvery * 0.8)), g));
        }
        double step = niceStep(end / 10);
        for (double t = 0; t <= end + 1e-9; t += step) {
            double x = left + t / end * plotW;
            b.append(String.format(Locale.ROOT, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#bbbbbb\" "
                    + "stroke-width=\"0.5\"/>%n", x, top, x, top + plotH));
            b.append(String.format(Locale.ROOT, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"middle\">%s</text>%n",
                    x, top + plotH + 16, fmt(t)));
        }
        b.append(String.format(Locale.ROOT, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"middle\">seconds</text>%n",
                left + plotW / 2, top + plotH + 32));
        for (TimelineEvent e : events) {
            if (e.end() <= e.start()) {
                continue;
            }
            String fill = e.reallocation() ? "url(#hatch)" : colours.get(e.label());
            String name = e.label() + " (iteration " + (e.iteration() + 1) + ")";
            String tip = String.format(Locale.ROOT, "%s: %.3f s to %.3f s on %s", name, e.start(), e.end(),
                    meshLabels(e.meshes()));
            for (DeviceMesh m : e.meshes()) {
                double x = left + e.start() / end * plotW;
                double w = Math.max(0.5, (e.end() - e.start()) / end * plotW);
                double y = top + m.first() * rowH;
                double h = m.size() * rowH;
                b.append(String.format(Locale.ROOT, "<g><title>%s</title><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                        + "height=\"%.2f\" fill=\"%s\" stroke=\"white\" stroke-width=\"0.6\"/>", escape(tip), x,
                        y + 0.5, w, Math.max(0.5, h - 1), fill));
                String text = e.reallocation() ? "realloc" : e.label();
                double fontSize = Math.min(11, Math.max(7, h * 0.45));
                String ink = e.reallocation() ? "#202020" : "white";
                if (w > text.length() * fontSize * 0.62 + 4 && h >= 8) {
                    b.append(String.format(Locale.ROOT, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" "
                            + "text-anchor=\"middle\" dominant-baseline=\"middle\" fill=\"%s\">%s</text>", x + w / 2,
                            y + h / 2, fontSize, ink, escape(text)));
                } else if (h > text.length() * 9 * 0.62 + 4 && w >= 10) {
                    // a narrow, tall bar: the label runs upwards
                    b.append(String.format(Locale.ROOT, "<text transform=\"translate(%.2f %.2f) rotate(-90)\" "
                            + "font-size=\"9\" text-anchor=\"middle\" dominant-baseline=\"middle\" fill=\"%s\">%s</text>",
                            x + w / 2, y + h / 2, ink, escape(text)));
                }
                b.append("</g>\n");
            }
        }
        List<String[]> legend = new ArrayList<>();
        colours.forEach((k, v) -> legend.add(new String[]{k, v}));
        legend.add(new String[]{"reallocation", "url(#hatch)"});
        for (int i = 0; i < legend.size(); i++) {
            double x = left + (i % 6) * 190;
            double y = top + plotH + 44 + (i / 6) * 22;
            b.append(String.format(Locale.ROOT, "<rect x=\"%.2f\" y=\"%.2f\" width=\"14\" height=\"14\" fill=\"%s\"/>"
                    + "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\" dominant-baseline=\"middle\">%s</text>%n", x, y,
                    legend.get(i)[1], x + 20, y + 7, escape(legend.get(i)[0])));
        }
        b.append("</svg>\n");
        return b.toString();
    }

    private static String meshLabels(List<DeviceMesh> meshes) {
        StringBuilder s = new StringBuilder("GPUs ");
        for (int i = 0; i < meshes.size(); i++) {
            s.append(i == 0 ? "" : " and ").append(meshes.get(i).label());
        }
        return s.toString();
    }

    static double niceStep(double raw) {
        double p = Math.pow(10, Math.floor(Math.log10(raw)));
        for (double m : new double[]{1, 2, 5, 10}) {
            if (m * p >= raw) {
                return m * p;
            }
        }
        return 10 * p;
    }

    private static String fmt(double t) {
        return t == Math.rint(t) ? String.format(Locale.ROOT, "%.0f", t) : String.format(Locale.ROOT, "%.1f", t);
    }

    static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}

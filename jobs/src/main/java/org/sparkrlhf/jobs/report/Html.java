package org.sparkrlhf.jobs.report;

import java.math.BigDecimal;
import java.util.Locale;

/** Text as HTML and SVG take it, and numbers as the report prints them. */
final class Html {
    private Html() {
    }

    static String escape(String s) {
        if (s == null) {
            return "";
        }
        StringBuilder b = new StringBuilder(s.length());
        for (char c : s.toCharArray()) {
            switch (c) {
                case '&' -> b.append("&amp;");
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> b.append(c);
            }
        }
        return b.toString();
    }

    /** Four significant digits without trailing zeros; scientific outside 0.001..99999. */
    static String number(double v) {
        if (Double.isNaN(v)) {
            return "NaN";
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? "inf" : "-inf";
        }
        if (v != 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) {
            return String.format(Locale.ROOT, "%.3e", v);
        }
        String s = new BigDecimal(String.format(Locale.ROOT, "%.4g", v)).stripTrailingZeros().toPlainString();
        return s.equals("-0") ? "0" : s;
    }

    /** A coordinate of the drawing: two decimals are finer than a pixel. */
    static String coordinate(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }
}

package org.sparkrlhf.datasets.text;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * JSON as Python's {@code json.dumps(x, ensure_ascii=False, indent=..., sort_keys=...)} writes it,
 * which is what Hugging Face's {@code tojson} template filter gives: ", " and ": " separators
 * without indent, "," and ": " with one, non-ASCII characters as they are.
 */
final class PythonJson {
    private PythonJson() {
    }

    static String dumps(Object value, Integer indent, boolean sortKeys) {
        StringBuilder b = new StringBuilder();
        write(b, value, indent, sortKeys, 0);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v, Integer indent, boolean sortKeys, int depth) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof Boolean x) {
            b.append(x ? "true" : "false");
        } else if (v instanceof Double || v instanceof Float) {
            b.append(floatRepr(((Number) v).doubleValue()));
        } else if (v instanceof BigDecimal d) {
            b.append(floatRepr(d.doubleValue()));
        } else if (v instanceof Number n) {
            b.append(n.longValue());
        } else if (v instanceof CharSequence s) {
            string(b, s.toString());
        } else if (v instanceof Map<?, ?> m) {
            List<Map.Entry<?, ?>> entries = new ArrayList<>(m.entrySet());
            if (sortKeys) entries.sort((x, y) -> String.valueOf(x.getKey()).compareTo(String.valueOf(y.getKey())));
            if (entries.isEmpty()) { b.append("{}"); return; }
            b.append('{');
            for (int i = 0; i < entries.size(); i++) {
                b.append(i == 0 ? "" : indent == null ? ", " : ",");
                newline(b, indent, depth + 1);
                string(b, String.valueOf(entries.get(i).getKey()));
                b.append(": ");
                write(b, entries.get(i).getValue(), indent, sortKeys, depth + 1);
            }
            newline(b, indent, depth);
            b.append('}');
        } else if (v instanceof Iterable<?> it) {
            List<Object> items = new ArrayList<>();
            for (Object o : it) items.add(o);
            if (items.isEmpty()) { b.append("[]"); return; }
            b.append('[');
            for (int i = 0; i < items.size(); i++) {
                b.append(i == 0 ? "" : indent == null ? ", " : ",");
                newline(b, indent, depth + 1);
                write(b, items.get(i), indent, sortKeys, depth + 1);
            }
            newline(b, indent, depth);
            b.append(']');
        } else if (v.getClass().isArray() && v instanceof Object[] a) {
            write(b, List.of(a), indent, sortKeys, depth);
        } else {
            string(b, v.toString());
        }
    }

    private static void newline(StringBuilder b, Integer indent, int depth) {
        if (indent == null) return;
        b.append('\n').append(String.join("", Collections.nCopies(indent * depth, " ")));
    }

    /** Python's float repr: shortest round-trip digits, "1.0" for integral values, "1e-05" exponents. */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == Math.rint(d) && Math.abs(d) < 1e16) return (long) d + ".0";
        String s = Double.toString(d);
        int e = s.indexOf('E');
        if (e < 0) return s;
        // Java: 1.0E-5, Python: 1e-05.
        String mantissa = s.substring(0, e);
        if (mantissa.endsWith(".0")) mantissa = mantissa.substring(0, mantissa.length() - 2);
        int exp = Integer.parseInt(s.substring(e + 1));
        if (exp >= -4 && exp < 16) return new BigDecimal(s).stripTrailingZeros().toPlainString();
        return mantissa + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
    }

    private static void string(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                case '\b' -> b.append("\\b");
                case '\f' -> b.append("\\f");
                default -> {
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        b.append('"');
    }
}

package org.sparkrlhf.datasets.text;

import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;

/**
 * Python's str methods for Jinjava, which otherwise calls Java's: chat templates written for
 * Python's Jinja call {@code content.startswith('<think>')}, {@code .split('</think>')},
 * {@code .strip()}, ... Resolved before Jinjava's own resolver; other calls fall through to it.
 */
final class PythonStringMethods extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(base instanceof String s) || method == null) return null;
        Object[] p = params == null ? new Object[0] : params;
        Object result;
        switch (method.toString()) {
            case "strip" -> result = p.length == 0 ? stripWhitespace(s, true, true) : stripChars(s, str(p[0]), true, true);
            case "lstrip" -> result = p.length == 0 ? stripWhitespace(s, true, false) : stripChars(s, str(p[0]), true, false);
            case "rstrip" -> result = p.length == 0 ? stripWhitespace(s, false, true) : stripChars(s, str(p[0]), false, true);
            case "startswith" -> result = matchesAny(s, p[0], true);
            case "endswith" -> result = matchesAny(s, p[0], false);
            case "split" -> result = p.length == 0 || p[0] == null
                    ? splitWhitespace(s, p.length > 1 ? ((Number) p[1]).intValue() : -1)
                    : split(s, str(p[0]), p.length > 1 ? ((Number) p[1]).intValue() : -1);
            case "upper" -> result = s.toUpperCase(Locale.ROOT);
            case "lower" -> result = s.toLowerCase(Locale.ROOT);
            case "title" -> result = title(s);
            case "capitalize" -> result = s.isEmpty() ? s
                    : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            case "replace" -> result = p.length > 2 ? replace(s, str(p[0]), str(p[1]), ((Number) p[2]).intValue())
                    : s.replace(str(p[0]), str(p[1]));
            case "find" -> result = (long) s.indexOf(str(p[0]));
            case "rfind" -> result = (long) s.lastIndexOf(str(p[0]));
            case "count" -> result = (long) count(s, str(p[0]));
            case "join" -> result = join(s, p[0]);
            case "splitlines" -> result = splitLines(s);
            default -> { return null; }
        }
        context.setPropertyResolved(true);
        return result;
    }

    private static String str(Object o) {
        return o == null ? "None" : o.toString();
    }

    private static boolean isPyWhitespace(char c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == '\u001c' || c == '\u001d'
                || c == '\u001e' || c == '\u001f' || c == '\u0085';
    }

    private static String stripWhitespace(String s, boolean left, boolean right) {
        int a = 0, b = s.length();
        while (left && a < b && isPyWhitespace(s.charAt(a))) a++;
        while (right && b > a && isPyWhitespace(s.charAt(b - 1))) b--;
        return s.substring(a, b);
    }

    private static String stripChars(String s, String chars, boolean left, boolean right) {
        int a = 0, b = s.length();
        while (left && a < b && chars.indexOf(s.charAt(a)) >= 0) a++;
        while (right && b > a && chars.indexOf(s.charAt(b - 1)) >= 0) b--;
        return s.substring(a, b);
    }

    private static boolean matchesAny(String s, Object prefixes, boolean start) {
        if (prefixes instanceof Iterable<?> it) {
            for (Object o : it) if (start ? s.startsWith(str(o)) : s.endsWith(str(o))) return true;
            return false;
        }
        return start ? s.startsWith(str(prefixes)) : s.endsWith(str(prefixes));
    }

    /** str.split(sep, maxsplit): a literal separator, empty pieces kept. */
    private static List<String> split(String s, String sep, int maxSplit) {
        if (sep.isEmpty()) throw new IllegalArgumentException("empty separator");
        List<String> out = new ArrayList<>();
        int from = 0;
        while (maxSplit < 0 || out.size() < maxSplit) {
            int at = s.indexOf(sep, from);
            if (at < 0) break;
            out.add(s.substring(from, at));
            from = at + sep.length();
        }
        out.add(s.substring(from));
        return out;
    }

    /** str.split() without a separator: runs of whitespace split, leading and trailing ones dropped. */
    private static List<String> splitWhitespace(String s, int maxSplit) {
        List<String> out = new ArrayList<>();
        int i = 0, n = s.length();
        while (true) {
            while (i < n && isPyWhitespace(s.charAt(i))) i++;
            if (i >= n) break;
            if (maxSplit >= 0 && out.size() == maxSplit) {
                out.add(stripWhitespace(s.substring(i), false, true));
                break;
            }
            int j = i;
            while (j < n && !isPyWhitespace(s.charAt(j))) j++;
            out.add(s.substring(i, j));
            i = j;
        }
        return out;
    }

    /** str.splitlines(): pieces between \n, \r or \r\n, no empty piece after a final break. */
    private static List<String> splitLines(String s) {
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c != '\n' && c != '\r') continue;
            out.add(s.substring(start, i));
            if (c == '\r' && i + 1 < s.length() && s.charAt(i + 1) == '\n') i++;
            start = i + 1;
        }
        if (start < s.length()) out.add(s.substring(start));
        return out;
    }

    private static String title(String s) {
        StringBuilder b = new StringBuilder(s.length());
        boolean previousCased = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            b.append(previousCased ? Character.toLowerCase(c) : Character.toUpperCase(c));
            previousCased = Character.isLetter(c);
        }
        return b.toString();
    }

    private static String replace(String s, String old, String with, int count) {
        if (count < 0) return s.replace(old, with);
        StringBuilder b = new StringBuilder();
        int from = 0;
        for (int k = 0; k < count; k++) {
            int at = s.indexOf(old, from);
            if (at < 0) break;
            b.append(s, from, at).append(with);
            from = at + old.length();
        }
        return b.append(s.substring(from)).toString();
    }

    private static int count(String s, String sub) {
        if (sub.isEmpty()) return s.length() + 1;
        int n = 0;
        for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) n++;
        return n;
    }

    private static String join(String sep, Object items) {
        List<String> parts = new ArrayList<>();
        if (items instanceof Iterable<?> it) for (Object o : it) parts.add(str(o));
        else parts.add(str(items));
        return String.join(sep, parts);
    }

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}

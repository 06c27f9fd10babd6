package org.sparkrlhf.datasets.text;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.AdvancedFilter;

import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.Locale;
import java.util.Map;

/** The globals and the filter that Hugging Face adds to its Jinja environment for chat templates. */
public final class TemplateFunctions {
    private TemplateFunctions() {
    }

    /** Thrown by a template's {@code raise_exception(message)}: the template rejects the conversation. */
    public static final class TemplateRaised extends RuntimeException {
        public TemplateRaised(String message) {
            super(message);
        }
    }

    /** {@code raise_exception(message)}. */
    public static Object raiseException(String message) {
        throw new TemplateRaised(message);
    }

    /** {@code strftime_now(format)}: the local time, formatted as Python's strftime would. */
    public static String strftimeNow(String format) {
        return strftime(format, ZonedDateTime.now());
    }

    /** Python's strftime for the directives templates use (%Y %m %d %H %M %S %I %p %y %b %B %a %A %j %%). */
    public static String strftime(String format, ZonedDateTime t) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) { b.append(c); continue; }
            char d = format.charAt(++i);
            switch (d) {
                case 'Y' -> b.append(String.format("%04d", t.getYear()));
                case 'y' -> b.append(String.format("%02d", t.getYear() % 100));
                case 'm' -> b.append(String.format("%02d", t.getMonthValue()));
                case 'd' -> b.append(String.format("%02d", t.getDayOfMonth()));
                case 'H' -> b.append(String.format("%02d", t.getHour()));
                case 'I' -> b.append(String.format("%02d", t.getHour() % 12 == 0 ? 12 : t.getHour() % 12));
                case 'p' -> b.append(t.getHour() < 12 ? "AM" : "PM");
                case 'M' -> b.append(String.format("%02d", t.getMinute()));
                case 'S' -> b.append(String.format("%02d", t.getSecond()));
                case 'j' -> b.append(String.format("%03d", t.getDayOfYear()));
                case 'b' -> b.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> b.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'a' -> b.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> b.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case '%' -> b.append('%');
                default -> throw new IllegalArgumentException("strftime_now: directive %" + d + " is not supported");
            }
        }
        return b.toString();
    }

    /** HF's {@code tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)}. */
    static final class ToJson implements AdvancedFilter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indent = kwargs.containsKey("indent") ? kwargs.get("indent") : args.length > 0 ? args[0] : null;
            if (kwargs.containsKey("separators")) throw new IllegalArgumentException("tojson: separators are not supported");
            if (Boolean.TRUE.equals(kwargs.get("ensure_ascii"))) throw new IllegalArgumentException("tojson: ensure_ascii is not supported");
            boolean sortKeys = Boolean.TRUE.equals(kwargs.get("sort_keys"));
            return PythonJson.dumps(var, indent == null ? null : ((Number) indent).intValue(), sortKeys);
        }
    }
}

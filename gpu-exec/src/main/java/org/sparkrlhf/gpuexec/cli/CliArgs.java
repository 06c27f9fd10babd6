package org.sparkrlhf.gpuexec.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/** {@code --name value} options of a command, checked against the names it accepts. */
final class CliArgs {
    private final String command;
    private final Map<String, String> values = new LinkedHashMap<>();

    CliArgs(String command, String[] args, int from, Set<String> accepted) {
        this.command = command;
        for (int i = from; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) throw new InputException(command + ": unexpected argument '" + a + "'");
            String name = a.substring(2), value;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else {
                if (i + 1 >= args.length) throw new InputException(command + ": option --" + name + " needs a value");
                value = args[++i];
            }
            if (!accepted.contains(name)) {
                throw new InputException(command + ": unknown option --" + name + " (accepted: --" + String.join(", --", accepted) + ")");
            }
            if (values.put(name, value) != null) throw new InputException(command + ": option --" + name + " given twice");
        }
    }

    String required(String name) {
        String v = values.get(name);
        if (v == null) throw new InputException(command + ": option --" + name + " is required");
        return v;
    }

    int integer(String name, int fallback, int min) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            int x = Integer.parseInt(v.trim());
            if (x < min) throw new InputException(command + ": option --" + name + " must be >= " + min + ", got " + x);
            return x;
        } catch (NumberFormatException e) {
            throw new InputException(command + ": option --" + name + " expects an integer, got '" + v + "'");
        }
    }

    long longValue(String name, long fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new InputException(command + ": option --" + name + " expects an integer, got '" + v + "'");
        }
    }

    float number(String name, float fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            float x = Float.parseFloat(v.trim());
            if (!Float.isFinite(x)) throw new NumberFormatException();
            return x;
        } catch (NumberFormatException e) {
            throw new InputException(command + ": option --" + name + " expects a number, got '" + v + "'");
        }
    }
}

package org.sparkrlhf.planner.cost;

import java.util.List;
import java.util.Locale;

/**
 * The runtime's fixed costs as measured on a cluster, beside a profile table: they replace the
 * constants fitted to ReaL's engine ({@link CostConstants#callOverhead()},
 * {@link CostConstants#decodeStepOverhead()}). Stored as {@code key=value} lines.
 *
 * @param callOverhead       seconds of a model function call that does nothing (stage launch, the
 *                           ranks' rendezvous, the results' return)
 * @param decodeStepOverhead seconds of a decoding step beyond its decoder layers (the head at the
 *                           decode batch, sampling, the stop check)
 */
public record RuntimeCosts(double callOverhead, double decodeStepOverhead) {
    public RuntimeCosts {
        if (!(callOverhead >= 0) || !(decodeStepOverhead >= 0) || Double.isInfinite(callOverhead)
                || Double.isInfinite(decodeStepOverhead)) {
            throw new IllegalArgumentException("runtime costs must be finite and non-negative, got call "
                    + callOverhead + " s, decoding step " + decodeStepOverhead + " s");
        }
    }

    public String format() {
        return String.format(Locale.ROOT, "call_overhead_seconds=%.6e%ndecode_step_seconds=%.6e%n", callOverhead,
                decodeStepOverhead);
    }

    /** Parses {@link #format()}'s lines; {@code source} names the file in errors. */
    public static RuntimeCosts parse(String source, List<String> lines) {
        Double call = null;
        Double step = null;
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int eq = line.indexOf('=');
            String where = source + ":" + (i + 1) + ": ";
            if (eq < 0) {
                throw new IllegalArgumentException(where + "expected key=value, got '" + line + "'");
            }
            String key = line.substring(0, eq).trim();
            double v;
            try {
                v = Double.parseDouble(line.substring(eq + 1).trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(where + key + ": not a number");
            }
            switch (key) {
                case "call_overhead_seconds" -> call = v;
                case "decode_step_seconds" -> step = v;
                default -> throw new IllegalArgumentException(where + "unknown key '" + key + "'");
            }
        }
        if (call == null || step == null) {
            throw new IllegalArgumentException(source + ": needs call_overhead_seconds and decode_step_seconds");
        }
        return new RuntimeCosts(call, step);
    }
}

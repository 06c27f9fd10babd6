package org.sparkrlhf.planner.cost;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Measured compute times per device, as the engine's per-layer profiler writes them: a CSV file with
 * the header {@code model,gpu,op,tp,tokens,context,seconds} and one row per measurement.
 * <ul>
 *   <li>{@code model}, {@code gpu}: the names the planner uses (a preset name or the model's
 *   {@code _name_or_path}; {@code h100}, {@code a100}, {@code cpu});</li>
 *   <li>{@code op}: {@code layer_fwd} / {@code layer_bwd} (one decoder layer over {@code tokens} tokens of
 *   sequences {@code context} long), {@code layer_decode} (one decoding step of one layer for
 *   {@code tokens} sequences with {@code context} cached positions), {@code head_fwd} / {@code head_bwd}
 *   (the output head over {@code tokens} tokens; context ignored), {@code value_head_fwd} /
 *   {@code value_head_bwd} (the same for a value head, as a critic or reward model has),
 *   {@code head_decode} (what a decoding step of {@code tokens} sequences costs beyond its decoder layers:
 *   the embedding, the head, sampling and the stop check; context ignored);</li>
 *   <li>{@code tp}: the tensor-parallel degree whose shard was timed (compute only; the planner adds the
 *   collectives itself); {@code seconds}: wall time of the op on one device.</li>
 * </ul>
 * Lookup takes the rows of the nearest context (in log scale), interpolates linearly in tokens, keeps
 * the smallest measurement as a floor below the measured range and scales the largest proportionally
 * above it. Ops or tp degrees without rows fall back to the roofline.
 */
public final class ProfileTable {
    public enum Op {
        LAYER_FWD("layer_fwd"), LAYER_BWD("layer_bwd"), LAYER_DECODE("layer_decode"), HEAD_FWD("head_fwd"),
        HEAD_BWD("head_bwd"), VALUE_HEAD_FWD("value_head_fwd"), VALUE_HEAD_BWD("value_head_bwd"),
        HEAD_DECODE("head_decode");

        final String label;

        Op(String label) {
            this.label = label;
        }

        public String label() {
            return label;
        }

        static Op parse(String s) {
            for (Op o : values()) {
                if (o.label.equals(s)) {
                    return o;
                }
            }
            return null;
        }
    }

    private record Row(long tokens, long context, double seconds) {
    }

    private final Map<String, List<Row>> rows = new HashMap<>();

    public static ProfileTable empty() {
        return new ProfileTable();
    }

    private static String key(String model, String gpu, Op op, int tp) {
        return model + "\u0000" + gpu + "\u0000" + op.label + "\u0000" + tp;
    }

    public void add(String model, String gpu, Op op, int tp, long tokens, long context, double seconds) {
        rows.computeIfAbsent(key(model, gpu, op, tp), k -> new ArrayList<>()).add(new Row(tokens, context, seconds));
    }

    public boolean isEmpty() {
        return rows.isEmpty();
    }

    /** Reads (and adds) a profile CSV; a bad row is reported with its file and line. */
    public ProfileTable read(Path csv) {
        List<String> lines;
        try {
            lines = Files.readAllLines(csv, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException(csv + ": cannot read profile: " + e.getMessage(), e);
        }
        return read(csv.toString(), lines);
    }

    /** Reads (and adds) the lines of a profile CSV read elsewhere; {@code csv} names it in errors. */
    public ProfileTable read(String csv, List<String> lines) {
        if (lines.isEmpty() || !lines.get(0).trim().toLowerCase(Locale.ROOT).equals("model,gpu,op,tp,tokens,context,seconds")) {
            throw new IllegalArgumentException(csv + ":1: expected the header model,gpu,op,tp,tokens,context,seconds");
        }
        ProfileTable staged = new ProfileTable();
        for (int i = 1; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split(",", -1);
            String where = csv + ":" + (i + 1) + ": ";
            if (f.length != 7) {
                throw new IllegalArgumentException(where + "expected 7 fields, got " + f.length);
            }
            Op op = Op.parse(f[2].trim());
            if (op == null) {
                throw new IllegalArgumentException(where + "field 'op': unknown op '" + f[2].trim() + "'");
            }
            int tp = (int) parseLong(f[3], "tp", where);
            long tokens = parseLong(f[4], "tokens", where);
            long context = parseLong(f[5], "context", where);
            double sec;
            try {
                sec = Double.parseDouble(f[6].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(where + "field 'seconds': not a number: '" + f[6].trim() + "'");
            }
            if (tp < 1 || tokens < 1 || context < 0 || !(sec > 0) || Double.isInfinite(sec)) {
                throw new IllegalArgumentException(where + "tp and tokens must be >= 1, context >= 0, seconds > 0");
            }
            staged.add(f[0].trim(), f[1].trim(), op, tp, tokens, context, sec);
        }
        staged.rows.forEach((k, v) -> rows.computeIfAbsent(k, x -> new ArrayList<>()).addAll(v));
        return this;
    }

    private static long parseLong(String s, String field, String where) {
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(where + "field '" + field + "': not an integer: '" + s.trim() + "'");
        }
    }

    /** Seconds of {@code op}, or NaN when the table has no row for this model, device, op and tp. */
    public double lookup(String model, String gpu, Op op, int tp, double tokens, double context) {
        List<Row> all = rows.get(key(model, gpu, op, tp));
        if (all == null || all.isEmpty()) {
            return Double.NaN;
        }
        long bestCtx = all.get(0).context;
        double bestDist = Double.MAX_VALUE;
        for (Row r : all) {
            double d = Math.abs(Math.log1p(r.context) - Math.log1p(context));
            if (d < bestDist) {
                bestDist = d;
                bestCtx = r.context;
            }
        }
        List<Row> at = new ArrayList<>();
        for (Row r : all) {
            if (r.context == bestCtx) {
                at.add(r);
            }
        }
        at.sort(Comparator.comparingLong(Row::tokens));
        Row lo = at.get(0);
        Row hi = at.get(at.size() - 1);
        if (tokens <= lo.tokens) {
            return lo.seconds;
        }
        if (tokens >= hi.tokens) {
            return hi.seconds * tokens / hi.tokens;
        }
        for (int i = 1; i < at.size(); i++) {
            Row a = at.get(i - 1);
            Row b = at.get(i);
            if (tokens <= b.tokens) {
                if (b.tokens == a.tokens) {
                    return b.seconds;
                }
                double t = (tokens - a.tokens) / (double) (b.tokens - a.tokens);
                return a.seconds + t * (b.seconds - a.seconds);
            }
        }
        return hi.seconds;
    }
}

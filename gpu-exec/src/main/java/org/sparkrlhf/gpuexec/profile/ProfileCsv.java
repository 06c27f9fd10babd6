package org.sparkrlhf.gpuexec.profile;

import org.sparkrlhf.gpuexec.checkpoint.AtomicFiles;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/** Writes profile rows as the planner's profile table reads them. */
public final class ProfileCsv {
    public static final String HEADER = "model,gpu,op,tp,tokens,context,seconds";

    private ProfileCsv() {
    }

    public static String format(List<ProfileRow> rows) {
        StringBuilder sb = new StringBuilder(HEADER).append('\n');
        for (ProfileRow r : rows) {
            sb.append(String.format(Locale.ROOT, "%s,%s,%s,%d,%d,%d,%.6e%n", r.model(), r.gpu(), r.op(), r.tp(),
                    r.tokens(), r.context(), r.seconds()));
        }
        return sb.toString();
    }

    public static void write(Path file, List<ProfileRow> rows) {
        AtomicFiles.writeString(file, format(rows));
    }
}

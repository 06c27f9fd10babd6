package org.sparkrlhf.jobs.report;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

/** The report command's arguments (reading the tables is {@link RunTablesTest}'s). */
class ReportCommandTest {
    private static String run(int expected, String... args) {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = ReportCommand.run(args, new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(expected, code);
        return err.toString(StandardCharsets.UTF_8);
    }

    @Test
    void badArgumentsExitWith2AndTheUsage() {
        assertTrue(run(2).contains(ReportCommand.USAGE));
        assertTrue(run(2, "out", "--bogus").startsWith("spark-rlhf report: unexpected argument '--bogus'"));
        assertTrue(run(2, "out", "other").startsWith("spark-rlhf report: unexpected argument 'other'"));
        assertTrue(run(2, "out", "--run").startsWith("spark-rlhf report: unexpected argument '--run'"));
    }
}

package org.sparkrlhf.jobs.report;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The report page in headless Chromium (Debian's {@code chromium}; {@code .ci/run} installs it):
 * it loads without a console message or a fetch, the browser's DOM holds every chart with its
 * series and bars, and the screenshot shows the timeline's bars painted.
 */
class ReportPageChromiumTest {
    private static HeadlessChromium chromium;

    @BeforeAll
    static void findChromium() {
        chromium = HeadlessChromium.find().orElse(null);
        Assumptions.assumeTrue(chromium != null, "Chromium is not installed (Debian: apt-get install chromium): "
                + "the report's rendering test is skipped");
    }

    private static Series series(String name, double... ys) {
        List<Point> points = new ArrayList<>();
        for (int i = 0; i < ys.length; i++) {
            points.add(new Point(i + 1, ys[i]));
        }
        return new Series(name, points);
    }

    static RunReport report() {
        List<Series> curves = List.of(series("reward/mean", 0.25, 0.5, 0.625, 0.75),
                series("eval/reward_mean", 0.3, Double.NaN, 0.55, 0.7), series("kl/k3", 0.0, 0.01, 0.02, 0.015),
                series("loss/actor", -0.01, 0.02, 0.0, 0.01), series("seconds/actor_gen", 2.0, 1.5, 1.5, 1.4),
                series("seconds/actor_train", 1.0, 0.9, 0.9, 0.95), series("tokens_per_second", 900, 1000, 1100, 1200));
        List<Series> lengths = List.of(series("max", 3, 3, 3, 3), series("mean", 2.5, 2.25, 2, 2), series("min", 1, 1, 1, 1));
        List<Span> estimated = List.of(new Span("actor_gen", 0, 1.2), new Span("ref_inf", 1.2, 1.5),
                new Span("actor_train", 1.5, 2.5));
        List<Span> measured = List.of(new Span("actor_gen", 0, 1.4), new Span("rewards", 1.41, 1.42),
                new Span("ref_inf", 1.45, 1.9), new Span("actor_train", 1.95, 2.9));
        List<Sample> best = List.of(new Sample("run/4/p1/0", "What is 1 + 2?", "3", 1.0, "correct", 2, "stop"));
        List<Sample> worst = List.of(new Sample("run/4/p2/3", "What is <b>2 & 2</b>?", "5</td>", 0.0, "wrong", 3, "length"));
        return new RunReport("run", "/tmp/out", curves, lengths, 4, measured, estimated, 2.5, 2.9, 4, best, worst);
    }

    private static int count(String text, String regex) {
        Matcher m = Pattern.compile(regex).matcher(text);
        int n = 0;
        while (m.find()) {
            n++;
        }
        return n;
    }

    @Test
    void thePageRendersItsChartsAndSamplesWithoutScriptErrorsOrFetches(@TempDir Path dir) throws Exception {
        String html = ReportPage.html(report());
        // self-contained: nothing to fetch, no script that could fail
        for (String external : List.of("<script", "<link", "src=", "href=", "url(", "@import")) {
            assertFalse(html.contains(external), external);
        }
        Path page = dir.resolve("report.html");
        Files.writeString(page, html);

        HeadlessChromium.Loaded loaded = chromium.dumpDom(page, dir);
        assertEquals(List.of(), loaded.consoleMessages());
        String dom = loaded.dom();
        for (String id : List.of("reward", "kl", "response-length", "loss", "seconds", "throughput", "timeline")) {
            assertEquals(1, count(dom, "<figure class=\"chart[^\"]*\" id=\"" + id + "\""), id);
        }
        // 7 metric series in 5 charts and 3 length series; every point of a series drawn (the NaN leaves a gap)
        assertEquals(10, count(dom, "<path class=\"series\""));
        assertEquals(1, count(dom, "d=\"M[^\"]* M[^\"]*\""), "the held-out reward's NaN breaks its line once");
        assertEquals(4 * 10 - 1, count(dom, "<circle class=\"point\""));
        assertEquals(3, count(dom, "<rect class=\"span estimated\""));
        assertEquals(4, count(dom, "<rect class=\"span measured\""));
        assertTrue(dom.contains("Iteration 4: the plan estimated 2.5 s, it took 2.9 s"), dom);
        assertTrue(dom.contains("Not in this run: Held-out evaluation; Gradient norms."), dom);
        // the sample text is shown as text, not markup
        assertTrue(dom.contains("What is &lt;b&gt;2 &amp; 2&lt;/b&gt;?"), dom);
        assertTrue(dom.contains("5&lt;/td&gt;"), dom);
        assertEquals(2 + 2, count(dom, "<tr>"), "a header and one sample in each table");

        Path png = dir.resolve("report.png");
        chromium.screenshot(page, png, 1200, 1600, dir);
        BufferedImage shot = ImageIO.read(png.toFile());
        int measuredPixels = 0;
        int estimatedPixels = 0;
        for (int y = 0; y < shot.getHeight(); y++) {
            for (int x = 0; x < shot.getWidth(); x++) {
                int rgb = shot.getRGB(x, y) & 0xffffff;
                measuredPixels += rgb == Integer.parseInt(TimelineChart.MEASURED.substring(1), 16) ? 1 : 0;
                estimatedPixels += rgb == Integer.parseInt(TimelineChart.ESTIMATED.substring(1), 16) ? 1 : 0;
            }
        }
        // the bars are about 11 pixels high and hundreds wide: thousands of pixels each
        assertTrue(measuredPixels > 2000 && estimatedPixels > 2000, measuredPixels + " / " + estimatedPixels);
    }

    @Test
    void aScriptErrorWouldBeSeen(@TempDir Path dir) throws Exception {
        // the check above relies on the browser logging script errors: a page with one shows it
        Path page = dir.resolve("broken.html");
        Files.writeString(page, "<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>");
        List<String> messages = chromium.dumpDom(page, dir).consoleMessages();
        assertEquals(1, messages.size(), messages.toString());
        assertTrue(messages.get(0).contains("Uncaught ReferenceError: undefinedFunction is not defined"), messages.get(0));
    }
}

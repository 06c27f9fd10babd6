package org.sparkrlhf.jobs.report;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Debian's {@code chromium} (or {@code chromium-browser}) on the PATH, run headless on a local
 * page: its DOM after loading, its console messages (a script error is logged as
 * {@code ...:CONSOLE:<line>] "Uncaught ..."}), and a screenshot.
 */
final class HeadlessChromium {
    private final Path binary;

    private HeadlessChromium(Path binary) {
        this.binary = binary;
    }

    /** The browser on the PATH, if any. */
    static Optional<HeadlessChromium> find() {
        String path = System.getenv("PATH");
        for (String name : List.of("chromium", "chromium-browser")) {
            for (String dir : (path == null ? "" : path).split(File.pathSeparator)) {
                Path p = Path.of(dir.isEmpty() ? "." : dir, name);
                if (Files.isExecutable(p)) {
                    return Optional.of(new HeadlessChromium(p));
                }
            }
        }
        return Optional.empty();
    }

    /** What loading a page gave: the serialised DOM and the browser's log. */
    record Loaded(String dom, String log) {
        /** The page's console messages (script errors among them). */
        List<String> consoleMessages() {
            List<String> out = new ArrayList<>();
            for (String line : log.split("\n")) {
                if (line.matches(".*:CONSOLE[:(].*")) {
                    out.add(line);
                }
            }
            return out;
        }
    }

    Loaded dumpDom(Path page, Path work) throws IOException, InterruptedException {
        Path dom = work.resolve("dom.html");
        Path log = work.resolve("chromium.log");
        run(work, dom, log, "--enable-logging=stderr", "--v=0", "--dump-dom", page.toUri().toString());
        return new Loaded(Files.readString(dom, StandardCharsets.UTF_8), Files.readString(log, StandardCharsets.UTF_8));
    }

    void screenshot(Path page, Path png, int width, int height, Path work) throws IOException, InterruptedException {
        run(work, work.resolve("screenshot.out"), work.resolve("screenshot.log"), "--hide-scrollbars",
                "--window-size=" + width + "," + height, "--screenshot=" + png.toAbsolutePath(), page.toUri().toString());
    }

    private void run(Path work, Path stdout, Path stderr, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(binary.toString(), "--headless",
                // root in a container has no user namespace for the sandbox
                "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--user-data-dir=" + Files.createTempDirectory(work, "profile")));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectOutput(stdout.toFile()).redirectError(stderr.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("chromium did not finish in 120 s: " + command);
        }
        if (p.exitValue() != 0) {
            throw new IllegalStateException("chromium exited with " + p.exitValue() + ": " + Files.readString(stderr));
        }
    }
}

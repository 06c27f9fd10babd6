package org.sparkrlhf.jobs.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A Spark standalone cluster on the loopback address: one Master and {@code workers} Workers, each a
 * JVM started from a {@link SparkDistribution}'s jars as {@code sbin/start-master.sh} and
 * {@code start-worker.sh} would. Each Worker offers {@code coresPerWorker} CPU slots, {@code memory}
 * for the JVMs it launches, and two GPUs through the distribution's discovery script (the standalone
 * Master gives GPUs only to executors that ask for them, so a CPU job leaves them unused). The
 * Workers launch the executors and, in cluster deploy mode, the driver; their output lands under
 * {@code dir/worker-<n>/}. Closing stops the Workers (and so what they launched), then the Master.
 */
public final class StandaloneCluster implements AutoCloseable {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(180);

    private final Path dir;
    private final int masterPort;
    private final int webUiPort;
    private final List<Process> daemons = new ArrayList<>();
    private final List<Path> logs = new ArrayList<>();
    private final HttpClient http = HttpClient.newHttpClient();

    private StandaloneCluster(Path dir, int masterPort, int webUiPort) {
        this.dir = dir;
        this.masterPort = masterPort;
        this.webUiPort = webUiPort;
    }

    /** Starts the Master and the Workers and returns once every Worker has registered. */
    public static StandaloneCluster start(SparkDistribution spark, Path dir, int workers, int coresPerWorker, String memory) {
        StandaloneCluster cluster = new StandaloneCluster(dir, freePort(), freePort());
        try {
            Files.createDirectories(dir);
            Path workerConf = dir.resolve("worker.conf");
            Files.writeString(workerConf, "spark.worker.resource.gpu.amount 2\n"
                    + "spark.worker.resource.gpu.discoveryScript " + spark.gpuDiscoveryScript() + "\n");
            cluster.launch(spark, "master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", Integer.toString(cluster.masterPort), "--webui-port", Integer.toString(cluster.webUiPort));
            for (int w = 1; w <= workers; w++) {
                Path workDir = Files.createDirectories(dir.resolve("worker-" + w));
                cluster.launch(spark, "worker-" + w, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                        "--cores", Integer.toString(coresPerWorker), "--memory", memory, "--work-dir", workDir.toString(),
                        "--webui-port", "0", "--properties-file", workerConf.toString(), cluster.masterUrl());
            }
            cluster.awaitWorkers(workers);
            return cluster;
        } catch (IOException | RuntimeException e) {
            cluster.close();
            throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
        }
    }

    public String masterUrl() {
        return "spark://127.0.0.1:" + masterPort;
    }

    /** The Master's state as its web UI serves it ({@code /json/}: workers, apps, drivers). */
    public JsonNode state() {
        try {
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + webUiPort + "/json/")).timeout(Duration.ofSeconds(10)).build(),
                    HttpResponse.BodyHandlers.ofString());
            return new ObjectMapper().readTree(response.body());
        } catch (IOException e) {
            throw new UncheckedIOException("the Master's web UI on port " + webUiPort + " does not answer", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** What a driver the Workers launched (cluster deploy mode) printed on {@code stream} (stdout, stderr). */
    public String driverOutput(String driverId, String stream) {
        try (Stream<Path> workers = Files.list(dir)) {
            for (Path worker : workers.filter(p -> p.getFileName().toString().startsWith("worker-")).toList()) {
                Path file = worker.resolve(driverId).resolve(stream);
                if (Files.exists(file)) {
                    return Files.readString(file);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        throw new IllegalStateException("no Worker under " + dir + " ran driver " + driverId);
    }

    /** The end of every daemon's log, for failure messages. */
    public String logTails() {
        StringBuilder out = new StringBuilder();
        for (Path log : logs) {
            out.append("--- ").append(log.getFileName()).append(" ---\n").append(tail(log, 4000));
        }
        return out.toString();
    }

    @Override
    public void close() {
        // Workers first: a stopped Worker kills the executors and drivers it launched; the Master last
        for (int i = daemons.size() - 1; i >= 0; i--) {
            stop(daemons.get(i));
        }
    }

    private void launch(SparkDistribution spark, String name, String mainClass, String... args) {
        Path log = dir.resolve(name + ".log");
        ProcessBuilder builder = spark.java("512m", mainClass, args).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        try {
            daemons.add(builder.start());
            logs.add(log);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start the " + name, e);
        }
    }

    private void awaitWorkers(int workers) {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            for (Process daemon : daemons) {
                if (!daemon.isAlive()) {
                    throw new IllegalStateException("a Spark daemon exited with " + daemon.exitValue() + "\n" + logTails());
                }
            }
            try {
                if (state().path("aliveworkers").asInt() == workers) {
                    return;
                }
            } catch (UncheckedIOException notYetUp) {
                // the Master's web UI is not listening yet
            }
            try {
                Thread.sleep(500);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
        throw new IllegalStateException("the " + workers + " Workers did not register within " + START_TIMEOUT + "\n" + logTails());
    }

    private static void stop(Process daemon) {
        List<ProcessHandle> launched = daemon.descendants().toList();
        daemon.destroy();
        try {
            if (!daemon.waitFor(30, TimeUnit.SECONDS)) {
                daemon.destroyForcibly();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            daemon.destroyForcibly();
        }
        launched.forEach(ProcessHandle::destroyForcibly);
    }

    private static int freePort() {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static String tail(Path file, int chars) {
        try {
            String text = Files.readString(file);
            return text.substring(Math.max(0, text.length() - chars));
        } catch (IOException e) {
            return "(cannot read " + file + ": " + e.getMessage() + ")\n";
        }
    }
}

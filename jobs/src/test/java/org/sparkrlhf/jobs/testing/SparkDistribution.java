package org.sparkrlhf.jobs.testing;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A Spark install made of links: {@code SPARK_HOME/jars/} holds the jars of the classpath the build
 * wrote for it (Spark, Delta and their libraries, see jobs/pom.xml), as a cluster's Spark folder
 * would. Spark's launcher gives every driver and executor JVM a Worker starts {@code SPARK_HOME/jars/*},
 * and this project's classes reach them only through the submitted jar. {@code gpu-discovery.sh}
 * reports two GPUs ("0", "1"), for Workers that offer GPUs to executors that ask for them.
 *
 * <p>The build passes the classpath file's path in {@code sparkrlhf.sparkDistributionClasspath} and
 * the Java options Spark needs on Java 17 in {@code sparkrlhf.sparkJavaOptions}.
 */
public record SparkDistribution(Path home, List<String> javaOptions) {
    /**
     * Links the jars under {@code spark-standalone-home/jars} beside the classpath file (in the build
     * folder, which outlives the test's temporary folders) and writes the GPU discovery script.
     */
    public static SparkDistribution create() {
        Path classpathFile = Path.of(requiredProperty("sparkrlhf.sparkDistributionClasspath"));
        String javaOptions = requiredProperty("sparkrlhf.sparkJavaOptions");
        Path home = classpathFile.resolveSibling("spark-standalone-home");
        try {
            Path jars = Files.createDirectories(home.resolve("jars"));
            try (Stream<Path> old = Files.list(jars)) {
                for (Path link : old.toList()) {
                    Files.delete(link); // links of an earlier build may name other versions
                }
            }
            for (String entry : Files.readString(classpathFile).trim().split(File.pathSeparator)) {
                Path jar = Path.of(entry);
                Files.createSymbolicLink(jars.resolve(jar.getFileName()), jar);
            }
            Path script = home.resolve("gpu-discovery.sh");
            Files.writeString(script, "#!/bin/sh\necho '{\"name\":\"gpu\",\"addresses\":[\"0\",\"1\"]}'\n");
            Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot lay out a Spark install under " + home, e);
        }
        return new SparkDistribution(home, List.of(javaOptions.trim().split("\\s+")));
    }

    public Path gpuDiscoveryScript() {
        return home.resolve("gpu-discovery.sh");
    }

    /**
     * A process that runs {@code mainClass} of Spark's jars as Spark's scripts would: Spark's Java
     * options, the environment Spark's launcher reads, everything bound to the loopback address.
     */
    public ProcessBuilder java(String heap, String mainClass, String... args) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.add("-Xmx" + heap);
        command.addAll(javaOptions);
        command.add("-cp");
        command.add(home.resolve("jars") + "/*");
        command.add(mainClass);
        command.addAll(Arrays.asList(args));
        ProcessBuilder builder = new ProcessBuilder(command);
        Map<String, String> env = builder.environment();
        env.putAll(environment());
        return builder;
    }

    /** What Spark's launcher and daemons read: the install, the Scala line, the address to bind. */
    private Map<String, String> environment() {
        Map<String, String> env = new HashMap<>();
        env.put("SPARK_HOME", home.toString());
        env.put("SPARK_SCALA_VERSION", requiredEnv("SPARK_SCALA_VERSION"));
        env.put("SPARK_LOCAL_IP", "127.0.0.1");
        return env;
    }

    private static String requiredProperty(String name) {
        String value = System.getProperty(name);
        if (value == null) {
            throw new IllegalStateException("system property " + name + " is not set (jobs/pom.xml sets it for failsafe)");
        }
        return value;
    }

    private static String requiredEnv(String name) {
        String value = System.getenv(name);
        if (value == null) {
            throw new IllegalStateException("environment variable " + name + " is not set (jobs/pom.xml sets it for failsafe)");
        }
        return value;
    }
}

#!/usr/bin/env bash
# Prints the milliseconds a model function call costs before any work: empty two-rank calls and
# small all-reduce calls through BarrierCallRunner, embedded (local[2]) and on two executor JVMs
# (local-cluster[2,1,1024]); see jobs/src/test/java/org/sparkrlhf/jobs/bench/CallOverheadBenchmark.java.
# Usage, from anywhere in the project:  tools/bench-call-overhead.sh [CALLS [MASTER ...]]
# Builds jobs and the modules it needs (offline, tests compiled but not run); extra Maven options,
# e.g. -Dmaven.repo.local=..., go in BENCH_MVN_OPTS.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
if [ -z "${JAVA_HOME:-}" ] && [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]; then
  export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
cp_file="$top/jobs/target/bench.classpath"
# In the reactor, sibling modules resolve to their target/classes; the last module built (jobs)
# writes the file last, so it holds jobs' test classpath.
mvn -B -o -q ${BENCH_MVN_OPTS:-} -pl jobs -am test-compile dependency:build-classpath \
  -Dmdep.includeScope=test -Dmdep.outputFile="$cp_file" >&2
export SPARK_HOME="$top/jobs/target/spark-home" SPARK_SCALA_VERSION=2.13
mkdir -p "$SPARK_HOME/jars"
exec "$java" -Xmx2g \
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED \
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
  --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
  --add-opens=java.base/sun.nio.cs=ALL-UNNAMED --add-opens=java.base/sun.security.action=ALL-UNNAMED \
  --add-opens=java.base/sun.util.calendar=ALL-UNNAMED -Djdk.reflect.useDirectMethodHandle=false \
  "-Dlog4j2.configurationFile=$top/bin/log4j2.properties" \
  -cp "$top/jobs/target/test-classes:$top/jobs/target/classes:$(cat "$cp_file")" \
  org.sparkrlhf.jobs.bench.CallOverheadBenchmark "$@"

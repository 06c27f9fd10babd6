#!/usr/bin/env bash
# Packs jobs' GPU tests that need no Spark (package org.sparkrlhf.jobs.gpu) for the GPU machine.
# The jobs module's own dependency jars (Spark, Delta, Hadoop: over 300 MB) cannot travel, so this
# packs gpu-exec with its dependencies and adds the classes of planner, datasets and jobs beside it.
# Usage, from the project root, after `mvn -B -o -q -pl jobs -am test-compile`:
#   tools/pack-jobs-gpu-tests.sh [path/to/pack-for-device.sh]
# then on the GPU machine: .device/junit --select-package org.sparkrlhf.jobs.gpu
set -euo pipefail
top=$(git rev-parse --show-toplevel); cd "$top"
pack=${1:-../shared/gpu/pack-for-device.sh}
"$pack" gpu-exec
# What the device tool carries (tree and .device together) must stay under 64 MiB. The OpenBLAS
# natives jar holds three JNI libraries; the CPU engine binds openblas_nolapack only (the GPU tests'
# CPU reference), so the other two (24 MB each) and the C headers stay here.
for j in .device/lib/deps/openblas-*-linux-x86_64.jar; do
  [ -e "$j" ] || continue
  zip -q -d "$j" 'org/bytedeco/openblas/linux-x86_64/libjniopenblas.so' \
    'org/bytedeco/openblas/linux-x86_64/libjniopenblas_full.so' 'org/bytedeco/openblas/linux-x86_64/include/*' >/dev/null || true
done
# The tests read the fixtures from their classpath (gpu-exec's test classes hold a copy).
rm -rf .device/fixtures
extra=""
for m in planner datasets jobs; do
  [ -d "$m/target/classes" ] || { echo "$m/target/classes is missing: build first" >&2; exit 2; }
  mkdir -p ".device/lib/$m"
  cp -r "$m/target/classes" ".device/lib/$m/classes"
  [ -d "$m/target/test-classes" ] && cp -r "$m/target/test-classes" ".device/lib/$m/test-classes"
  extra="$extra:.device/lib/$m/classes:.device/lib/$m/test-classes"
done
echo "$(cat .device/classpath)$extra" > .device/classpath
du -sh .device | sed 's/^/packed: /'

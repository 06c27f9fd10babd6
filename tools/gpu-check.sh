#!/usr/bin/env bash
# The first GPU run, one command on each side.
#
#   tools/gpu-check.sh pack   here, with Maven: builds the test classes of every module and packs
#                             .device/ (a small Java runtime, gpu-exec with its jars, the classes of
#                             planner, datasets and jobs, the fixtures and the peer benchmarks: see
#                             tools/pack-jobs-gpu-tests.sh); copy .device/ with the working tree
#   tools/gpu-check.sh run    on the GPU machine (no Java, no Maven, no network needed), at the
#                             project root: runs, each step bounded in time,
#                               1. gpu-exec's GPU suite (package org.sparkrlhf.gpuexec.cuda)
#                               2. jobs' GPU suite (org.sparkrlhf.jobs.gpu)
#                               3. PyTorch's peer, bench/peer_torch_ppo.py (shared/bench, packed)
#                               4. CudaBenchmark at the 134M shape, with the peer's figures
#                             and prints one summary: tests passed/failed/skipped per suite, our
#                             tokens/s against the peer's for decode, inference and training, ratios.
#                             Each step's full output is in $OUT (the device tool's folder) or
#                             .device/logs. Without a CUDA driver each step says so and the run
#                             exits 0 (a dry run); a failed test or step exits 1.
# Seconds per step: GPU_CHECK_SUITE_S (default 240), GPU_CHECK_PEER_S (180), GPU_CHECK_BENCH_S (150).
set -uo pipefail
cd "$(dirname "$0")/.."

pack() {
  set -e
  nice mvn -B -o -q -pl jobs -am test-compile
  tools/pack-jobs-gpu-tests.sh "$@"
  # The Java runtime is half the pack; xz takes it from 34 to about 16 MB. `run` unpacks it.
  tar -C .device -cf - jre | xz -6 -T2 > .device/jre.tar.xz
  rm -rf .device/jre
  local tree pack
  tree=$(( $(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1) >> 20 ))
  pack=$(du -sm .device | cut -f1)
  echo "gpu-check: .device is ${pack} MiB, the tracked tree ${tree} MiB; on the GPU machine: tools/gpu-check.sh run"
  [ $((pack + tree)) -lt 64 ] || { echo "gpu-check: over the 64 MiB the device tool carries" >&2; exit 1; }
}

# One JUnit console run of a package: "<passed> passed, <failed> failed, <skipped> skipped[ (why)]".
suite() {
  local name=$1 package=$2 log="$logs/$1-tests.log" rc=0
  timeout "${GPU_CHECK_SUITE_S:-240}" .device/junit --select-package "$package" --disable-ansi-colors \
    --details=tree >"$log" 2>&1 || rc=$?
  local found passed failed why
  found=$(count "$log" 'tests found'); passed=$(count "$log" 'tests successful'); failed=$(count "$log" 'tests failed')
  # tests skipped, aborted by an assumption, or never started because their class's set-up skipped
  why=$(grep -m1 -o 'no CUDA driver: [^)]*' "$log" | sed 's/[[:space:]]*$//')
  if [ "$rc" = 124 ]; then
    lines+=("$name tests: ran past ${GPU_CHECK_SUITE_S:-240} s (see $log)"); status=1; return
  fi
  if [ -z "$found" ]; then
    lines+=("$name tests: no JUnit summary (exit $rc; see $log)"); status=1; return
  fi
  # a class whose set-up skips is counted whole: its parameterized tests are never expanded
  local whole=$(( $(count "$log" 'containers aborted') + $(count "$log" 'containers skipped') ))
  local skipped="$((found - passed - failed)) skipped"
  [ "$whole" -gt 0 ] && skipped+=" ($whole classes whole)"
  lines+=("$name tests: $passed passed, $failed failed, $skipped${why:+; $why}")
  [ "$failed" = 0 ] && [ "$rc" = 0 ] || status=1
}

# The number on the JUnit summary's line "[  12 tests found  ]".
count() {
  grep -E "\[ *[0-9]+ $2 *\]" "$1" | tail -1 | grep -oE '[0-9]+' | head -1
}

peer() {
  local log="$logs/peer.txt" reason
  if ! command -v python3 >/dev/null; then
    lines+=("peer (PyTorch): not run: no python3"); return
  fi
  if ! reason=$(python3 -c 'import sys, torch
sys.exit(0 if torch.cuda.is_available() else "no CUDA driver: torch.cuda.is_available() is False")' 2>&1); then
    lines+=("peer (PyTorch): not run: $(echo "$reason" | tail -1)"); return
  fi
  local rc=0
  timeout "${GPU_CHECK_PEER_S:-180}" python3 .device/bench/peer_torch_ppo.py >"$log" 2>"$logs/peer.err" || rc=$?
  if [ "$rc" != 0 ]; then
    lines+=("peer (PyTorch): failed with exit $rc (see $logs/peer.err)"); status=1
  fi
  # the 134M architecture is the peer's "160m"
  local p
  p=$(grep '^160m ' "$log" | python3 -c 'import sys, json
for l in sys.stdin:
    r = json.loads(l[l.index("{"):])
    print("HF generate %.0f new tokens/s, inference %.0f tokens/s, training %.0f tokens/s (MFU %.1f%%)" % (
        r["gen_tok_per_s"], r["infer_tok_per_s"], r["train_tok_per_s"], 100 * r["train_mfu"]))' 2>/dev/null)
  [ -n "$p" ] && lines+=("peer (PyTorch eager, 134M): $p")
}

bench() {
  local log="$logs/benchmark.log" rc=0
  timeout "${GPU_CHECK_BENCH_S:-150}" .device/java -cp "$(cat .device/classpath)" \
    org.sparkrlhf.gpuexec.cuda.bench.CudaBenchmark --models 134m --peer "$logs/peer.txt" >"$log" 2>&1 || rc=$?
  if grep -q '^no CUDA driver' "$log"; then
    lines+=("benchmark: not run: $(grep -m1 '^no CUDA driver' "$log")"); return
  fi
  if [ "$rc" != 0 ]; then
    lines+=("benchmark: failed with exit $rc: $(grep -m1 -E 'Exception|Error' "$log")"); status=1; return
  fi
  # CudaBenchmark's own summary: ours, and "; <peer> <its figure> -> <ratio>x" when the peer ran
  while IFS= read -r l; do lines+=("ours: $l"); done < <(sed -n '/^== summary/,$p' "$log" | grep '^134m ')
}

run() {
  if [ ! -d .device/jre ] && [ -f .device/jre.tar.xz ]; then
    # unpacked for this run only, so that .device stays small enough to carry again
    trap 'rm -rf .device/jre' EXIT
    # xz, else Python's lzma (the GPU machine has python3)
    { command -v xz >/dev/null && xz -dc .device/jre.tar.xz | tar -C .device -xf -; } ||
      python3 -c 'import tarfile; tarfile.open(".device/jre.tar.xz").extractall(".device")' ||
      { echo "gpu-check: cannot unpack .device/jre.tar.xz" >&2; exit 2; }
  fi
  [ -x .device/jre/bin/java ] && [ -f .device/classpath ] || {
    echo "gpu-check: no .device/ here: run tools/gpu-check.sh pack where Maven is, and copy .device/ with the tree" >&2
    exit 2
  }
  logs=${OUT:-.device/logs}
  mkdir -p "$logs"
  lines=()
  status=0
  local device
  device=$(.device/java -cp "$(cat .device/classpath)" org.sparkrlhf.gpuexec.cuda.CudaInfo 2>&1 | tail -1)
  suite gpu-exec org.sparkrlhf.gpuexec.cuda
  suite jobs org.sparkrlhf.jobs.gpu
  peer
  bench
  echo "== gpu-check summary"
  echo "device: $device"
  printf '%s\n' "${lines[@]}"
  echo "logs: $logs"
  exit "$status"
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) run ;;
  *) echo "usage: tools/gpu-check.sh pack [path/to/pack-for-device.sh] | run" >&2; exit 2 ;;
esac

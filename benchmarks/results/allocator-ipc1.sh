#!/usr/bin/env bash
# The runs behind allocator-ipc1.log: benchmarks/speed.py's ipc-1 matching step
# under each allocator, one process per run, with its page faults and CPU
# seconds. Two rounds of glibc / jemalloc / tcmalloc, then glibc with tunables
# once. (The log was written by an earlier, messier form of this script that ran
# the same commands in the same order.) Run from the repository root.
set -euo pipefail
LIB=/usr/lib/x86_64-linux-gnu
TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736

run() {  # run LABEL ENV...: one speed.py run under the given environment
  local label=$1; shift
  echo "== $label"
  env "$@" python - <<'PY'
import resource, sys, time
sys.path.insert(0, "benchmarks")
import speed
t0 = time.time()
speed.main(["--skip-ipc10", "--repeats", "3", "--precisions", "float32", "bf16", "--threads", "2",
            "--out", "/tmp/speed_alloc"])
r = resource.getrusage(resource.RUSAGE_SELF)
print("RUSAGE minflt", r.ru_minflt, "utime", round(r.ru_utime, 1), "stime", round(r.ru_stime, 1),
      "wall", round(time.time() - t0, 1), "maxrss_MB", r.ru_maxrss // 1024)
PY
}

for round in 1 2; do
  run "glibc round $round" LD_PRELOAD=
  run "jemalloc round $round" LD_PRELOAD=$LIB/libjemalloc.so.2
  run "tcmalloc round $round" LD_PRELOAD=$LIB/libtcmalloc_minimal.so.4
done
run "glibc tunables mmap_max=0 trim_threshold=huge" GLIBC_TUNABLES=$TUNABLES

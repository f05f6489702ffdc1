cd /work/main
for round in 1 2; do
for alloc in glibc jemalloc tcmalloc; do
  case $alloc in glibc) PRE="";; jemalloc) PRE=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2;; tcmalloc) PRE=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4;; esac
  echo "== $alloc round $round"
  LD_PRELOAD=$PRE /work/venv/bin/python - <<'PY'
import resource, subprocess, sys, time, json
sys.argv=["speed.py","--skip-ipc10","--repeats","3","--precisions","float32","bf16","--threads","2","--out","/tmp/speed_alloc"]
sys.path.insert(0,"benchmarks")
import speed
t0=time.time(); speed.main(sys.argv[1:])
r=resource.getrusage(resource.RUSAGE_SELF)
d=json.load(open("/tmp/speed_alloc.json"))
m=d.get("matching_step") or d
print("RESULT", json.dumps({k:(v if not isinstance(v,dict) else {kk:vv for kk,vv in v.items() if not kk.endswith("all")}) for k,v in m.items() if not k.endswith("all")})[:600])
print("RUSAGE minflt", r.ru_minflt, "utime", round(r.ru_utime,1), "stime", round(r.ru_stime,1), "wall", round(time.time()-t0,1))
PY
done; done
cd /work/main
while pgrep -f alloc.sh >/dev/null; do sleep 2; done
echo "== glibc tunables mmap_max=0 trim_threshold=huge"
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 /work/venv/bin/python - <<'PY'
import resource, sys, time
sys.path.insert(0,"benchmarks")
import speed
t0=time.time(); speed.main(["--skip-ipc10","--repeats","3","--precisions","float32","bf16","--threads","2","--out","/tmp/speed_alloc"])
r=resource.getrusage(resource.RUSAGE_SELF)
print("RUSAGE minflt", r.ru_minflt, "utime", round(r.ru_utime,1), "stime", round(r.ru_stime,1), "wall", round(time.time()-t0,1), "maxrss_MB", r.ru_maxrss//1024)
PY

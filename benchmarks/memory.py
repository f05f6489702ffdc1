"""Peak memory that ``fit`` adds, as a function of the training-set size.

For each size n (first n images of Fashion-MNIST) and input dtype (uint8 as
shipped, float32), a fresh subprocess loads the data, resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``), runs ``fit`` at ipc 10 with a
short budget (1 iteration of 2 matching steps: the peak of a long run is
reached in its first matching step), and reports the peak RSS above the level
just before ``fit``. The growth per training sample is the slope between two
sizes, to be compared with the size of one sample in float32 (28*28*4 = 3,136
bytes) and in uint8 (784 bytes).

Linux only. Usage::

    python benchmarks/memory.py                 # 20k and 60k, uint8 and float32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import machine_info, write_results  # noqa: E402

CHILD = r"""
import json, sys, numpy as np, torch
sys.path.insert(0, {root!r})
from gradmatch import GradientMatchingCondenser
from gradmatch.datasets import load_fashion_mnist

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
n, dtype = int(sys.argv[1]), sys.argv[2]
(X, y), _ = load_fashion_mnist()
X = np.ascontiguousarray(X[:n].astype(dtype)); y = np.ascontiguousarray(y[:n])
cond = GradientMatchingCondenser(ipc=10, iterations=1, matching_steps=2, schedule="fixed",
                                 network_steps=1, random_state=0, device="cpu")
# Warm up torch's allocator and kernels on a tiny fit so one-off costs are not counted.
GradientMatchingCondenser(ipc=10, iterations=1, matching_steps=2, network_steps=1, schedule="fixed",
                          random_state=0, device="cpu").fit(X[:2000], y[:2000])
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")   # reset VmHWM to the current RSS
cond.fit(X, y)
peak = status("VmHWM")
print(json.dumps({{"n": n, "dtype": dtype, "before": before, "peak": peak, "added": peak - before,
                  "data_bytes": int(X.nbytes)}}))
"""


def measure(n: int, dtype: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), str(n), dtype],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=(20000, 60000))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory"))
    args = parser.parse_args(argv)
    print(f"settings: Fashion-MNIST, ipc 10, 1 iteration x 2 matching steps, ConvNet, CPU; sizes {args.sizes}")
    rows, results = [], []
    for dtype, sample_bytes in (("uint8", 784), ("float32", 3136)):
        small, large = (measure(n, dtype) for n in args.sizes)
        slope = (large["added"] - small["added"]) / (large["n"] - small["n"])
        results.append({"dtype": dtype, "small": small, "large": large, "bytes_per_sample": slope})
        bound = 3136 * (1 if dtype == "uint8" else 2)
        rows.append(f"| {dtype} | {small['added'] / 2**20:.0f} MiB | {large['added'] / 2**20:.0f} MiB | "
                    f"{slope:.0f} B | {sample_bytes} B | {bound} B |")
        print(rows[-1], flush=True)
    small_n, large_n = args.sizes
    table = (f"| input | added at {small_n:,} | added at {large_n:,} | growth per sample | one sample (input dtype) | "
             "allowed |\n|---|---|---|---|---|---|\n") + "\n".join(rows) + "\n"
    print(table)
    # Each measurement runs in a fresh child process; this names the machine they shared.
    write_results(args.out, {"sizes": list(args.sizes), "machine": machine_info(), "rows": results}, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Class-sharded condensation: 2 ranks x 1 thread against 1 rank x 2 threads.

Fashion-MNIST, ipc 1 (one matching step per iteration, so no network steps),
DC's ConvNet, the paper's default settings. Each configuration runs in fresh
processes (``torchrun`` with gloo for 2 ranks) for ``--iterations``
iterations; the first is a warm-up and the time per iteration is the median of
the others. Memory per rank is the peak resident set during ``fit`` above the
level just before it (``/proc/self/status``: VmHWM after resetting it), so the
copy of the dataset every rank loads is not counted; each rank holds its own
classes' real images (a copy of half of them with 2 ranks) on top.

Run it on an otherwise idle machine. Writes ``benchmarks/results/distributed.json``
and ``.md``. Linux only.

Usage::

    python benchmarks/distributed.py                   # 5 iterations per configuration
    python benchmarks/distributed.py --iterations 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def worker(threads: int, iterations: int, out: Path) -> None:
    """One rank: load the data, fit, write this rank's figures."""
    sys.path.insert(0, str(ROOT))
    import torch
    import torch.distributed as dist

    from gradmatch import GradientMatchingCondenser
    from gradmatch.datasets import load_fashion_mnist

    torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    (X, y), _ = load_fashion_mnist()
    seconds = []
    cond = GradientMatchingCondenser(ipc=1, iterations=iterations, random_state=0, device="cpu",
                                     callback=lambda k, rec: seconds.append(rec["seconds"]))
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := current RSS
    start = time.perf_counter()
    cond.fit(X, y)
    total = time.perf_counter() - start
    record = {"rank": rank, "world_size": world, "threads": threads, "iteration_seconds": seconds,
              "fit_seconds": total, "rss_before": before, "peak_added": _status("VmHWM") - before}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    if world > 1:
        dist.barrier()  # leave together: a one-sided teardown races in gloo
        dist.destroy_process_group()


def run_config(ranks: int, threads: int, iterations: int, folder: Path) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    args = [str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
            "--iterations", str(iterations), "--out", str(folder)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if ranks == 1:
        cmd = [sys.executable, *args]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
               "--master-port", str(port), *args]
    subprocess.run(cmd, env=env, check=True)
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(ranks)]


def summarise(records: list[dict]) -> dict:
    # The ranks step together (collectives every matching step): rank 0's clock is the run's.
    per_iter = records[0]["iteration_seconds"][1:]
    return {"ranks": len(records), "threads_per_rank": records[0]["threads"],
            "seconds_per_iteration": statistics.median(per_iter),
            "iteration_seconds": records[0]["iteration_seconds"],
            "peak_added_mib_per_rank": [r["peak_added"] / 2**20 for r in records]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.threads, args.iterations, args.out)
        return 0
    import tempfile

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import machine_info, write_results

    machine = {**machine_info(), "load_average_start": list(os.getloadavg())}
    print(f"class-sharded condensation, Fashion-MNIST ipc 1, {args.iterations} iterations per "
          f"configuration (first = warm-up); machine {machine}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranks, threads in ((1, 2), (2, 1)):
            res = summarise(run_config(ranks, threads, args.iterations, Path(tmp) / f"{ranks}x{threads}"))
            rows.append(res)
            print(f"  {ranks} rank(s) x {threads} thread(s): {res['seconds_per_iteration']:.2f} s per "
                  f"iteration; peak added per rank {[round(m) for m in res['peak_added_mib_per_rank']]} MiB",
                  flush=True)
    machine["load_average_end"] = list(os.getloadavg())
    base = rows[0]["seconds_per_iteration"]
    for r in rows:
        r["time_ratio_to_1_rank"] = r["seconds_per_iteration"] / base
    lines = ["# Class-sharded condensation on this machine", "",
             f"`python benchmarks/distributed.py --iterations {args.iterations}`: Fashion-MNIST, ipc 1, "
             "DC's ConvNet, default settings; median seconds per iteration after one warm-up; peak "
             "memory added by `fit` per rank. Machine: "
             f"{machine['cpu']}, {machine['platform']}, {machine['cpu_count']} CPUs, torch {machine['torch']}.", "",
             "| ranks x threads | seconds per iteration | ratio to 1 x 2 | peak added per rank (MiB) |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['ranks']} x {r['threads_per_rank']} | {r['seconds_per_iteration']:.2f} | "
                     f"{r['time_ratio_to_1_rank']:.2f} | "
                     f"{', '.join(f'{m:.0f}' for m in r['peak_added_mib_per_rank'])} |")
    print("\n".join(lines))
    write_results(RESULTS / "distributed", {"machine": machine, "iterations": args.iterations, "rows": rows},
                  "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

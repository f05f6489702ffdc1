"""What a user calling ``fit`` with no options gets, against the floor, in one run.

Two measurements, each variant in a fresh process (its own heap and thread
pool), the variants taking turns for ``--rounds`` rounds so that they see the
same machine conditions:

**Fit against the floor** (Fashion-MNIST, or random images of its shape where
its files are missing): seconds per ipc-1 iteration of
``GradientMatchingCondenser(ipc=1).fit(X, y)`` with its defaults, and with
``keep_freed_memory=False`` (the default before it became one), beside the
floor measured in a default process in the same round (10 classes x one plain
forward and backward pass over 256 real images, as ``benchmarks/speed.py``
times it, on the fit's own images; on ``speed.py``'s random images of the
same shape too, for reference). At ipc 1 an iteration is one matching step
and no network step.

**Threads on a shared CPU**: seconds per ipc-1 iteration on digits and on
Fashion-MNIST with ``n_threads`` 1 and the machine's core count, alone and beside a
second busy process (``--neighbours``: a single-threaded Python loop that never
sleeps, and a torch job with a thread per core, as another fit would be), with
OpenMP's default wait policy and with ``OMP_WAIT_POLICY=PASSIVE``.

Results go to ``--out`` (JSON and a markdown table); every figure names its host.

Usage::

    python benchmarks/default_fit.py               # ~35 min on 2 cores
    python benchmarks/default_fit.py --part fit    # the first measurement only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULT = "RESULT "
FIT_VARIANTS = ("floor", "fit-before", "fit-default")
PER_CLASS_FLOOR = 600


# ---------------------------------------------------------------- child side
def load_data(dataset: str):
    """``(X, y, source)``: digits, or Fashion-MNIST's training set (random images of its shape when missing)."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X.reshape(-1, 8, 8).astype("float32"), y, "scikit-learn digits (1797 images, 8x8)"
    from speed import dm_data

    return dm_data(0, None, False)


def child_floor(repeats: int) -> dict:
    """The floor on the fit's own images (its first ``PER_CLASS_FLOOR`` per class), and on
    ``benchmarks/speed.py``'s random images of the same shape."""
    import numpy as np
    import torch
    from speed import N_CLASSES, fashion_shaped_pools, time_matching_step

    from gradmatch.data import ClassPools, Normalization

    X, y, source = load_data("fashion-mnist")
    keep = np.concatenate([np.flatnonzero(y == c)[:PER_CLASS_FLOOR] for c in range(N_CLASSES)])
    images = torch.as_tensor(np.asarray(X)[keep]).unsqueeze(1)
    pixels = images.float()
    norm = Normalization((float(pixels.mean()),), (float(pixels.std()),))
    pools = ClassPools(images, torch.as_tensor(y[keep]), N_CLASSES, norm, torch.device("cpu"))
    real = time_matching_step(pools, repeats, batch_real=256)
    noise = time_matching_step(fashion_shaped_pools(PER_CLASS_FLOOR, torch.device("cpu")), repeats, batch_real=256)
    return {"seconds": real["floor_s"], "all": real["floor_all"], "engine_step_s": real["step_s"], "data": source,
            "random_images": {"seconds": noise["floor_s"], "all": noise["floor_all"],
                              "engine_step_s": noise["step_s"]}}


def child_fit(dataset: str, iterations: int, warmup: int, params: dict) -> dict:
    from gradmatch import GradientMatchingCondenser

    X, y, source = load_data(dataset)
    condenser = GradientMatchingCondenser(ipc=1, iterations=warmup + iterations, random_state=0, verbose=0,
                                          **params)
    t0 = time.perf_counter()
    condenser.fit(X, y)
    wall = time.perf_counter() - t0
    seconds = list(condenser.history_["seconds"][warmup:])
    return {"seconds": statistics.median(seconds), "all": seconds, "fit_wall_s": wall, "data": source}


def child_main(spec: dict) -> None:
    from _common import machine_info

    if spec["kind"] == "floor":
        result = child_floor(spec["iterations"])
    else:
        result = child_fit(spec["dataset"], spec["iterations"], spec["warmup"], spec["params"])
    result["machine"] = machine_info()
    print(RESULT + json.dumps(result), flush=True)


# --------------------------------------------------------------- parent side
#: The second process beside a fit: a single-threaded loop that never sleeps, or a
#: torch job with as many OpenMP threads as cores (another fit, a training run).
NEIGHBOURS = {
    "spin": "while True: pass",
    "torch": ("import os, torch\ntorch.set_num_threads(len(os.sched_getaffinity(0)))\n"
              "x, w = torch.randn(32, 32, 28, 28), torch.randn(64, 32, 3, 3)\n"
              "while True: torch.nn.functional.conv2d(x, w, padding=1)"),
}


def run_child(spec: dict, env_extra: dict | None = None, busy: str | None = None) -> dict:
    """Run one variant in a fresh process (beside a ``NEIGHBOURS[busy]`` process) and return its result."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env = {**base, **(env_extra or {})}
    # The neighbour is someone else's job: OpenMP's defaults, whatever the fit's policy.
    spinner = subprocess.Popen([sys.executable, "-c", NEIGHBOURS[busy]], env=base) if busy else None
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=3600)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"variant {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


def fit_variant_spec(name: str, args) -> dict:
    if name == "floor":
        return {"kind": "floor", "iterations": args.iterations}
    params = {"keep_freed_memory": False} if name == "fit-before" else {}
    return {"kind": "fit", "dataset": "fashion-mnist", "iterations": args.iterations, "warmup": args.warmup,
            "params": params}


def measure_fit(args) -> dict:
    rounds = []
    for r in range(args.rounds):
        row = {}
        for name in FIT_VARIANTS:
            row[name] = run_child(fit_variant_spec(name, args))
            print(f"  round {r + 1} {name:12s} {row[name]['seconds']:.2f} s", flush=True)
        rounds.append(row)
    summary = {}
    for name in FIT_VARIANTS:
        per_round = [row[name]["seconds"] for row in rounds]
        ratios = [row[name]["seconds"] / row["floor"]["seconds"] for row in rounds]
        summary[name] = {"seconds": statistics.median(per_round), "ratio_to_floor": statistics.median(ratios),
                         "per_round": per_round, "ratios": ratios}
    return {"rounds": rounds, "summary": summary}


def thread_cases(cores: int, neighbours) -> list[dict]:
    cases = []
    for dataset in ("digits", "fashion-mnist"):
        for busy in (None, *neighbours):
            for threads in sorted({1, cores}):
                for policy in (None, "PASSIVE"):
                    cases.append({"dataset": dataset, "busy": busy, "threads": threads, "policy": policy})
    return cases


def case_name(case: dict) -> str:
    policy = case["policy"] or "default"
    return f"{case['dataset']} {case['busy'] or 'alone'} {case['threads']} thread(s) {policy} wait"


def measure_threads(args) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cases = thread_cases(cores, args.neighbours)
    results = {case_name(c): {**c, "per_round": []} for c in cases}
    for r in range(args.rounds):
        for case in cases:
            spec = {"kind": "fit", "dataset": case["dataset"], "iterations": args.iterations,
                    "warmup": args.warmup, "params": {"n_threads": case["threads"]}}
            env = {"OMP_WAIT_POLICY": case["policy"]} if case["policy"] else {}
            out = run_child(spec, env, busy=case["busy"])
            results[case_name(case)]["per_round"].append(out["seconds"])
            print(f"  round {r + 1} {case_name(case):48s} {out['seconds']:.2f} s", flush=True)
    for entry in results.values():
        entry["seconds"] = statistics.median(entry["per_round"])
    return {"cores": cores, "cases": results}


def fit_markdown(fit: dict) -> list[str]:
    s = fit["summary"]
    noise = statistics.median(row["floor"]["random_images"]["seconds"] for row in fit["rounds"])
    return ["| variant | seconds per ipc-1 iteration | ratio to the floor |", "|---|---|---|",
            f"| floor: 10 x fwd+bwd of 256 real images, default process | {s['floor']['seconds']:.2f} | 1.00 |",
            f"| the same floor on random images of that shape (speed.py's) | {noise:.2f} | "
            f"{noise / s['floor']['seconds']:.2f} |",
            f"| `fit`, `keep_freed_memory=False` (before) | {s['fit-before']['seconds']:.2f} | "
            f"{s['fit-before']['ratio_to_floor']:.2f} |",
            f"| `fit` with its defaults (now) | {s['fit-default']['seconds']:.2f} | "
            f"{s['fit-default']['ratio_to_floor']:.2f} |", ""]


def threads_markdown(threads: dict) -> list[str]:
    cases = threads["cases"]
    lines = ["| data | machine | threads | wait policy | s per iteration | ratio to 1 thread alone |",
             "|---|---|---|---|---|---|"]
    for entry in cases.values():
        base = cases[case_name({**entry, "busy": None, "threads": 1, "policy": None})]["seconds"]
        beside = {None: "alone", "spin": "beside a busy 1-thread loop",
                  "torch": "beside a torch job with a thread per core"}[entry["busy"]]
        lines.append(f"| {entry['dataset']} | {beside} | "
                     f"{entry['threads']} | {entry['policy'] or 'default'} | {entry['seconds']:.2f} | "
                     f"{entry['seconds'] / base:.2f} |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["fit", "threads", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every variant, interleaved")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per fit (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first iterations of every fit")
    parser.add_argument("--neighbours", nargs="*", choices=sorted(NEIGHBOURS), default=sorted(NEIGHBOURS),
                        help="second processes to measure beside (default: both)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "default_fit"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    from _common import describe, machine_info, write_results

    machine = machine_info()
    print(f"host: {describe(machine)}; malloc of this process: {machine['malloc']}", flush=True)
    print(f"settings: {args.rounds} round(s), {args.warmup} warm-up + {args.iterations} timed iterations "
          "per fit, a fresh process per variant", flush=True)
    record = {"machine": machine, "settings": vars(args)}
    lines = [f"Host: {describe(machine)}, glibc {machine['glibc']}. Command: `python benchmarks/default_fit.py "
             f"--part {args.part} --rounds {args.rounds} --iterations {args.iterations}`; medians over rounds "
             f"of the median of {args.iterations} iterations after {args.warmup} warm-up, each variant in a "
             "fresh process, variants interleaved.", ""]
    if args.part in ("fit", "both"):
        record["fit"] = measure_fit(args)
        lines += fit_markdown(record["fit"])
    if args.part in ("threads", "both"):
        record["threads"] = measure_threads(args)
        lines += threads_markdown(record["threads"])
    text = "\n".join(lines)
    print(text)
    write_results(args.out if args.part == "both" else f"{args.out}-{args.part}", record, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

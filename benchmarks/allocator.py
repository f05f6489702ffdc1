"""The memory allocator's share of a condensation step, side by side in one run.

Each variant runs in a fresh process (its own heap, page-fault count and peak
memory), and the variants take turns for ``--rounds`` rounds so that they see
the same machine conditions:

``default``      glibc as the process starts (large blocks mmap'd and unmapped)
``keep-freed``   the same process start, the work inside ``gradmatch.keep_freed_memory()``
``tunables``     glibc with ``GLIBC_TUNABLES`` = ``gradmatch.memory.GLIBC_TUNABLES_KEEP`` from the start
``tcmalloc``     ``LD_PRELOAD`` of tcmalloc-minimal, where installed
                 (``apt-get install -y libtcmalloc-minimal4``)

Every variant times, as ``benchmarks/speed.py`` does, the ipc-1 matching step
in float32 and bf16 beside the float32 floor (median of ``--repeats``), and with
``--ipc10`` one ipc-10 iteration with the fixed schedule in float32. Ratios are
to the ``default`` variant's float32 step of the same round. Results go to
``--out`` as JSON and a markdown table.

Usage::

    python benchmarks/allocator.py                        # ~10 min on 2 cores
    python benchmarks/allocator.py --ipc10 --rounds 1     # adds ~3 min per variant
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_results

from gradmatch.memory import GLIBC_TUNABLES_KEEP, glibc_available, keep_freed_memory
from gradmatch.runtime import cpu_has_bf16

VARIANTS = ("default", "keep-freed", "tunables", "tcmalloc")
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")


def find_tcmalloc() -> str | None:
    """Path of tcmalloc(-minimal) where installed (Debian: libtcmalloc-minimal4), else None."""
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib"):
        for name in TCMALLOC_NAMES:
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
    return ctypes.util.find_library("tcmalloc_minimal")


def variant_env(variant: str) -> dict | None:
    """The environment of a variant's process, or None where it cannot run here."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    if variant in ("default", "keep-freed"):
        return env if (variant == "default" or glibc_available()) else None
    if variant == "tunables":
        return {**env, "GLIBC_TUNABLES": GLIBC_TUNABLES_KEEP} if glibc_available() else None
    if variant == "tcmalloc":
        lib = find_tcmalloc()
        return {**env, "LD_PRELOAD": lib} if lib else None
    raise ValueError(f"unknown variant {variant!r}: valid variants are {', '.join(VARIANTS)}")


# ------------------------------------------------------------- one process
def worker(variant: str, repeats: int, ipc10: bool, threads: int, per_class: int, batch_real: int) -> dict:
    import speed

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    block = keep_freed_memory() if variant == "keep-freed" else contextlib.nullcontext(None)
    with block as active:
        pools = speed.fashion_shaped_pools(per_class, torch.device("cpu"))
        # bf16 only where the hardware does it: emulated bf16 would time something no one runs.
        precisions = ("float32", "bf16") if cpu_has_bf16() else ("float32",)
        step = speed.time_matching_step(pools, repeats, batch_real, precisions)
        out = {"floor_s": step["floor_s"], "floor_all": step["floor_all"]}
        for p in ("float32", "bf16"):
            out[f"{p}_step_s"] = step[p]["step_s"] if p in step else None
            out[f"{p}_all"] = step[p]["step_all"] if p in step else None
        if ipc10:
            out["ipc10_fixed_float32_s"] = speed.time_iteration(pools, 10, "fixed")["seconds"]
    after = resource.getrusage(resource.RUSAGE_SELF)
    out.update(keep_freed_active=active, wall_s=time.perf_counter() - t0,
               minor_faults=after.ru_minflt - before.ru_minflt,
               system_cpu_s=after.ru_stime - before.ru_stime, user_cpu_s=after.ru_utime - before.ru_utime,
               peak_rss_mib=after.ru_maxrss / 1024)  # Linux reports KiB
    return out


def run_variant(variant: str, env: dict, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--per-class", str(args.per_class),
           "--batch-real", str(args.batch_real)] + (["--ipc10"] if args.ipc10 else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"variant {variant} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------- the comparison
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["default", "keep-freed", "tunables", "tcmalloc"],
                        choices=VARIANTS, help="allocator variants ('default' is always run: it is the reference)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all variants, interleaved")
    parser.add_argument("--repeats", type=int, default=3, help="timed matching steps per variant (median)")
    parser.add_argument("--ipc10", action="store_true", help="also time one ipc-10 fixed-schedule iteration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--batch-real", type=int, default=256,
                        help="real images per class per step (the paper's 256; smaller only to test this script)")
    parser.add_argument("--out", default="benchmarks/results/allocator")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats, args.ipc10, args.threads, args.per_class,
                                args.batch_real)))
        return 0

    variants = list(dict.fromkeys(["default"] + args.variants))
    envs = {v: variant_env(v) for v in variants}
    skipped = [v for v in variants if envs[v] is None]
    variants = [v for v in variants if envs[v] is not None]
    settings = {"variants": variants, "skipped": skipped, "rounds": args.rounds, "repeats": args.repeats,
                "ipc10": args.ipc10, "threads": args.threads, "classes": 10, "input": [1, 28, 28],
                "batch_real": args.batch_real, "model": "ConvNet (DC)", "match": "multilevel", "distance": "cos+l2",
                "tcmalloc": find_tcmalloc(), "tunables": GLIBC_TUNABLES_KEEP,
                "bf16_hardware": cpu_has_bf16()}
    machine = machine_info()
    # Each variant sets its own allocator in its own process: the parent's says nothing.
    del machine["malloc"]
    print("settings:", json.dumps(settings))
    print("machine: ", json.dumps(machine), flush=True)
    if skipped:
        print(f"skipped (not available here): {', '.join(skipped)}", flush=True)

    runs = []
    for r in range(args.rounds):
        for v in variants:
            res = run_variant(v, envs[v], args)
            res.update(variant=v, round=r + 1)
            runs.append(res)
            bf16 = "n/a" if res["bf16_step_s"] is None else f"{res['bf16_step_s']:.2f} s"
            print(f"round {r + 1} {v}: float32 step {res['float32_step_s']:.2f} s, bf16 {bf16}, "
                  f"floor {res['floor_s']:.2f} s, {res['minor_faults'] / 1e6:.2f} M faults, "
                  f"peak {res['peak_rss_mib']:.0f} MiB"
                  + (f", ipc-10 iteration {res['ipc10_fixed_float32_s']:.1f} s" if args.ipc10 else ""), flush=True)

    summary = {}
    for v in variants:
        mine = [x for x in runs if x["variant"] == v]
        ref = {x["round"]: x for x in runs if x["variant"] == "default"}
        row = {"rounds": len(mine)}
        for key in ("floor_s", "float32_step_s", "bf16_step_s", "ipc10_fixed_float32_s", "minor_faults",
                    "system_cpu_s", "peak_rss_mib"):
            if mine[0].get(key) is not None:
                row[key] = statistics.median(x[key] for x in mine)
        # Ratios to the default float32 step of the same round, then the median.
        for key in ("float32_step_s", "bf16_step_s"):
            if mine[0].get(key) is not None:
                row[key[: -len("_s")] + "_ratio"] = statistics.median(
                    x[key] / ref[x["round"]]["float32_step_s"] for x in mine)
        if args.ipc10:
            row["ipc10_ratio"] = statistics.median(
                x["ipc10_fixed_float32_s"] / ref[x["round"]]["ipc10_fixed_float32_s"] for x in mine)
        summary[v] = row

    head = ("| allocator | float32 floor s | float32 step s | ratio | bf16 step s | ratio |"
            + (" ipc-10 iteration s | ratio |" if args.ipc10 else "") + " minor faults | system CPU s | peak RSS MiB |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for v, s in summary.items():
        bf16 = [f"{s['bf16_step_s']:.2f}", f"{s['bf16_step_ratio']:.2f}"] if "bf16_step_s" in s else ["-", "-"]
        cells = [v, f"{s['floor_s']:.2f}", f"{s['float32_step_s']:.2f}", f"{s['float32_step_ratio']:.2f}", *bf16]
        if args.ipc10:
            cells += [f"{s['ipc10_fixed_float32_s']:.1f}", f"{s['ipc10_ratio']:.2f}"]
        cells += [f"{s['minor_faults'] / 1e6:.2f} M", f"{s['system_cpu_s']:.1f}", f"{s['peak_rss_mib']:.0f}"]
        rows.append("| " + " | ".join(cells) + " |")
    header = (f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, {args.threads} torch threads, "
              f"torch {machine['torch']}, glibc {machine['glibc']}. {args.rounds} round(s) of every variant, "
              f"interleaved, one fresh process each; medians over rounds of the median of {args.repeats} "
              f"ipc-1 matching steps (Fashion-MNIST-shaped, 10 classes x {args.batch_real} real images, ConvNet)"
              + ("; one ipc-10 fixed-schedule float32 iteration per process" if args.ipc10 else "")
              + ". Ratios: to the default allocator's float32 step (or iteration) of the same round. "
              "Faults, system CPU and peak memory are the whole process's, warm-up included."
              + (f" Not available here: {', '.join(skipped)}." if skipped else "")
              + ("" if settings["bf16_hardware"] else " This CPU has no bf16 hardware: no bf16 column.")
              + "\n\n")
    print("\n".join(rows))
    write_results(args.out, {"settings": settings, "machine": machine, "runs": runs, "summary": summary},
                  header + "\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

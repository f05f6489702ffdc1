"""Speed of the condensation loop against its floor (docs/design.md section 5).

Measures, on Fashion-MNIST-shaped data (C = 10 classes of 28x28 grey images,
DC's ConvNet, batch_real = 256):

1. ``matching step (ipc 1)``: seconds per matching step of the engine at ipc 1,
   median of ``--repeats`` steps, and its ratio to the *floor*: C plain
   forward+backward passes of the same network on the same real batches (one
   per class, exactly as the engine batches them), timed in the same run,
   median of ``--repeats``.
2. ``iteration (ipc 10)``: seconds of one full outer iteration at ipc 10 with
   ``schedule="fixed"`` (DC: T = 10, zeta = 50) and ``schedule="adaptive"``
   (paper eq. 12), and their ratio.

Each is measured for every ``--precisions`` value (``float32``, ``bf16``: the
real-gradient pass in bfloat16; ``+compile``: that pass through
torch.compile, compiled in the warm-up), side by side in one run, as a ratio
to the float32 floor and to float32. ``--profile`` adds the operators that take the
time of a matching step in each precision (torch.profiler, self CPU time).

The data are random (seeded): the cost of a step does not depend on pixel
values. Results go to ``--out`` as JSON and a markdown table.

Usage::

    python benchmarks/speed.py                       # everything (~10 min on 2 cores)
    python benchmarks/speed.py --skip-ipc10          # the matching-step ratio only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import describe, machine_info, write_results

from gradmatch.data import ClassPools, Normalization
from gradmatch.distances import make_distance
from gradmatch.engine import CondensationLoop, LoopSettings, class_gradients
from gradmatch.networks import ConvNet
from gradmatch.schedules import default_loops, make_schedule

N_CLASSES = 10
SHAPE = (1, 28, 28)


def fashion_shaped_pools(per_class: int, device: torch.device) -> ClassPools:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N_CLASSES * per_class,) + SHAPE, dtype=torch.uint8, generator=gen)
    labels = torch.arange(N_CLASSES).repeat_interleave(per_class)
    return ClassPools(images, labels, N_CLASSES, Normalization((72.9,), (90.0,)), device)


def make_loop(pools: ClassPools, ipc: int, schedule: str, seed: int = 0,
              precision: str = "float32") -> CondensationLoop:
    steps, zeta = default_loops(ipc)
    settings = LoopSettings(
        iterations=1,
        matching_steps=steps,
        schedule=make_schedule(schedule, zeta),
        distance=make_distance("cos+l2"),
        match="multilevel",
        lam=float(N_CLASSES),
        class_weights=[1.0 / N_CLASSES] * N_CLASSES,
        precision=precision.split("+")[0],
        compile=precision.endswith("+compile"),
    )
    gen = torch.Generator(device=pools.device).manual_seed(seed)
    syn = torch.randn((ipc * N_CLASSES,) + SHAPE, generator=gen, device=pools.device)
    return CondensationLoop(pools, syn, [ipc] * N_CLASSES, lambda: ConvNet(SHAPE, N_CLASSES),
                            settings, gen)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_matching_step(pools: ClassPools, repeats: int, batch_real: int,
                       precisions: tuple[str, ...] = ("float32",)) -> dict:
    loops = {p: make_loop(pools, 1, "fixed", precision=p) for p in precisions}
    loop = loops[precisions[0]]
    net = loop.fresh_network()
    params = [p for p in net.parameters() if p.requires_grad]
    device = pools.device

    # The floor: the same per-class real batches, plain forward+backward.
    gen = torch.Generator(device=device).manual_seed(1)
    batches = [pools.sample(c, batch_real, gen) for c in range(N_CLASSES)]

    def floor_pass():
        for xr, yr in batches:
            class_gradients(net, params, xr, yr, create_graph=False)

    floor, steps = [], {p: [] for p in precisions}
    floor_pass()  # warm-up
    for p in precisions:
        loops[p].matching_step(net, params)
    for _ in range(repeats):
        # Interleave so all see the same machine conditions.
        sync(device)
        t0 = time.perf_counter()
        floor_pass()
        sync(device)
        floor.append(time.perf_counter() - t0)
        for p in precisions:
            t0 = time.perf_counter()
            loops[p].matching_step(net, params)
            sync(device)
            steps[p].append(time.perf_counter() - t0)
    f = statistics.median(floor)
    out = {"floor_s": f, "floor_all": floor}
    for p in precisions:
        s = statistics.median(steps[p])
        out[p] = {"step_s": s, "ratio": s / f, "step_all": steps[p]}
    # float32 keeps its old top-level keys
    if "float32" in out:
        out.update(step_s=out["float32"]["step_s"], ratio=out["float32"]["ratio"],
                   step_all=out["float32"]["step_all"])
    return out


def profile_step(pools: ClassPools, precision: str, rows: int = 10) -> list[dict]:
    """Self CPU time of the operators of two matching steps (ipc 1) in ``precision``."""
    from torch.profiler import ProfilerActivity, profile

    loop = make_loop(pools, 1, "fixed", precision=precision)
    net = loop.fresh_network()
    params = [p for p in net.parameters() if p.requires_grad]
    loop.matching_step(net, params)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            loop.matching_step(net, params)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3 / 2, "share": e.self_cpu_time_total / total}
            for e in events[:rows]]


def time_iteration(pools: ClassPools, ipc: int, schedule: str, precision: str = "float32") -> dict:
    loop = make_loop(pools, ipc, schedule, precision=precision)
    if loop.settings.compile:
        # Compile outside the timing (once per run in real use).
        net = loop.fresh_network()
        loop.matching_step(net, [p for p in net.parameters() if p.requires_grad])
    t0 = time.perf_counter()
    record = loop.run_iteration()
    sync(pools.device)
    return {"seconds": time.perf_counter() - t0, "network_steps": record["network_steps"],
            "matching_steps": loop.settings.matching_steps}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed matching steps (median)")
    parser.add_argument("--per-class", type=int, default=600, help="real images per class")
    parser.add_argument("--skip-ipc10", action="store_true", help="skip the ipc-10 iterations")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bf16"],
                        choices=["float32", "bf16", "float32+compile", "bf16+compile"],
                        help="variants to time side by side (default: float32 bf16); '+compile' runs the "
                             "real-gradient pass through torch.compile (compiled during the warm-up)")
    parser.add_argument("--profile", action="store_true", help="profile one matching step per precision")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/speed", help="output path without extension")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    machine = machine_info(str(device))
    settings = {"classes": N_CLASSES, "input": list(SHAPE), "model": "ConvNet (DC)", "batch_real": 256,
                "distance": "cos+l2", "match": "multilevel", "repeats": args.repeats}
    print("settings:", json.dumps(settings))
    print("machine: ", json.dumps(machine))
    pools = fashion_shaped_pools(args.per_class, device)
    results = {"settings": settings, "machine": machine}

    precisions = tuple(dict.fromkeys(["float32"] + list(args.precisions)))  # float32 is the reference
    from gradmatch.runtime import resolve_precision

    # A precision this machine would silently run in float32 is left out, and
    # said so, rather than timed under a wrong name.
    skipped = {}
    for p in precisions:
        _, warning = resolve_precision(p.split("+")[0], device)
        if warning:
            skipped[p] = warning
    for p, warning in skipped.items():
        print(f"skipped {p}: {warning}", flush=True)
    precisions = tuple(p for p in precisions if p not in skipped)
    settings["precisions"] = list(precisions)
    settings["skipped"] = skipped
    step = time_matching_step(pools, args.repeats, 256, precisions)
    results["matching_step_ipc1"] = step
    for p in precisions:
        print(f"ipc 1 matching step, {p}: {step[p]['step_s']:.3f} s, float32 floor {step['floor_s']:.3f} s, "
              f"ratio {step[p]['ratio']:.3f}", flush=True)

    if args.profile:
        results["profile_ipc1"] = {p: profile_step(pools, p) for p in precisions}

    if not args.skip_ipc10:
        for p in precisions:
            for schedule in ("fixed", "adaptive"):
                res = time_iteration(pools, 10, schedule, precision=p)
                key = f"iteration_ipc10_{schedule}" + ("" if p == "float32" else f"_{p}")
                results[key] = res
                print(f"ipc 10 iteration, {schedule}, {p}: {res['seconds']:.1f} s "
                      f"({res['network_steps']} network steps)", flush=True)
        fixed = results["iteration_ipc10_fixed"]["seconds"]
        adaptive = results["iteration_ipc10_adaptive"]["seconds"]
        results["adaptive_over_fixed"] = adaptive / fixed
        print(f"adaptive / fixed: {adaptive / fixed:.3f} ({100 * (1 - adaptive / fixed):.0f}% less time)")

    floor_s = step["floor_s"]
    rows = [
        "| measurement | precision | seconds | ratio to the float32 floor | ratio to float32 |",
        "|---|---|---|---|---|",
        f"| floor: 10 x fwd+bwd, 256 real images each | float32 | {floor_s:.3f} | 1.00 | |",
    ]
    for p in precisions:
        s = step[p]["step_s"]
        rows.append(f"| matching step = iteration, ipc 1 | {p} | {s:.3f} | {s / floor_s:.2f} | "
                    f"{s / step['float32']['step_s']:.2f} |")
    if not args.skip_ipc10:
        for schedule, label in (("fixed", "fixed (T=10, zeta=50)"), ("adaptive", "adaptive (eq. 12)")):
            base = results[f"iteration_ipc10_{schedule}"]["seconds"]
            for p in precisions:
                s = results[f"iteration_ipc10_{schedule}" + ("" if p == "float32" else f"_{p}")]["seconds"]
                rows.append(f"| iteration, ipc 10, {label} | {p} | {s:.1f} | {s / floor_s:.1f} | {s / base:.2f} |")
        rows.append(f"\nadaptive / fixed (float32): {adaptive / fixed:.2f}")
    if args.profile:
        for p in precisions:
            rows += ["", f"Where a matching step's time goes, {p} (self CPU time per step):", "",
                     "| operator | ms | share |", "|---|---|---|"]
            rows += [f"| `{r['op']}` | {r['self_ms']:.0f} | {100 * r['share']:.0f}% |"
                     for r in results["profile_ipc1"][p]]
    header = (f"Machine: {describe(machine)}. "
              f"Median of {args.repeats} matching steps; one iteration per schedule."
              + (f" Not run here: {', '.join(skipped)} (no hardware support)." if skipped else "") + "\n\n")
    print("\n".join(rows))
    write_results(args.out, results, header + "\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

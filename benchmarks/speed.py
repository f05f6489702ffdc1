"""Speed of the condensation loop against its floor (DESIGN.md section 5).

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

The data are random (seeded): the cost of a step does not depend on pixel
values. Results go to ``--out`` as JSON and a markdown table.

Usage::

    python benchmarks/speed.py                       # everything (~10 min on 2 cores)
    python benchmarks/speed.py --skip-ipc10          # the matching-step ratio only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradmatch.data import ClassPools, Normalization  # noqa: E402
from gradmatch.distances import make_distance  # noqa: E402
from gradmatch.engine import CondensationLoop, LoopSettings, class_gradients  # noqa: E402
from gradmatch.networks import ConvNet  # noqa: E402
from gradmatch.schedules import default_loops, make_schedule  # noqa: E402

N_CLASSES = 10
SHAPE = (1, 28, 28)


def fashion_shaped_pools(per_class: int, device: torch.device) -> ClassPools:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N_CLASSES * per_class,) + SHAPE, dtype=torch.uint8, generator=gen)
    labels = torch.arange(N_CLASSES).repeat_interleave(per_class)
    return ClassPools(images, labels, N_CLASSES, Normalization((72.9,), (90.0,)), device)


def make_loop(pools: ClassPools, ipc: int, schedule: str, seed: int = 0) -> CondensationLoop:
    steps, zeta = default_loops(ipc)
    settings = LoopSettings(
        iterations=1,
        matching_steps=steps,
        schedule=make_schedule(schedule, zeta),
        distance=make_distance("cos+l2"),
        match="multilevel",
        lam=float(N_CLASSES),
        class_weights=[1.0 / N_CLASSES] * N_CLASSES,
    )
    gen = torch.Generator(device=pools.device).manual_seed(seed)
    syn = torch.randn((ipc * N_CLASSES,) + SHAPE, generator=gen, device=pools.device)
    return CondensationLoop(pools, syn, [ipc] * N_CLASSES, lambda: ConvNet(SHAPE, N_CLASSES),
                            settings, gen)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_matching_step(pools: ClassPools, repeats: int, batch_real: int) -> dict:
    loop = make_loop(pools, 1, "fixed")
    net = loop._fresh_network()
    params = [p for p in net.parameters() if p.requires_grad]
    device = pools.device

    # The floor: the same per-class real batches, plain forward+backward.
    gen = torch.Generator(device=device).manual_seed(1)
    batches = [pools.sample(c, batch_real, gen) for c in range(N_CLASSES)]

    def floor_pass():
        for xr, yr in batches:
            class_gradients(net, params, xr, yr, create_graph=False)

    def engine_step():
        loop.matching_step(net, params)

    floor, step = [], []
    floor_pass(), engine_step()  # warm-up
    for _ in range(repeats):
        # Interleave so both see the same machine conditions.
        sync(device)
        t0 = time.perf_counter()
        floor_pass()
        sync(device)
        floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        engine_step()
        sync(device)
        step.append(time.perf_counter() - t0)
    f, s = statistics.median(floor), statistics.median(step)
    return {"floor_s": f, "step_s": s, "ratio": s / f, "floor_all": floor, "step_all": step}


def time_iteration(pools: ClassPools, ipc: int, schedule: str) -> dict:
    loop = make_loop(pools, ipc, schedule)
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
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/speed", help="output path without extension")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
    }
    settings = {"classes": N_CLASSES, "input": list(SHAPE), "model": "ConvNet (DC)", "batch_real": 256,
                "distance": "cos+l2", "match": "multilevel", "repeats": args.repeats}
    print("settings:", json.dumps(settings))
    print("machine: ", json.dumps(machine))
    pools = fashion_shaped_pools(args.per_class, device)
    results = {"settings": settings, "machine": machine}

    step = time_matching_step(pools, args.repeats, 256)
    results["matching_step_ipc1"] = step
    print(f"ipc 1 matching step: {step['step_s']:.3f} s, floor {step['floor_s']:.3f} s, "
          f"ratio {step['ratio']:.3f}")

    if not args.skip_ipc10:
        for schedule in ("fixed", "adaptive"):
            res = time_iteration(pools, 10, schedule)
            results[f"iteration_ipc10_{schedule}"] = res
            print(f"ipc 10 iteration, {schedule}: {res['seconds']:.1f} s "
                  f"({res['network_steps']} network steps)")
        fixed = results["iteration_ipc10_fixed"]["seconds"]
        adaptive = results["iteration_ipc10_adaptive"]["seconds"]
        results["adaptive_over_fixed"] = adaptive / fixed
        print(f"adaptive / fixed: {adaptive / fixed:.3f} ({100 * (1 - adaptive / fixed):.0f}% less time)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    rows = [
        "| measurement | seconds | ratio |",
        "|---|---|---|",
        f"| floor: 10 x fwd+bwd, 256 real images each | {step['floor_s']:.3f} | 1.00 |",
        f"| matching step, ipc 1 | {step['step_s']:.3f} | {step['ratio']:.2f} x floor |",
    ]
    if not args.skip_ipc10:
        rows += [
            f"| iteration, ipc 10, fixed (T=10, zeta=50) | {fixed:.1f} | 1.00 |",
            f"| iteration, ipc 10, adaptive (eq. 12) | {adaptive:.1f} | {adaptive / fixed:.2f} x fixed |",
        ]
    header = (f"Machine: {machine['processor']}, {machine['cpu_count']} cores, {machine['torch_threads']} "
              f"torch threads, torch {machine['torch']}, device {machine['device']}. "
              f"Median of {args.repeats} matching steps; one iteration per schedule.\n\n")
    out.with_suffix(".md").write_text(header + "\n".join(rows) + "\n")
    print("\n".join(rows))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does bf16's saving depend on how far condensation has gone? (issue 8)

``benchmarks/speed.py`` times first iterations from random noise, where bf16
saves about a sixth of an ipc-10 iteration; the reproduction's ipc-10 runs
saw no saving over ten iterations. This benchmark separates the candidate
causes on Fashion-MNIST at ipc 10 (DC's ConvNet, MD's matching,
``schedule="fixed"``: 10 matching steps with 50 network epochs between them):

* the *state*: episodes start from random noise and from a finished
  synthetic set (``--sets``, e.g. the reproduction's ipc-10 sets), so the
  network is trained on that set between matching steps, as in a late
  iteration;
* the *pass itself*: within an episode the same network is used for a
  float32 and a bf16 matching step (two loops with their own copies of the
  set), timed back to back, and optionally a third with denormals flushed to
  zero (``torch.set_flush_denormal``), then the network steps (timed) train
  the network on the float32 loop's set.

Episodes run in rounds, states interleaved within a round. Results go to
``--out`` as JSON and a markdown table (medians per state and phase, and the
bf16 / float32 ratio of the matching steps).

Usage::

    python benchmarks/precision_state.py --sets docs/results/reproduce-cpu/sets/ipc10-md-set0.npz
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine_info, write_results
from speed import N_CLASSES, SHAPE, make_loop

from gradmatch.data import ClassPools, Normalization, channel_stats
from gradmatch.datasets import FASHION_MNIST_DIR, load_fashion_mnist
from gradmatch.io import load_set

IPC = 10


def load_state(path: str, norm: Normalization) -> torch.Tensor:
    """A saved set in the loop's (normalised, class-ordered) representation."""
    saved = load_set(path)
    x = torch.as_tensor(np.asarray(saved.X), dtype=torch.float32).reshape((-1,) + SHAPE)
    order = np.argsort(np.asarray(saved.y), kind="stable")
    mean, std = norm.tensors("cpu")
    return (x[torch.as_tensor(order)] - mean) / std


def episode(pools: ClassPools, start: torch.Tensor, steps: int, ftz: bool, seed: int) -> dict:
    loops = {p: make_loop(pools, IPC, "fixed", seed=seed, precision=p) for p in ("float32", "bf16")}
    for loop in loops.values():
        with torch.no_grad():
            loop.syn.copy_(start)
    ref = loops["float32"]
    net = ref.fresh_network()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=ref.settings.lr_net)
    variants = ["float32", "bf16"] + (["bf16+ftz"] if ftz else [])
    times = {name: [] for name in variants + ["network"]}
    for t in range(steps):
        ref.set_batchnorm(net)
        for name in variants:
            loop = loops[name.split("+")[0]]
            torch.set_flush_denormal(name.endswith("+ftz"))
            t0 = time.perf_counter()
            loop.matching_step(net, params)
            times[name].append(time.perf_counter() - t0)
            torch.set_flush_denormal(False)
        if t < steps - 1:
            t0 = time.perf_counter()
            ref.network_steps(net, opt, t)
            times["network"].append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=[], help="saved ipc-10 sets to start from (besides noise)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="matching steps per episode (DC's schedule: 10)")
    parser.add_argument("--ftz", action="store_true", help="also time bf16 with denormals flushed to zero")
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    parser.add_argument("--out", default="benchmarks/results/precision_state")
    args = parser.parse_args(argv)
    from gradmatch.runtime import resolve_precision

    # Without bf16 hardware the "bf16" loop would run float32 under bf16's name.
    _, warning = resolve_precision("bf16", torch.device("cpu"))
    if warning:
        raise SystemExit(f"this benchmark compares bf16 with float32 and needs a CPU that does bf16 ({warning})")

    (X, y), _ = load_fashion_mnist(args.data_dir)
    images = torch.as_tensor(np.asarray(X)).unsqueeze(1)
    norm = channel_stats(images)  # the real data's, as the condenser uses
    pools = ClassPools(images, torch.as_tensor(np.asarray(y), dtype=torch.long), N_CLASSES, norm, "cpu")
    states = {"noise": torch.randn((IPC * N_CLASSES,) + SHAPE, generator=torch.Generator().manual_seed(0))}
    for path in args.sets:
        states[Path(path).stem] = load_state(path, norm)
    settings = {"dataset": "fashion-mnist", "ipc": IPC, "match": "multilevel", "distance": "cos+l2",
                "schedule": "fixed (50 network epochs between matching steps)", "steps": args.steps,
                "rounds": args.rounds, "states": list(states)}
    machine = machine_info()
    print(json.dumps({"settings": settings, "machine": machine}), flush=True)

    raw = {s: [] for s in states}
    for r in range(args.rounds):
        for s, start in states.items():
            times = episode(pools, start, args.steps, args.ftz, seed=r)
            raw[s].append(times)
            print(f"round {r} {s}: " + ", ".join(
                f"{k} {[round(v, 2) for v in vs]}" for k, vs in times.items()), flush=True)

    summary = {}
    for s, episodes in raw.items():
        merged = {k: [v for e in episodes for v in e[k]] for k in episodes[0]}
        med = {k: statistics.median(v) for k, v in merged.items()}
        med["bf16/float32"] = med["bf16"] / med["float32"]
        if "bf16+ftz" in med:
            med["bf16+ftz/float32"] = med["bf16+ftz"] / med["float32"]
        summary[s] = med
    cols = list(next(iter(summary.values())))
    lines = ["| start | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for s, med in summary.items():
        lines.append(f"| {s} | " + " | ".join(
            f"{v:.2f}" if "/" in k else f"{v:.2f} s" for k, v in med.items()) + " |")
    table = "\n".join(lines)
    print(table)
    write_results(args.out, {"settings": settings, "machine": machine, "summary": summary, "raw": raw},
                  f"# bf16 against float32 by state (ipc 10, Fashion-MNIST)\n\nMedians per matching step / "
                  f"per 50 network epochs.\n\n{table}\n\nSettings: {settings}\n\nMachine: {machine}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

``--dm`` measures instead, through the public estimators only (each fit's
``history_["seconds"]``), the seconds per iteration of
:class:`gradmatch.DistributionMatchingCondenser` (its defaults: real
initialisation, DSA, batch_real = 256) beside a gradient-matching iteration
(:class:`gradmatch.GradientMatchingCondenser`'s MD settings, multilevel and
cos+l2, with DC's ``"fixed"`` schedule and with ``"adaptive"``) at ipc 1, 10
and 50 on the same data: real Fashion-MNIST when ``--data-dir`` holds it,
else random data of its shape (the output says which). Each figure is the
median over ``--dm-repeats`` / ``--gm-repeats`` iterations after
``--warmup`` untimed ones, with the ratio GM / DM. A gradient-matching
iteration at ipc 50 takes many minutes on a CPU, so where DC's T > 1 it is
*estimated* from its parts unless ``--gm-full`` is given (the output says
so): T x a matching step (a 1-step iteration) + N x a network step (from a
2-step fixed iteration less two matching steps), N being the schedule's
network steps per iteration. Results go to ``benchmarks/results/speed-dm``.

Usage::

    python benchmarks/speed.py                       # everything (~10 min on 2 cores)
    python benchmarks/speed.py --skip-ipc10          # the matching-step ratio only
    python benchmarks/speed.py --dm                  # DM beside GM at ipc 1, 10, 50 (~5-8 min on 2 cores)
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
from gradmatch.schedules import default_loops, make_schedule, total_network_steps

N_CLASSES = 10
SHAPE = (1, 28, 28)


def fashion_shaped_pools(per_class: int, device: torch.device) -> ClassPools:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N_CLASSES * per_class,) + SHAPE, dtype=torch.uint8, generator=gen)
    labels = torch.arange(N_CLASSES).repeat_interleave(per_class)
    return ClassPools(images, labels, N_CLASSES, Normalization((72.9,), (90.0,)), device)


#: The variants ``--precisions`` takes: the real-gradient pass's precision, the
#: network steps' (``-net``: bf16 there too), and ``+compile``.
VARIANTS = ("float32", "bf16", "bf16-net", "float32+compile", "bf16+compile", "bf16-net+compile")


def parse_variant(variant: str) -> tuple[str, str, bool]:
    """``(precision, network_precision, compile)`` of a ``--precisions`` value."""
    base, _, extra = variant.partition("+")
    precision = "bf16" if base.startswith("bf16") else "float32"
    return precision, "bf16" if base == "bf16-net" else "float32", extra == "compile"


def make_loop(pools: ClassPools, ipc: int, schedule: str, seed: int = 0,
              precision: str = "float32") -> CondensationLoop:
    steps, zeta = default_loops(ipc)
    real_precision, network_precision, compiled = parse_variant(precision)
    settings = LoopSettings(
        iterations=1,
        matching_steps=steps,
        schedule=make_schedule(schedule, zeta),
        distance=make_distance("cos+l2"),
        match="multilevel",
        lam=float(N_CLASSES),
        class_weights=[1.0 / N_CLASSES] * N_CLASSES,
        precision=real_precision,
        network_precision=network_precision,
        compile=compiled,
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


# ----------------------------------------------------------------------------- --dm
#: The ipcs of the DM comparison.
DM_IPCS = (1, 10, 50)


def dm_data(per_class: int, data_dir: str | None, random_data: bool):
    """``(X, y, source)``: Fashion-MNIST's first ``per_class`` training images per class
    (all with 0), or seeded random images of its shape when the files are missing or
    ``random_data``; ``source`` says which (and why random)."""
    import numpy as np

    from gradmatch.datasets import FASHION_MNIST_DIR, DatasetError, load_fashion_mnist

    reason = "--random-data"
    if not random_data:
        try:
            (X, y), _ = load_fashion_mnist(data_dir or FASHION_MNIST_DIR)
        except DatasetError:
            reason = f"no readable Fashion-MNIST IDX files in {data_dir or FASHION_MNIST_DIR}"
        else:
            if per_class > 0:
                keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(N_CLASSES)])
                X, y = X[keep], y[keep]
            return X, y, f"Fashion-MNIST training images ({len(y)}: {len(y) // N_CLASSES} per class)"
    n = per_class if per_class > 0 else 6000  # Fashion-MNIST's
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (N_CLASSES * n,) + SHAPE[1:], dtype=np.uint8)
    y = np.repeat(np.arange(N_CLASSES), n)
    return X, y, f"random images of Fashion-MNIST's shape ({len(y)}: {n} per class; {reason})"


def fit_history(estimator, X, y, warmup: int) -> dict:
    """Fit ``estimator`` and return its per-iteration ``history_`` after ``warmup`` iterations."""
    estimator.fit(X, y)
    return {key: list(values[warmup:]) for key, values in estimator.history_.items()}


def time_dm(X, y, ipc: int, args) -> dict:
    """Seconds per DM iteration at ``ipc`` (its defaults), median after the warm-up."""
    from gradmatch import DistributionMatchingCondenser

    dm = DistributionMatchingCondenser(ipc=ipc, iterations=args.warmup + args.dm_repeats,
                                       batch_real=args.batch_real, device=args.device, random_state=0)
    seconds = fit_history(dm, X, y, args.warmup)["seconds"]
    return {"seconds": statistics.median(seconds), "all": seconds}


def time_gm(X, y, ipc: int, args) -> dict:
    """Seconds per gradient-matching iteration at ``ipc``, fixed and adaptive (MD's settings).

    Where DC's T is 1 an iteration is one matching step and no network step,
    the same under both schedules: it is timed once. Otherwise, with
    ``args.gm_full`` whole iterations of each schedule are timed; without, an
    iteration is estimated as T x a (a 1-step iteration) + N x b (a 2-step
    fixed iteration, less 2 a, per network step it ran), N being each
    schedule's network steps per iteration.
    """
    from gradmatch import GradientMatchingCondenser

    steps, zeta = default_loops(ipc)

    def run(schedule: str, matching_steps: int | None = None) -> dict:
        gm = GradientMatchingCondenser(ipc=ipc, match="multilevel", distance="cos+l2", schedule=schedule,
                                       matching_steps=matching_steps, iterations=args.warmup + args.gm_repeats,
                                       batch_real=args.batch_real, device=args.device, random_state=0)
        return fit_history(gm, X, y, args.warmup)

    out = {"T": steps, "zeta": zeta}
    if steps == 1:
        hist = run("fixed")
        s = statistics.median(hist["seconds"])
        out.update(timed="whole iterations (T=1: one matching step, alike in both schedules)",
                   estimated=False, matching_step_s=s, all=hist["seconds"])
        for schedule in ("fixed", "adaptive"):
            out[schedule] = {"seconds": s, "network_steps": 0}
        return out
    if args.gm_full:
        out.update(timed="whole iterations", estimated=False)
        for schedule in ("fixed", "adaptive"):
            hist = run(schedule)
            out[schedule] = {"seconds": statistics.median(hist["seconds"]), "all": hist["seconds"],
                             "network_steps": int(statistics.median(hist["network_steps"]))}
        return out
    one = run("fixed", matching_steps=1)
    two = run("fixed", matching_steps=2)
    a = statistics.median(one["seconds"])
    n_two = int(statistics.median(two["network_steps"]))
    b = max(0.0, (statistics.median(two["seconds"]) - 2 * a) / n_two) if n_two else 0.0
    out.update(timed=f"estimated from its steps (T={steps})", estimated=True,
               matching_step_s=a, network_step_s=b, one_step_all=one["seconds"], two_step_all=two["seconds"],
               two_step_network_steps=n_two)
    for schedule in ("fixed", "adaptive"):
        n = total_network_steps(make_schedule(schedule, zeta), steps)
        out[schedule] = {"seconds": steps * a + n * b, "network_steps": n}
    return out


def run_dm(args) -> int:
    """``--dm``: DM and gradient matching per iteration at each ipc, in one run."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    machine = machine_info(str(device))
    X, y, source = dm_data(args.per_class, args.data_dir, args.random_data)
    settings = {"classes": N_CLASSES, "input": list(SHAPE), "model": "ConvNet (DC)", "data": source,
                "ipcs": args.ipcs, "batch_real": args.batch_real, "warmup": args.warmup,
                "dm_repeats": args.dm_repeats, "gm_repeats": args.gm_repeats, "gm_full": args.gm_full,
                "dm": "DistributionMatchingCondenser defaults (init='real', augment='dsa', lr_syn=1.0)",
                "gm": "GradientMatchingCondenser(match='multilevel', distance='cos+l2'), schedule fixed and "
                      "adaptive, DC's T and zeta"}
    print("settings:", json.dumps(settings))
    print("machine: ", json.dumps(machine))
    print(f"data: {source}", flush=True)
    rows = []
    for ipc in args.ipcs:
        dm = time_dm(X, y, ipc, args)
        print(f"ipc {ipc}: DM iteration {dm['seconds']:.3f} s", flush=True)
        gm = time_gm(X, y, ipc, args)
        row = {"ipc": ipc, "dm_s": dm["seconds"], "dm_all": dm["all"], "gm": gm,
               "gm_fixed_s": gm["fixed"]["seconds"], "gm_adaptive_s": gm["adaptive"]["seconds"],
               "gm_estimated": gm["estimated"],
               "fixed_over_dm": gm["fixed"]["seconds"] / dm["seconds"],
               "adaptive_over_dm": gm["adaptive"]["seconds"] / dm["seconds"],
               "dm_iterations_per_hour": 3600.0 / dm["seconds"]}
        rows.append(row)
        print(f"ipc {ipc}: GM iteration fixed {row['gm_fixed_s']:.2f} s, adaptive {row['gm_adaptive_s']:.2f} s "
              f"({gm['timed']}); GM / DM: fixed {row['fixed_over_dm']:.1f}, adaptive "
              f"{row['adaptive_over_dm']:.1f}", flush=True)
    table = ["| ipc | DM iteration (s) | DM iterations per hour | GM fixed (s) | GM adaptive (s) "
             "| GM fixed / DM | GM adaptive / DM | GM timed as |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " (est.)" if r["gm_estimated"] else ""
        table.append(f"| {r['ipc']} | {r['dm_s']:.3f} | {r['dm_iterations_per_hour']:.0f} | "
                     f"{r['gm_fixed_s']:.2f}{mark} | {r['gm_adaptive_s']:.2f}{mark} | {r['fixed_over_dm']:.1f} | "
                     f"{r['adaptive_over_dm']:.1f} | {r['gm']['timed']} |")
    estimated = [r for r in rows if r["gm_estimated"]]
    notes = [f"Data: {source}.",
             f"DM: median of {args.dm_repeats} iterations after {args.warmup} warm-up; GM: median of "
             f"{args.gm_repeats} after {args.warmup}."]
    if estimated:
        notes.append("(est.): not a whole GM iteration, which takes minutes on a CPU at ipc 10 and 50, but "
                     "T x a matching step (timed as a 1-step iteration) + N x a network step (a 2-step fixed "
                     "iteration less two matching steps, per network step), N the schedule's network steps "
                     "per iteration: " + "; ".join(
                         f"ipc {r['ipc']}: T={r['gm']['T']}, a={r['gm']['matching_step_s']:.2f} s, "
                         f"b={r['gm']['network_step_s']:.3f} s, N fixed={r['gm']['fixed']['network_steps']}, "
                         f"N adaptive={r['gm']['adaptive']['network_steps']}" for r in estimated)
                     + ". `--gm-full` times whole iterations instead.")
    header = (f"Machine: {describe(machine)}. Seconds per outer iteration of distribution matching (DM) "
              "and of gradient matching (GM, MD's settings), and their ratio.\n\n")
    text = header + "\n".join(table) + "\n\n" + "\n".join(notes)
    print(text)
    write_results(args.out or "benchmarks/results/speed-dm",
                  {"settings": settings, "machine": machine, "rows": rows}, text)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed matching steps (median)")
    parser.add_argument("--per-class", type=int, default=600, help="real images per class (--dm: 0 = all)")
    parser.add_argument("--skip-ipc10", action="store_true", help="skip the ipc-10 iterations")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bf16"],
                        choices=list(VARIANTS),
                        help="variants to time side by side (default: float32 bf16); 'bf16-net' runs the "
                             "network steps in bf16 as well; '+compile' runs the real-gradient pass "
                             "through torch.compile (compiled during the warm-up)")
    parser.add_argument("--profile", action="store_true", help="profile one matching step per precision")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default=None, help="output path without extension (default "
                        "benchmarks/results/speed, with --dm benchmarks/results/speed-dm)")
    dm = parser.add_argument_group("--dm: distribution matching beside gradient matching")
    dm.add_argument("--dm", action="store_true", help="run only the DM comparison (see above)")
    dm.add_argument("--ipcs", type=int, nargs="+", default=list(DM_IPCS), help="images per class (default 1 10 50)")
    dm.add_argument("--dm-repeats", type=int, default=5, help="timed DM iterations per ipc (median)")
    dm.add_argument("--gm-repeats", type=int, default=2, help="timed GM iterations per fit (median)")
    dm.add_argument("--warmup", type=int, default=1, help="untimed first iterations of every fit")
    dm.add_argument("--gm-full", action="store_true", help="time whole GM iterations at every ipc (slow: "
                    "minutes each at ipc 10 and 50 on a CPU) instead of estimating them from their steps")
    dm.add_argument("--batch-real", type=int, default=256, help="real images per class per step")
    dm.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default gradmatch's)")
    dm.add_argument("--random-data", action="store_true", help="random images of Fashion-MNIST's shape")
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="run inside gradmatch.keep_freed_memory(), as a default fit does on Linux "
                             "with glibc (--no-keep-freed-memory: malloc as the process starts)")
    args = parser.parse_args(argv)
    from gradmatch.memory import keep_freed_memory

    with keep_freed_memory(enabled=args.keep_freed_memory):
        return run(args, parser)


def run(args, parser) -> int:
    """Everything ``main`` measures, once the allocator is set."""
    if args.dm:
        if args.threads:
            torch.set_num_threads(args.threads)
        if min(args.dm_repeats, args.gm_repeats) < 1 or args.warmup < 0 or min(args.ipcs) < 1:
            parser.error("--dm-repeats, --gm-repeats and --ipcs must be >= 1, --warmup >= 0")
        return run_dm(args)
    args.out = args.out or "benchmarks/results/speed"

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
        _, warning = resolve_precision(parse_variant(p)[0], device)
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

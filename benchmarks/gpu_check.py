"""Everything about the GPU path in one command (issue 24, item 3).

Run on a machine with a CUDA GPU::

    python benchmarks/gpu_check.py

It runs six checks, each with a time cap, prints each one's status and seconds,
writes ``benchmarks/results/gpu_check.json`` and ``gpu_check.md`` (through
:func:`gradmatch.atomic.write_text_atomic`) with the machine (GPU, CUDA, driver,
torch) and exits non-zero when a check failed. About 2-4 minutes on one modern
GPU; the caps keep it under eight.

1. ``cuda_tests``: ``python -m pytest -q`` on the tests that exercise CUDA
   (:data:`CUDA_TESTS`: those skipped without CUDA, and the one that fits with
   ``device="auto"`` and unpickles where CUDA is hidden); a skip on a GPU fails.
2. ``fits``: a tiny fit of every reducer on scikit-learn's digits on the GPU,
   from numpy and from torch tensors on the GPU: shapes, finite values, and
   CPU numpy out for numpy in, CPU torch tensors out for torch in.
3. ``determinism``: the same seed twice must give the same set within
   :data:`DETERMINISM_TOL` for gradient matching's first update, a whole tiny
   gradient-matching fit under ``torch.use_deterministic_algorithms`` and a
   whole DM fit; the whole gradient-matching fit with the default (partly
   nondeterministic) GPU kernels and Herding's picks are reported, since the
   network steps amplify kernel noise.
4. ``bf16``: ``precision="bf16"`` (autocast on CUDA) beside float32 from the
   same seed: the first updates of the set at most :data:`BF16_REL_TOL` apart
   (relative), a finite whole fit, and the difference of the whole fits.
5. ``distributed``: a one-rank process group in this process (nccl on CUDA)
   through :class:`gradmatch.sharding.ClassShard`'s collectives and a fit
   inside it, then ``torchrun --nproc-per-node <GPUs>`` on ``python -m
   gradmatch condense --iterations 2`` (the CLI picks nccl on CUDA); with one
   GPU the CLI starts no group and sharding is not exercised (it says so).
6. ``speed``: seconds per iteration (``history_["seconds"]`` after a warm-up
   iteration) of gradient matching at ipc 1 and 10 in float32, bf16,
   float32+compile, bf16+compile and bf16-net (network steps in bf16 too), and of DM, on Fashion-MNIST-shaped data
   (the real files when ``gradmatch.datasets`` finds them, else random
   1x28x28 images; the output says which), beside the CPU figures committed in
   ``benchmarks/results/speed.json`` and ``speed-dm.json``, with ratios.

Without CUDA it prints one line and exits 0, writing nothing. Each check is a
function taking the device (and a :class:`Size`) so the tests run them on the
CPU at a tiny size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradmatch.atomic import write_text_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

#: Tests that exercise CUDA on a machine that has it.
CUDA_TESTS = (
    "tests/test_condenser.py::test_cuda_fit_returns_cpu_output",
    "tests/test_augment.py::test_cuda_generator_and_tensors_stay_on_the_device",
    "tests/test_io.py::test_pickle_loads_in_a_cpu_only_process",
)
#: Largest absolute difference (digits' pixel units, 0..16) allowed between two same-seed sets.
DETERMINISM_TOL = 1e-3
#: Largest ||u_bf16 - u_float32|| / ||u_float32|| allowed between the first updates u of the synthetic set.
BF16_REL_TOL = 0.1
#: Gradient-matching variants timed: name -> (precision, compile); a name starting
#: "bf16-net" runs the network steps in bf16 as well (``network_precision``).
VARIANTS = {"float32": ("float32", False), "bf16": ("bf16", False),
            "float32+compile": ("float32", True), "bf16+compile": ("bf16", True), "bf16-net": ("bf16", False)}
#: The committed CPU speed records, read in this order (the first that has a variant gives it).
CPU_SPEED_FILES = ("speed.json", "speed-network-bf16.json")
CHECK_NAMES = ("cuda_tests", "fits", "determinism", "bf16", "distributed", "speed")


@dataclass(frozen=True)
class Size:
    """How much each check does, and its time caps (seconds)."""

    per_class: int = 100           # digits images per class (of about 180)
    ipc: int = 2
    iterations: int = 2
    matching_steps: int = 2
    batch_real: int = 64
    feature_epochs: int = 2
    speed_per_class: int = 600     # Fashion-MNIST-shaped images per class
    speed_batch_real: int = 256
    speed_ipcs: tuple = (1, 10)
    variants: tuple = tuple(VARIANTS)
    gm_timed: int = 2              # timed iterations after one warm-up
    dm_timed: int = 5
    speed_budget_s: float = 240.0
    tests_timeout_s: float = 240.0
    torchrun_timeout_s: float = 150.0


FULL = Size()
TINY = Size(per_class=12, iterations=1, matching_steps=1, batch_real=8, feature_epochs=1, speed_per_class=8,
            speed_batch_real=8, speed_ipcs=(1,), variants=("float32", "bf16"), gm_timed=1, dm_timed=1,
            speed_budget_s=60.0, tests_timeout_s=120.0, torchrun_timeout_s=120.0)


# ----------------------------------------------------------------------------- data
def digits(size: Size):
    """``size.per_class`` digits images per class, ``(n, 8, 8)`` float64 in 0..16, and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    keep = np.concatenate([np.flatnonzero(data.target == c)[:size.per_class] for c in range(10)])
    return data.images[keep].astype(np.float64), data.target[keep].astype(np.int64)


def fashion_data(per_class: int, data_dir=None):
    """``(X, y, source)``: Fashion-MNIST's first training images per class, else random ones of its shape."""
    from gradmatch.datasets import FASHION_MNIST_DIR, DatasetError, load_fashion_mnist

    folder = data_dir or FASHION_MNIST_DIR
    try:
        (X, y), _ = load_fashion_mnist(folder)
    except DatasetError:
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (10 * per_class, 28, 28), dtype=np.uint8)
        y = np.repeat(np.arange(10), per_class)
        return X, y, f"random 1x28x28 images ({per_class} per class; no Fashion-MNIST files in {folder})"
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    return X[keep], y[keep], f"Fashion-MNIST training images ({per_class} per class, from {folder})"


def _gm(device, size: Size, **kw):
    from gradmatch import GradientMatchingCondenser

    params = dict(ipc=size.ipc, iterations=size.iterations, matching_steps=size.matching_steps,
                  batch_real=size.batch_real, device=device, random_state=0)
    return GradientMatchingCondenser(**{**params, **kw})


def _dm(device, size: Size, **kw):
    from gradmatch import DistributionMatchingCondenser

    params = dict(ipc=size.ipc, iterations=size.iterations, batch_real=size.batch_real, device=device,
                  random_state=0)
    return DistributionMatchingCondenser(**{**params, **kw})


def _herding(device, size: Size):
    from gradmatch import Herding

    return Herding(ipc=size.ipc, features="network", feature_epochs=size.feature_epochs, device=device,
                   random_state=0)


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ----------------------------------------------------------------------------- 1. tests
def check_cuda_tests(device: str = "cuda", size: Size = FULL, tests=CUDA_TESTS) -> dict:
    """``python -m pytest -q`` on ``tests``; on CUDA every one must pass (a skip fails)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=size.tests_timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "fail", "summary": f"pytest ran past {size.tests_timeout_s:.0f} s", "tests": list(tests)}
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", tail[-1] if tail else "")
    counts = {"error" if word == "errors" else word: int(n) for n, word in found}
    skipped_on_gpu = str(device).startswith("cuda") and counts.get("skipped", 0)
    bad = proc.returncode != 0 or counts.get("failed", 0) or counts.get("error", 0) or skipped_on_gpu
    summary = ", ".join(f"{n} {w}" for w, n in counts.items()) or f"pytest exit {proc.returncode}"
    return {"status": "fail" if bad else "pass", "summary": summary, "counts": counts, "exit": proc.returncode,
            "tests": list(tests), "output_tail": "\n".join(tail[-15:])}


# ----------------------------------------------------------------------------- 2. fits
def _output_problems(X_out, y_out, torch_in: bool, n_rows: int, sample_shape: tuple) -> list[str]:
    """What is wrong with a reducer's output (empty when nothing)."""
    kind = torch.Tensor if torch_in else np.ndarray
    problems = [f"{name} is {type(a).__name__}, expected {kind.__name__}"
                for name, a in (("X", X_out), ("y", y_out)) if not isinstance(a, kind)]
    if problems:
        return problems
    if torch_in:
        problems += [f"{name} is on {a.device}, expected cpu"
                     for name, a in (("X", X_out), ("y", y_out)) if a.device.type != "cpu"]
        X_out, y_out = X_out.numpy(), y_out.numpy()
    if X_out.shape != (n_rows, *sample_shape) or y_out.shape != (n_rows,):
        problems.append(f"shapes {X_out.shape}, {y_out.shape}; expected {(n_rows, *sample_shape)}, ({n_rows},)")
    if not np.isfinite(X_out).all():
        problems.append("X holds NaN or inf")
    return problems


def check_fits(device: str = "cuda", size: Size = FULL) -> dict:
    """A tiny fit of every reducer, from numpy and from torch tensors on ``device``."""
    from gradmatch import RandomCoreset

    X, y = digits(size)
    reducers = {
        "GradientMatchingCondenser(match='multilevel', distance='cos+l2')":
            lambda: _gm(device, size, match="multilevel", distance="cos+l2"),
        "GradientMatchingCondenser(augment='dsa')": lambda: _gm(device, size, augment="dsa"),
        "DistributionMatchingCondenser()": lambda: _dm(device, size),
        "Herding(features='network')": lambda: _herding(device, size),
        "RandomCoreset()": lambda: RandomCoreset(ipc=size.ipc, random_state=0),
    }
    Xt = torch.tensor(X, dtype=torch.float32, device=device)
    yt = torch.tensor(y, device=device)
    results, failed = {}, []
    for name, make in reducers.items():
        row = {}
        for label, (Xi, yi) in (("numpy", (X, y)), ("torch", (Xt, yt))):
            start = time.perf_counter()
            X_out, y_out = make().fit_resample(Xi, yi)
            problems = _output_problems(X_out, y_out, label == "torch", 10 * size.ipc, X.shape[1:])
            row[label] = {"seconds": round(time.perf_counter() - start, 3), "problems": problems,
                          "X": f"{type(X_out).__name__} {tuple(X_out.shape)} {X_out.dtype}"}
            failed += [f"{name} ({label}): {p}" for p in problems]
        results[name] = row
    summary = (f"{len(reducers)} reducers x numpy/torch input: shapes, finite values, CPU outputs OK"
               if not failed else "; ".join(failed))
    return {"status": "fail" if failed else "pass", "summary": summary, "reducers": results}


# ----------------------------------------------------------------------------- 3. determinism
def _first_update(device, size: Size, **kw):
    """The synthetic set's first update (one iteration, one matching step) and that fit.

    The starting set is that of a same-seed fit with a vanishing learning rate:
    both start from the same noise, on the same network and real batches.
    """
    one = dict(iterations=1, matching_steps=1)
    start = _gm(device, size, lr_syn=1e-12, **one).fit(*digits(size)).X_syn_
    est = _gm(device, size, **one, **kw).fit(*digits(size))
    return est.X_syn_ - start, est


@contextlib.contextmanager
def deterministic_kernels():
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuDNN's deterministic choice, restored after.

    Yields the list that collects the warnings of ops with no deterministic implementation.
    """
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            said: list[str] = []
            yield said
            said += sorted({str(w.message)[:200] for w in caught if "determinis" in str(w.message)})
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def check_determinism(device: str = "cuda", size: Size = FULL, tol: float = DETERMINISM_TOL) -> dict:
    """The same seed twice gives the same set within ``tol``.

    Required: the first update of gradient matching (no network step yet to
    amplify kernel noise), a whole tiny gradient-matching fit under
    deterministic kernels, and a whole DM fit. Reported: the whole
    gradient-matching fit with the default kernels, and Herding's picks.
    """
    X, y = digits(size)
    out = {"tolerance": tol, "units": "digits pixel values (0..16)"}
    (u1, _), (u2, _) = _first_update(device, size), _first_update(device, size)
    out["gm_first_update"] = {"max_abs_diff": _max_diff(u1, u2), "update_max_abs": float(np.abs(u1).max())}
    a, b = _gm(device, size).fit(X, y).X_syn_, _gm(device, size).fit(X, y).X_syn_
    out["gm_fit_default_kernels"] = {"max_abs_diff": _max_diff(a, b), "bitwise_equal": bool(np.array_equal(a, b)),
                                     "set_range": [float(a.min()), float(a.max())], "required": False}
    with deterministic_kernels() as said:
        a, b = _gm(device, size).fit(X, y).X_syn_, _gm(device, size).fit(X, y).X_syn_
    out["gm_fit_deterministic_kernels"] = {"max_abs_diff": _max_diff(a, b), "bitwise_equal": bool(np.array_equal(a, b)),
                                           "nondeterministic_ops": said}
    a, b = _dm(device, size).fit(X, y).X_syn_, _dm(device, size).fit(X, y).X_syn_
    out["dm_fit"] = {"max_abs_diff": _max_diff(a, b), "bitwise_equal": bool(np.array_equal(a, b))}
    h1, h2 = _herding(device, size).fit(X, y), _herding(device, size).fit(X, y)
    out["herding"] = {"same_selection": bool(np.array_equal(h1.X_syn_, h2.X_syn_)), "required": False}
    required = ("gm_first_update", "gm_fit_deterministic_kernels", "dm_fit")
    failed = [f"{k} differs by {out[k]['max_abs_diff']:.3g} > {tol:g}" for k in required
              if not out[k]["max_abs_diff"] <= tol]
    summary = "; ".join(failed) or (
        "same seed, max |diff|: GM first update {:.2g}, GM fit with deterministic kernels {:.2g}, DM fit {:.2g} "
        "(tolerance {:g}); with default kernels the GM fit differs by {:.3g} (not required: network steps amplify "
        "kernel noise); Herding same picks: {}").format(
        *(out[k]["max_abs_diff"] for k in required), tol, out["gm_fit_default_kernels"]["max_abs_diff"],
        out["herding"]["same_selection"])
    return {"status": "fail" if failed else "pass", "summary": summary, **out}


# ----------------------------------------------------------------------------- 4. bf16
def check_bf16(device: str = "cuda", size: Size = FULL, rel_tol: float = BF16_REL_TOL) -> dict:
    """``precision="bf16"`` fits, and its first update is close to float32's from the same seed.

    Required: the relative difference of the first updates (same start,
    network and batches) at most ``rel_tol``, and a finite whole fit. The
    whole fits' difference is reported (network steps amplify it).
    """
    X, y = digits(size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (uf, f1), (ub, b1) = _first_update(device, size), _first_update(device, size, precision="bf16")
        f, b = _gm(device, size).fit(X, y), _gm(device, size, precision="bf16").fit(X, y)
    rel = float(np.linalg.norm(ub - uf) / max(np.linalg.norm(uf), 1e-12))
    loss_f, loss_b = f1.history_["loss"][0], b1.history_["loss"][0]
    out = {"precision_used": b.precision_, "relative_tolerance": rel_tol,
           "first_update": {"relative_diff": rel, "cosine": float((ub * uf).sum() / max(np.linalg.norm(ub) *
                                                                                       np.linalg.norm(uf), 1e-12)),
                            "loss_float32": float(loss_f), "loss_bf16": float(loss_b)},
           "fit": {"max_abs_diff": _max_diff(f.X_syn_, b.X_syn_), "finite": bool(np.isfinite(b.X_syn_).all()),
                   "relative_diff": float(np.linalg.norm(b.X_syn_ - f.X_syn_) / max(np.linalg.norm(f.X_syn_), 1e-12)),
                   "losses_float32": [float(v) for v in f.history_["loss"]],
                   "losses_bf16": [float(v) for v in b.history_["loss"]], "required": "finite only"},
           "warnings": sorted({str(w.message)[:200] for w in caught if "bf16" in str(w.message)})}
    if out["precision_used"] != "bf16":
        on_cuda = str(device).startswith("cuda")
        status = "fail" if on_cuda and torch.cuda.is_bf16_supported() else "skip"
        return {"status": status, "summary": f"bf16 fell back to {out['precision_used']}", **out}
    ok = out["fit"]["finite"] and rel <= rel_tol
    summary = (f"first update: bf16 vs float32 relative difference {rel:.3g} (tolerance {rel_tol:g}), first "
               f"matching loss {abs(loss_b - loss_f) / max(abs(loss_f), 1e-12):.2%} apart; whole tiny fit finite: "
               f"{out['fit']['finite']}, its sets {out['fit']['relative_diff']:.2g} apart (relative)")
    return {"status": "pass" if ok else "fail", "summary": summary, **out}


# ----------------------------------------------------------------------------- 5. distributed
def one_rank_group(device: str = "cuda", size: Size = FULL) -> dict:
    """A one-rank process group (nccl on CUDA, gloo on the CPU): ClassShard's collectives and a fit in it."""
    import torch.distributed as dist

    from gradmatch.sharding import ClassShard

    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    extra = {"device_id": dev} if dev.type == "cuda" else {}
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group(backend, init_method=f"file://{tmp}/store", rank=0, world_size=1, **extra)
        try:
            shard = ClassShard(0, 1, range(10))
            t = torch.arange(6.0, device=dev).reshape(3, 2).requires_grad_()
            (summed,) = shard.sum_with_grad([t])
            summed.sum().backward()
            ok = {"sum_value": shard.sum_value(2.5) == 2.5, "broadcast_int": shard.broadcast_int(7) == 7,
                  "assemble": bool(torch.equal(shard.assemble(t, [3]), t.detach())),
                  "sum_with_grad": bool(torch.equal(t.grad, torch.ones_like(t))),
                  "same_everywhere": shard.same_everywhere(np.arange(3))}
            X, y = digits(size)
            est = _gm(device, size, distributed="auto").fit(X, y)
            ok["fit_in_group"] = bool(np.isfinite(est.X_syn_).all())
            n_ranks = int(est.n_ranks_)
        finally:
            dist.destroy_process_group()
    return {"backend": backend, "checks": ok, "n_ranks_": n_ranks, "passed": all(ok.values()) and n_ranks == 1}


def torchrun_condense(device: str = "cuda", size: Size = FULL, n_procs: int = 1) -> dict:
    """``torchrun --nproc-per-node n_procs -m gradmatch condense --iterations 2`` on digits; its report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.npz"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n_procs),
               "-m", "gradmatch", "condense", "--method", "condense", "--iterations", "2", "--dataset", "digits",
               "--ipc", "1", "--batch-real", str(size.batch_real), "--device", device, "--quiet", "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        shown = "torchrun " + " ".join(cmd[3:])
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=size.torchrun_timeout_s)
        except subprocess.TimeoutExpired:
            return {"command": shown, "passed": False, "output": f"ran past {size.torchrun_timeout_s:.0f} s"}
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("condensed ")]
        sharded = re.search(r"sharded over (\d+) processes", lines[-1] if lines else "")
        from gradmatch import load_set

        saved = load_set(out) if out.exists() else None
        finite = saved is not None and bool(np.isfinite(np.asarray(saved.X, np.float64)).all())
    return {"command": shown, "exit": proc.returncode, "n_ranks_": int(sharded.group(1)) if sharded else 1,
            "output": lines[-1] if lines else (proc.stdout + proc.stderr)[-2000:],
            "passed": proc.returncode == 0 and finite and (int(sharded.group(1)) if sharded else 1) == n_procs}


def check_distributed(device: str = "cuda", size: Size = FULL) -> dict:
    """The one-rank group in this process, then the CLI under torchrun with one process per GPU."""
    n_procs = min(max(1, torch.cuda.device_count()), 10) if str(device).startswith("cuda") else 1
    group = one_rank_group(device, size)
    run = torchrun_condense(device, size, n_procs)
    one = "one GPU" if str(device).startswith("cuda") else "on the CPU"
    note = (f"classes sharded over {run['n_ranks_']} processes" if n_procs > 1 else
            f"{one}: torchrun ran one process (WORLD_SIZE=1), so the CLI starts no process group and class "
            "sharding was not exercised; the one-rank group tested the backend's collectives only")
    summary = (f"{group['backend']} one-rank group: {'OK' if group['passed'] else 'FAILED'}; torchrun x{n_procs}: "
               f"{'OK' if run['passed'] else 'FAILED'} (n_ranks_ {run['n_ranks_']}); {note}")
    status = "pass" if group["passed"] and run["passed"] else "fail"
    return {"status": status, "summary": summary, "group": group, "torchrun": run, "sharding_exercised": n_procs > 1}


# ----------------------------------------------------------------------------- 6. speed
def _host(m: dict) -> str:
    return f"{m.get('cpu') or m.get('processor') or '?'}, {m.get('cpu_count', '?')} cores"


def cpu_reference(folder: Path = RESULTS) -> dict:
    """``{(method, ipc, variant): (seconds, source)}`` from the committed CPU benchmarks."""
    refs = {}
    dm_path = Path(folder) / "speed-dm.json"
    for name in CPU_SPEED_FILES:
        path = Path(folder) / name
        if not path.exists():
            continue
        speed = json.loads(path.read_text())
        step = speed.get("matching_step_ipc1", {})
        host = _host(speed.get("machine", {}))
        for v in VARIANTS:
            if isinstance(step.get(v), dict):
                refs.setdefault(("gm", 1, v), (step[v]["step_s"], f"{name} matching_step_ipc1.{v} ({host})"))
            key = "iteration_ipc10_adaptive" + ("" if v == "float32" else f"_{v}")
            if key in speed:
                refs.setdefault(("gm", 10, v), (speed[key]["seconds"], f"{name} {key} ({host})"))
    if dm_path.exists():
        dm = json.loads(dm_path.read_text())
        host = _host(dm.get("machine", {}))
        for row in dm.get("rows", []):
            refs[("dm", row["ipc"], "float32")] = (row["dm_s"], f"speed-dm.json dm_s ({host})")
    return refs


def _timed_fit(make, X, y, warmup: int, deadline: float, **params) -> dict:
    """Fit ``make(**params)`` with a callback that stops at ``deadline``; seconds after ``warmup`` iterations."""
    est = make(callback=lambda i, record: time.perf_counter() > deadline, **params)
    est.fit(X, y)
    seconds = [float(s) for s in est.history_["seconds"][warmup:]]
    row = {"seconds": statistics.median(seconds) if seconds else None, "all": seconds,
           "warmup_s": [float(s) for s in est.history_["seconds"][:warmup]]}
    if hasattr(est, "precision_"):
        row["precision_used"] = est.precision_
    if not seconds:
        row["note"] = "time cap reached before a timed iteration"
    return row


def _speed_cells(size: Size):
    from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser

    for ipc in size.speed_ipcs:
        for variant in size.variants:
            precision, compiled = VARIANTS[variant]
            network = "bf16" if variant.startswith("bf16-net") else "float32"
            yield ("gm", ipc, variant, lambda ipc=ipc, p=precision, c=compiled, n=network, **kw:
                   GradientMatchingCondenser(ipc=ipc, precision=p, network_precision=n, compile=c,
                                             iterations=1 + size.gm_timed, batch_real=size.speed_batch_real, **kw))
        yield ("dm", ipc, "float32", lambda ipc=ipc, **kw: DistributionMatchingCondenser(
            ipc=ipc, iterations=1 + size.dm_timed, batch_real=size.speed_batch_real, **kw))


def check_speed(device: str = "cuda", size: Size = FULL, data_dir=None, cpu_results: Path = RESULTS) -> dict:
    """Seconds per iteration on ``device`` beside the committed CPU figures, within ``size.speed_budget_s``."""
    X, y, source = fashion_data(size.speed_per_class, data_dir)
    refs = cpu_reference(cpu_results)
    deadline = time.perf_counter() + size.speed_budget_s
    rows, failed = [], []
    for method, ipc, variant, make in _speed_cells(size):
        row = {"method": "gradient matching" if method == "gm" else "DM", "ipc": ipc, "variant": variant}
        if time.perf_counter() > deadline:
            rows.append({**row, "seconds": None, "note": "skipped: the check's time cap was reached"})
            continue
        try:
            row.update(_timed_fit(make, X, y, 1, deadline, device=device, random_state=0))
        except Exception as err:  # one failing cell (e.g. compile without a compiler) is reported, not fatal
            row.update(seconds=None, error=f"{type(err).__name__}: {err}"[:500])
            failed.append(f"{row['method']} ipc {ipc} {variant}")
        cpu, where = refs.get((method, ipc, variant), (None, None))
        ratio = row["seconds"] / cpu if cpu and row.get("seconds") else None
        rows.append({**row, "cpu_seconds": cpu, "cpu_source": where, "over_cpu": ratio})
    missing = sum(r.get("seconds") is None and "error" not in r for r in rows)
    summary = (f"{len(rows) - missing - len(failed)} of {len(rows)} cells timed on {source}"
               + (f"; failed: {', '.join(failed)}" if failed else "")
               + (f"; {missing} not timed within the cap" if missing else ""))
    return {"status": "fail" if failed else "pass", "summary": summary, "data": source,
            "settings": {"batch_real": size.speed_batch_real, "warmup": 1, "gm_timed": size.gm_timed,
                         "dm_timed": size.dm_timed, "gm": "defaults (multilevel, cos+l2, adaptive schedule)",
                         "dm": "defaults (real init, DSA)"}, "rows": rows}


# ----------------------------------------------------------------------------- report
def machine(device: str = "cuda") -> dict:
    """The GPU (name, capability, memory), CUDA, cuDNN, the driver where nvidia-smi says, torch, the CPU."""
    import gradmatch
    from gradmatch.runtime import cpu_description

    info = {"platform": platform.platform(), "cpu": cpu_description(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "gradmatch": gradmatch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "device": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        props = torch.cuda.get_device_properties(dev)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(), capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20).stdout.split()
            info["driver"] = out[0] if out else None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def run_check(name: str, fn, **kwargs) -> dict:
    """Run one check, timed; an exception is a failure with its traceback's tail."""
    print(f"[{name}] running ...", flush=True)
    start = time.perf_counter()
    try:
        result = fn(**kwargs)
    except Exception as err:
        result = {"status": "fail", "summary": f"{type(err).__name__}: {err}"[:500],
                  "traceback": traceback.format_exc()[-3000:]}
    result["seconds"] = round(time.perf_counter() - start, 2)
    print(f"[{name}] {result['status'].upper()} in {result['seconds']:.1f} s: {result['summary']}", flush=True)
    return result


def _num(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def to_markdown(record: dict) -> str:
    """The record as a page: the machine, a row per check, and the speed table."""
    m = record["machine"]
    lines = ["# GPU check", "", f"`{record['command']}` on {m.get('gpu', m['device'])} (CUDA {m['cuda']}, "
             f"driver {m.get('driver', '?')}, cuDNN {m['cudnn']}), torch {m['torch']}, gradmatch {m['gradmatch']}, "
             f"{m['cpu']}, {m['cpu_count']} CPUs. Result: **{record['result']}** in {record['seconds']:.0f} s.", "",
             "| check | status | seconds | summary |", "|---|---|---|---|"]
    for name, res in record["checks"].items():
        summary = res["summary"].replace("|", "\\|")
        lines.append(f"| {name} | {res['status']} | {res['seconds']:.1f} | {summary} |")
    speed = record["checks"].get("speed", {})
    if speed.get("rows"):
        lines += ["", f"Seconds per iteration on {speed['data']} (median after one warm-up iteration), "
                  "beside the committed CPU figures:", "",
                  "| method | ipc | variant | seconds (this device) | CPU seconds | ratio | CPU source |",
                  "|---|---|---|---|---|---|---|"]
        for r in speed["rows"]:
            note = r.get("error") or r.get("note") or ""
            lines.append(f"| {r['method']} | {r['ipc']} | {r['variant']} | {_num(r.get('seconds'))}"
                         f"{' (' + note + ')' if note else ''} | {_num(r.get('cpu_seconds'))} | "
                         f"{_num(r.get('over_cpu'))} | {r.get('cpu_source') or '-'} |")
    return "\n".join(lines) + "\n"


def run_all(device: str, size: Size = FULL, out: Path = RESULTS / "gpu_check", checks=CHECK_NAMES,
            data_dir=None, command: str = "python benchmarks/gpu_check.py") -> int:
    """Run ``checks`` on ``device``, write ``<out>.json`` and ``<out>.md``; 1 if any failed, else 0."""
    functions = {"cuda_tests": check_cuda_tests, "fits": check_fits, "determinism": check_determinism,
                 "bf16": check_bf16, "distributed": check_distributed, "speed": check_speed}
    start = time.perf_counter()
    record = {"command": command, "machine": machine(device), "checks": {}}
    for name in checks:
        kwargs = {"device": device, "size": size, **({"data_dir": data_dir} if name == "speed" else {})}
        record["checks"][name] = run_check(name, functions[name], **kwargs)
    failed = [n for n, r in record["checks"].items() if r["status"] == "fail"]
    record["seconds"] = round(time.perf_counter() - start, 1)
    record["result"] = f"FAILED ({', '.join(failed)})" if failed else "all checks passed"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".json"), json.dumps(record, indent=2, default=str) + "\n")
    write_text_atomic(out.with_suffix(".md"), to_markdown(record))
    print("\nsummary:")
    for name, res in record["checks"].items():
        print(f"  {name:12s} {res['status']:5s} {res['seconds']:7.1f} s  {res['summary']}")
    print(f"{record['result']} in {record['seconds']:.0f} s; wrote {out.with_suffix('.json')} and "
          f"{out.with_suffix('.md')}", flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="CUDA device to check (default: cuda)")
    parser.add_argument("--checks", nargs="+", choices=CHECK_NAMES, default=list(CHECK_NAMES))
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: gradmatch's)")
    parser.add_argument("--out", default=str(RESULTS / "gpu_check"), help="output path without extension")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing to check (nothing written).")
        return 0
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/gpu_check.py", *given])
    return run_all(args.device, FULL, Path(args.out), args.checks, args.data_dir, command)


if __name__ == "__main__":
    sys.exit(main())

"""A condensed set as a cheap proxy for choosing an architecture.

The paper's use case: condense the training data once, then rank candidate
networks by training each on the small condensed set instead of on the whole
training data. This script condenses the data (or loads a released set),
trains every built-in network of :data:`gradmatch.networks.MODELS` that
accepts the input (a) on the condensed set, normalised with the real data's
statistics, and (b) on the real training data, scores both on the real test
set, and reports how well the cheap ranking (a) agrees with the expensive one
(b), and what it saved.

Usage::

    python examples/architecture_proxy.py                        # digits, the default budget
    python examples/architecture_proxy.py --quick                # a tiny smoke run, seconds
    python examples/architecture_proxy.py --dataset fashion-mnist --released md \\
        --real-per-class 100 --test-per-class 100      # a released set, all 8 networks (not timed)
    python examples/architecture_proxy.py --dataset fashion-mnist --iterations 100 \\
        --real-per-class 100 --test-per-class 100      # condense it here (not timed)

It prints the settings and budget, then a markdown table: per architecture
the test accuracy (mean +- std over ``--models`` networks, in %) and the
seconds its networks took (training and the test pass) on the condensed set
and on the real data, and each one's rank; then Spearman's rank correlation
between the two rankings and the time saved: the seconds of (b) against
those of (a) plus the condensation's (for a released set, the seconds its
manifest records), and against those of (a) alone. Architectures that do
not accept the input are listed as skipped with the reason: digits' 8x8
images are too small for LeNet, VGG11(BN) and ResNet18(BN), so digits ranks
three networks (ConvNet, MLP, AlexNet) and Spearman over three ranks is
coarse (without ties it can only be -1, -0.5, 0.5 or 1); Fashion-MNIST
(28x28) ranks all eight.

Budget (options override it): the condensation is
``GradientMatchingCondenser(ipc=--ipc, iterations=--iterations)`` with its
defaults (multi-level matching, cos+l2, DC's ConvNet); each architecture gets
``--models`` networks (seeds ``seed + i``) trained with DC's recipe, for
``--epochs`` epochs on the condensed set (DC's 300) and ``--real-epochs`` on
the real data (reduced for a CPU: at 20 epochs AlexNet is far from
converged on digits, so the real ranking is that budget's ranking).
Defaults: ipc 1, K = 50, 2 networks, 300 and 20 epochs, the whole of digits
(1,347 training / 450 test images); measured with ``--threads 1`` on a
2-core AMD EPYC that was also running another job: 3 min 11 s and 3 min 19 s
in two runs (45 s condensing, 21 s training on the condensed set, 2 min on
the real data). ``--quick``: K = 2, 1 network, 10 and 1 epochs, about 12 s.
Fashion-MNIST condensed here costs about 9 s per iteration at ipc 1 on 2
cores; training the eight networks on all 60,000 images is a job for a GPU,
so ``--real-per-class`` and ``--test-per-class`` take a stratified subset.

Writes into ``--out`` (default ``compare_results/architecture_proxy/``)
``<name>.json`` (settings, machine, per-architecture accuracies and seconds,
skipped networks, rankings, Spearman, times) and ``<name>.png`` (accuracy on
the condensed set against accuracy on the real data, one labelled point per
architecture), with ``<name>`` = ``<dataset>_ipc<k>`` (``..._released-<method>``
for a released set).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gradmatch.networks
from gradmatch import GradientMatchingCondenser, __version__
from gradmatch.atomic import write_text_atomic
from gradmatch.datasets import DatasetError, load_condensed, load_digits_images, load_fashion_mnist
from gradmatch.evaluation import evaluate_set
from gradmatch.networks import build_model, check_network_fits

DATASETS = ("digits", "fashion-mnist")
DEFAULTS = dict(iterations=50, epochs=300, real_epochs=20, models=2)
QUICK = dict(iterations=2, epochs=10, real_epochs=1, models=1)


# ----------------------------------------------------------------- Spearman's rank correlation
def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values`` in ascending order; tied values share the mean of their ranks."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equal-length sequences (NaN when a ranking is constant)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman needs two 1-D sequences of one length, got {a.shape} and {b.shape}")
    ra, rb = average_ranks(a) - (len(a) + 1) / 2, average_ranks(b) - (len(b) + 1) / 2
    denominator = np.sqrt(np.sum(ra ** 2) * np.sum(rb ** 2))
    return float(np.sum(ra * rb) / denominator) if denominator > 0 else float("nan")


# ----------------------------------------------------------------- arguments and data
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def parse_args(argv=None):
    """The parser and its arguments, with the budget filled in from the defaults or ``--quick``."""
    parser = argparse.ArgumentParser(prog="architecture_proxy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", choices=DATASETS)
    parser.add_argument("--released", nargs="?", const="md", default=None, metavar="METHOD",
                        help="use the released Fashion-MNIST set of METHOD (default md) instead of condensing")
    parser.add_argument("--ipc", type=_positive, default=1, help="images per class of the condensed set")
    parser.add_argument("--iterations", type=_positive, help="condensation iterations K (default 50)")
    parser.add_argument("--epochs", type=_positive, help="epochs on the condensed set (default 300)")
    parser.add_argument("--real-epochs", type=_positive, help="epochs on the real data (default 20)")
    parser.add_argument("--models", type=_positive, help="networks per architecture and set (default 2)")
    parser.add_argument("--architectures", nargs="+", metavar="NAME",
                        help="networks to rank (default: every built-in one that accepts the input)")
    parser.add_argument("--real-per-class", type=_positive, help="a stratified subset of the training data")
    parser.add_argument("--test-per-class", type=_positive, help="a stratified subset of the test data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=_positive, default=1, help="parallel training processes (default 1)")
    parser.add_argument("--threads", type=_positive, help="torch threads of this process (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="a tiny budget: K=2, 1 network, 10 / 1 epochs")
    parser.add_argument("--verbose", type=int, default=0, help="the condenser's progress bar")
    parser.add_argument("--out", default="compare_results/architecture_proxy")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = sorted(set(args.architectures or ()) - set(gradmatch.networks.MODELS))
    if unknown:
        parser.error(f"unknown architecture {unknown[0]!r}: choose from {', '.join(gradmatch.networks.MODELS)}")
    if args.released and args.dataset != "fashion-mnist":
        parser.error("released sets exist for fashion-mnist only: add --dataset fashion-mnist")
    if args.released:
        try:
            load_condensed("fashion-mnist", ipc=args.ipc, method=args.released)
        except ValueError as err:
            parser.error(str(err))
    return parser, args


def _per_class(X, y, n, seed):
    """A stratified random subset of ``n`` samples per class (all of them when ``n`` is None)."""
    if n is None:
        return X, y
    rng = np.random.default_rng(seed)
    idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in np.unique(y)]))
    return X[idx], y[idx]


def load_data(args):
    """``(X, y), (X_test, y_test)`` of the chosen dataset, subset as asked."""
    (X, y), (X_test, y_test) = load_digits_images() if args.dataset == "digits" else load_fashion_mnist()
    return (_per_class(X, y, args.real_per_class, args.seed),
            _per_class(X_test, y_test, args.test_per_class, args.seed + 1))


def condensed_set(args, X, y):
    """``(X_set, y_set, normalization, record)``: condensed here, or a released set."""
    if args.released:
        X_set, y_set, info = load_condensed("fashion-mnist", ipc=args.ipc, method=args.released)
        record = dict(source=f"released {info['name']}", seconds=float(info["fit_seconds"]), K=info["K"],
                      seconds_note="recorded when the set was made", machine=info["machine"])
        return X_set, y_set, info["normalization"], record
    start = time.perf_counter()
    condenser = GradientMatchingCondenser(ipc=args.ipc, iterations=args.iterations, random_state=args.seed,
                                          verbose=args.verbose)
    X_set, y_set = condenser.fit_resample(X, y)
    record = dict(source="GradientMatchingCondenser (defaults)", seconds=time.perf_counter() - start,
                  K=args.iterations, seconds_note="measured in this run")
    return X_set, y_set, condenser.normalization_, record


def fitting_architectures(names, sample_shape):
    """The names whose network accepts inputs of ``sample_shape``, and ``{name: why not}`` for the others."""
    shape = tuple(sample_shape) if len(sample_shape) == 3 else (1,) + tuple(sample_shape)
    fit, skipped = [], {}
    for name in names:
        try:
            check_network_fits(build_model(name, shape, 10), torch.zeros((2,) + shape), 10)
            fit.append(name)
        except ValueError as err:
            skipped[name] = str(err)
    return fit, skipped


# ----------------------------------------------------------------- training and the record
def score(X_set, y_set, X_test, y_test, normalization, name, epochs, args) -> dict:
    """``--models`` networks of architecture ``name`` trained on the set: accuracies and seconds."""
    start = time.perf_counter()
    result = evaluate_set(X_set, y_set, X_test, y_test, normalization=normalization, model=name,
                          n_models=args.models, epochs=epochs, random_state=args.seed, device="cpu",
                          n_jobs=args.jobs)
    return dict(accuracies=result.accuracies, mean=result.mean, std=result.std,
                seconds=time.perf_counter() - start, epochs=epochs)


def summarise(results: dict, condensation_seconds: float) -> dict:
    """Rankings (best first), Spearman's rho between them, and the times of both routes."""
    names = list(results)
    proxy = [results[n]["condensed"]["mean"] for n in names]
    real = [results[n]["real"]["mean"] for n in names]
    rank = {key: sorted(names, key=lambda n: -results[n][key]["mean"]) for key in ("condensed", "real")}
    proxy_seconds = sum(r["condensed"]["seconds"] for r in results.values())
    real_seconds = sum(r["real"]["seconds"] for r in results.values())
    cost = proxy_seconds + condensation_seconds
    rho = spearman(proxy, real) if len(names) > 1 else float("nan")
    return dict(ranking=rank, spearman=None if np.isnan(rho) else rho,
                seconds=dict(condensed_training=proxy_seconds, condensation=condensation_seconds,
                             proxy_total=cost, real_training=real_seconds, saved=real_seconds - cost,
                             speedup=real_seconds / cost if cost > 0 else float("inf"),
                             training_speedup=real_seconds / proxy_seconds if proxy_seconds > 0 else float("inf")))


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(platform=platform.platform(), cpu=cpu, cpu_count=os.cpu_count(),
                torch_threads=torch.get_num_threads(), torch=torch.__version__, gradmatch=__version__,
                device="cpu")


# ----------------------------------------------------------------- reporting
def markdown_table(record: dict) -> str:
    """The per-architecture table and the summary lines under it."""
    ranks = {key: {n: i + 1 for i, n in enumerate(order)} for key, order in record["ranking"].items()}
    lines = ["| architecture | condensed set: accuracy (%) | seconds | real data: accuracy (%) | seconds "
             "| rank (condensed) | rank (real) |", "|---|---|---|---|---|---|---|"]
    for name, res in record["architectures"].items():
        cells = [f"{100 * res[k]['mean']:.1f} +- {100 * res[k]['std']:.1f} | {res[k]['seconds']:.1f}"
                 for k in ("condensed", "real")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {ranks['condensed'][name]} | {ranks['real'][name]} |")
    t, rho = record["seconds"], record["spearman"]
    lines.append("")
    lines.append(f"Spearman's rank correlation: {rho:.2f} over {len(record['architectures'])} architectures"
                 if rho is not None else "Spearman's rank correlation: undefined (fewer than two ranks differ)")
    verdict = (f"saved {t['saved']:.1f} s ({t['speedup']:.1f}x faster)" if t["saved"] >= 0
               else f"nothing saved: the proxy took {-t['saved']:.1f} s more")
    lines.append(f"time: real data {t['real_training']:.1f} s; condensed set {t['condensed_training']:.1f} s "
                 f"+ condensation {t['condensation']:.1f} s = {t['proxy_total']:.1f} s; {verdict}; "
                 f"training alone {t['training_speedup']:.1f}x faster (a condensed set is made once, reused)")
    for name, why in record["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def plot(record: dict, path: Path) -> None:
    """Accuracy on the condensed set against accuracy on the real data, one labelled point each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gradmatch.plotting import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    try:
        for name, res in record["architectures"].items():
            x, y = 100 * res["real"]["mean"], 100 * res["condensed"]["mean"]
            ax.errorbar([x], [y], xerr=[100 * res["real"]["std"]], yerr=[100 * res["condensed"]["std"]],
                        fmt="o", color="tab:blue", capsize=3)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=9)
        ax.set_xlabel(f"accuracy trained on the real data (%), {record['settings']['real_epochs']} epochs")
        ax.set_ylabel(f"accuracy trained on the condensed set (%), {record['settings']['epochs']} epochs")
        rho = record["spearman"]
        ax.set_title(f"{record['settings']['dataset']}, ipc {record['settings']['ipc']}: Spearman "
                     + ("undefined" if rho is None else f"{rho:.2f}"), fontsize=10)
        ax.margins(0.15)
        ax.grid(alpha=0.3)
        save_figure(fig, path)
    finally:
        plt.close(fig)


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        (X, y), (X_test, y_test) = load_data(args)
    except DatasetError as err:
        parser.error(str(err))
    names, skipped = fitting_architectures(args.architectures or gradmatch.networks.MODELS, X.shape[1:])
    set_note = f"released {args.released} set" if args.released else f"K={args.iterations} iterations"
    print(f"gradmatch {__version__}: {args.dataset}, {len(X)} training / {len(X_test)} test images, "
          f"ipc {args.ipc} ({set_note}), architectures {', '.join(names) or 'none'}")
    print(f"budget{' quick' if args.quick else ''}: {args.models} network(s) per architecture, {args.epochs} "
          f"epochs on the condensed set, {args.real_epochs} on the real data; {torch.get_num_threads()} "
          f"torch thread(s), {args.jobs} process(es)")
    if not names:
        parser.error("no architecture accepts this input: " + "; ".join(skipped.values()))
    X_set, y_set, normalization, condensation = condensed_set(args, X, y)
    print(f"condensed set: {len(X_set)} images, {condensation['source']}, {condensation['seconds']:.1f} s "
          f"({condensation['seconds_note']})", flush=True)
    results = {}
    for name in names:
        results[name] = dict(condensed=score(X_set, y_set, X_test, y_test, normalization, name, args.epochs, args),
                             real=score(X, y, X_test, y_test, normalization, name, args.real_epochs, args))
        print(f"  {name}: condensed {100 * results[name]['condensed']['mean']:.1f} %, real "
              f"{100 * results[name]['real']['mean']:.1f} %", flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "verbose", "threads")}
    settings["architectures"], settings["n_train"], settings["n_test"] = names, len(X), len(X_test)
    record = dict(settings=settings, machine=machine(), condensation=condensation, architectures=results,
                  skipped=skipped, **summarise(results, condensation["seconds"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}_ipc{args.ipc}" + (f"_released-{args.released}" if args.released else "")
    write_text_atomic(out / f"{stem}.json", json.dumps(record, indent=2, default=str) + "\n")
    plot(record, out / f"{stem}.png")
    print()
    print(markdown_table(record))
    print(f"\nwrote {out / (stem + '.json')} and {out / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

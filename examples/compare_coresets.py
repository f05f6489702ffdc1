"""Compare coreset selection with gradient- and distribution-matching condensation on one dataset.

Builds training sets of ``--ipc`` images per class with

* ``random``:  RandomCoreset, class-balanced random real images;
* ``herding``: Herding in the feature space of a trained ConvNet;
* ``dc``:      DC's baseline (intra-class matching, cosine distance, fixed schedule);
* ``m``:       the paper's multi-level matching (intra + inter class);
* ``md``:      M + the angle-and-magnitude distance (cos + l2);
* ``mda``:     MD + the adaptive schedule of network steps (paper eq. 12);
* ``mdo``:     MD + the "train until overfitting" schedule;

and, when asked with ``--methods``, DC, MD and MDA with differentiable siamese
augmentation (``dc+dsa``, ``md+dsa``, ``mda+dsa``; Zhao and Bilen 2021);
MD with multi-formation sets (``md+f2``: IDC, Kim et al. 2022; factor 2 and
the mix initialisation, so each stored image decodes into 4 training images
and a set trains networks on 4 x ``--ipc`` images per class; digits' 8x8
images decode into 4x4 parts), with representative real batches (``md+rep``:
DREAM, Liu et al. 2023; k-means in the network's embedding every 10 matching
steps), and with both (``md+f2+rep``);
and distribution matching (``dm``: DistributionMatchingCondenser, Zhao and
Bilen 2023, with its published settings: real initialisation, DSA, image
learning rate 1.0 with momentum 0.5, real batches of 256 per class, for
``--dm-iterations`` iterations), whose sets are evaluated the DSA way, as
DSA's and DM's papers do: augmented batches for ``--dsa-epochs`` (1000)
epochs. Digits and MNIST get DSA's strategy without flip. It scores
them each with the evaluation protocol: ``--repeats`` sets per method
(seeds ``seed + 1000 r``), ``--eval-models`` ConvNets trained from scratch on
each set for ``--epochs`` epochs and tested on the real test set; accuracies
are pooled over all networks of a method (mean +- std, n networks).

``--eval-recipe`` chooses how the networks are trained: ``dc`` (the
default) is DC's recipe as above (batch 256, learning rate x0.1 at half
the epochs; the +dsa and dm sets with DSA for ``--dsa-epochs``); ``idc``
trains the networks of every method, the +dsa and dm ones too, by IDC's
recipe (:func:`gradmatch.training.idc_recipe`: batch 64, learning rate x0.2
at 2/3 and 5/6 of the epochs, DSA without cutout, CutMix with probability
0.5) for ``--epochs`` epochs, 1000 (IDC's) unless ``--epochs`` is given;
without flip on digits and MNIST. The recipe is printed with the settings,
named above each table and recorded in the JSON file, so every number says
which recipe made it. The paper column shows the paper's Table 3 only
(DC's recipe); IDC's own figures are not shown.

At ipc 1 an iteration has a single matching step (DC's T = 1), so no network
steps are ever taken and the schedule has no effect: MDA and MDO are MD there
and are skipped.

Datasets are read by :func:`gradmatch.datasets.load_dataset` (``--dataset``,
``--data-dir``); nothing is downloaded. scikit-learn's digits needs no files.

Budgets (explicit options override them):

* ``quick`` (default): K = 50 iterations, 2 sets x 4 networks, 300 epochs;
  sized for digits at ipc 1: about 450 CPU-seconds in all, so roughly four
  minutes on 2 otherwise idle CPU cores (the +dsa methods and ``dm``, not run
  by default, add their 1000-epoch evaluations); ``dm`` runs 50 iterations
  too (on digits at ipc 1 one costs about 0.6 of an MD iteration);
* ``paper``: K = 1000, 2 sets x 50 networks, 300 epochs (the paper's
  protocol; needs a GPU beyond digits); ``dm`` runs DM's published 20,000
  iterations, each one update with no network training, so far cheaper
  than a gradient-matching iteration at ipc 10 or 50.

Writes into ``--out`` (default ``compare_results/``): ``<dataset>_ipc<k>.json``
(settings, machine, accuracies and seconds per method), ``..._accuracy.png``
(bar chart) and ``..._sets.png`` (each method's first set).

Usage::

    python examples/compare_coresets.py                            # digits, ipc 1, quick
    python examples/compare_coresets.py --ipc 10 --methods random dc md mda
    python examples/compare_coresets.py --methods dc md dc+dsa md+dsa
    python examples/compare_coresets.py --methods random md+dsa dm --dm-iterations 200
    python examples/compare_coresets.py --methods random md md+f2 md+rep md+f2+rep
    python examples/compare_coresets.py --methods md md+f2 --eval-recipe idc   # 1000 epochs by IDC's recipe
    python examples/compare_coresets.py --dataset fashion-mnist --budget paper   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser, Herding, RandomCoreset, __version__
from gradmatch.atomic import write_text_atomic
from gradmatch.augment import DSA_STRATEGY
from gradmatch.condenser import VARIANTS
from gradmatch.datasets import DATASET_NAMES, FASHION_MNIST_DIR, DatasetError, load_dataset
from gradmatch.evaluation import evaluate_set
from gradmatch.schedules import default_loops
from gradmatch.training import idc_recipe, lr_milestones

# ----------------------------------------------------------------- methods
#: Selectors, then condensers, in the order of the paper's Table 3 (run by default).
METHODS = ("random", "herding", "dc", "m", "md", "mda", "mdo")
#: Beyond the paper, run only when named in --methods: gradient matching with DSA ...
DSA_METHODS = ("dc+dsa", "md+dsa", "mda+dsa")
#: ... MD with multi-formation sets (IDC, factor 2), representative real batches (DREAM), both ...
FORMATION_METHODS = ("md+f2", "md+rep", "md+f2+rep")
#: ... and distribution matching (Zhao and Bilen 2023).
DM_METHODS = ("dm",)
EXTRA_METHODS = DSA_METHODS + FORMATION_METHODS + DM_METHODS
#: Methods that learn with DSA and whose sets are evaluated with it for --dsa-epochs.
DSA_EVALUATED = DSA_METHODS + DM_METHODS

#: DM's published settings (its DSA strategy is added per dataset, see dsa_strategy).
DM_SETTINGS = dict(init="real", lr_syn=1.0, momentum_syn=0.5, batch_real=256)

#: Condenser settings of each method: the paper's named variants, with DSA, and MD with IDC's
#: multi-formation and DREAM's representative batches (the benchmark's md-f2, md-rep, md-f2-rep).
CONDENSERS = {**VARIANTS, **{f"{m}+dsa": dict(VARIANTS[m], augment="dsa") for m in ("dc", "md", "mda")},
              "md+f2": dict(VARIANTS["md"], factor=2, init="mix"),
              "md+rep": dict(VARIANTS["md"], real_sampling="representative"),
              "md+f2+rep": dict(VARIANTS["md"], factor=2, init="mix", real_sampling="representative")}

LABELS = {"random": "Random", "herding": "Herding", "dc": "DC baseline", "m": "Ours-M",
          "md": "Ours-MD", "mda": "Ours-MDA", "mdo": "Ours-MDO",
          "dc+dsa": "DC+DSA", "md+dsa": "Ours-MD+DSA", "mda+dsa": "Ours-MDA+DSA",
          "md+f2": "Ours-MD+F2", "md+rep": "Ours-MD+REP", "md+f2+rep": "Ours-MD+F2+REP", "dm": "DM"}

#: Methods whose only difference from another is the schedule (no effect when T = 1).
SCHEDULE_VARIANTS = ("mda", "mdo", "mda+dsa")

#: Datasets whose mirror images are another class or none: DSA without flip.
NO_FLIP_DATASETS = ("digits", "mnist")

#: Training recipes of the evaluation networks (--eval-recipe): DC's, or IDC's (training.idc_recipe).
EVAL_RECIPES = ("dc", "idc")
#: Epochs of IDC's recipe unless --epochs says otherwise (IDC's published figures).
IDC_EPOCHS = 1000

#: The paper's Table 3 on Fashion-MNIST (accuracy %, by ipc), drawn as reference lines.
#: (Ours only, with DC's recipe: the multi-formation methods have no figure here.)
PAPER_FASHION_MNIST = {
    "random": {1: 51.4, 10: 73.8, 50: 82.5}, "herding": {1: 67.0, 10: 71.1, 50: 71.9},
    "dc": {1: 70.5, 10: 82.3, 50: 83.6}, "m": {1: 70.6, 10: 84.4, 50: 87.8},
    "md": {1: 71.4, 10: 85.4, 50: 87.4}, "mdo": {10: 84.6, 50: 87.9}, "mda": {10: 84.2, 50: 87.9},
}

BUDGETS = {
    "quick": dict(iterations=50, dm_iterations=50, repeats=2, eval_models=4, epochs=300),
    "paper": dict(iterations=1000, dm_iterations=20000, repeats=2, eval_models=50, epochs=300),
}


# ----------------------------------------------------------------- the protocol
def dsa_strategy(dataset: str) -> str:
    """DSA's strategy for ``dataset``: every operation, less flip for digits and MNIST."""
    return DSA_STRATEGY.replace("_flip", "") if dataset in NO_FLIP_DATASETS else DSA_STRATEGY


def eval_recipe(name: str, epochs: int, dataset: str):
    """The TrainRecipe of ``--eval-recipe name``: None for DC's (evaluate_set's default), IDC's otherwise."""
    return idc_recipe(epochs, flip=dataset not in NO_FLIP_DATASETS) if name == "idc" else None


def describe_recipe(name: str, epochs: int, dataset: str) -> str:
    """One line on the recipe the evaluation networks are trained with."""
    if name == "dc":
        return "DC's recipe (batch 256, lr x0.1 at half the epochs)"
    recipe = eval_recipe(name, epochs, dataset)
    at = " and ".join(map(str, lr_milestones(recipe.epochs, recipe.lr_steps))) or "no epoch"
    return (f"IDC's recipe (batch {recipe.batch_size}, lr x{recipe.lr_decay:g} at epochs {at}, DSA "
            f"{recipe.augment.strategy}, CutMix p {recipe.mix_prob:g})")


def make_reducer(method: str, ipc: int, seed: int, iterations: int, herding_epochs, device: str,
                 augment: str | None = None):
    if method == "random":
        return RandomCoreset(ipc=ipc, random_state=seed)
    if method == "herding":
        return Herding(ipc=ipc, feature_epochs=herding_epochs, random_state=seed, device=device)
    if method == "dm":
        return DistributionMatchingCondenser(ipc=ipc, iterations=iterations, augment=augment, random_state=seed,
                                             device=device, **DM_SETTINGS)
    settings = dict(CONDENSERS[method])
    if "augment" in settings:
        settings["augment"] = augment
    return GradientMatchingCondenser(ipc=ipc, iterations=iterations, random_state=seed, device=device,
                                     **settings)


def run_set(task: dict, data, threads: int | None) -> dict:
    """Build one set (timed) and score it with ``eval_models`` fresh networks: one repeat of the protocol.

    The same as repeat ``r`` of :func:`gradmatch.evaluation.evaluate_reducer`
    with ``random_state=seed``: the set and the networks are seeded
    ``seed + 1000 r`` (networks ``+ i``). Runs in a worker process when
    ``--jobs`` > 1.
    """
    if threads:
        torch.set_num_threads(threads)
    (X, y), (X_test, y_test) = data
    reducer = make_reducer(task["method"], task["ipc"], task["seed"], task["iterations"],
                           task["herding_epochs"], task["device"], task["augment"])
    start = time.perf_counter()
    X_set, y_set = reducer.fit_resample(X, y)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate_set(X_set, y_set, X_test, y_test, normalization=reducer.normalization_,
                          input_shape=getattr(reducer, "input_shape", None), n_models=task["eval_models"],
                          epochs=task["epochs"], recipe=eval_recipe(task["recipe"], task["epochs"], task["dataset"]),
                          augment=task["eval_augment"], random_state=task["seed"], device=task["device"], n_jobs=1)
    extra = {}
    if getattr(reducer, "X_stored_", None) is not None:
        extra["stored_size"] = len(reducer.X_stored_)
    if hasattr(reducer, "n_iter_"):
        extra["iterations_run"] = int(reducer.n_iter_)
    if getattr(reducer, "feature_train_accuracy_", None) is not None:
        extra["herding_feature_train_accuracy"] = reducer.feature_train_accuracy_
    return {**task, "accuracies": result.accuracies, "fit_seconds": fit_seconds,
            "eval_seconds": time.perf_counter() - start, "X_set": np.asarray(X_set),
            "y_set": np.asarray(y_set), **extra}


# ----------------------------------------------------------------- statistics
def summarize(accs) -> dict:
    a = np.asarray(accs, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


def compare_adjacent(ranked: list[tuple[str, list[float]]]) -> list[dict]:
    """For each method and the next one in the ranking: difference and twice its standard error.

    The standard error of the difference of means, ``sqrt(s_a^2/n_a + s_b^2/n_b)``,
    uses the sample standard deviations (ddof = 1) of all the networks of each
    method, so it pools network-to-network and set-to-set spread.
    """
    rows = []
    for (a, acc_a), (b, acc_b) in zip(ranked, ranked[1:]):
        xa, xb = np.asarray(acc_a), np.asarray(acc_b)
        diff = float(xa.mean() - xb.mean())
        if len(xa) < 2 or len(xb) < 2:
            se, verdict = None, "cannot tell (fewer than 2 networks)"
        else:
            se = math.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb))
            verdict = "yes" if diff > 2 * se else "no, within noise"
        rows.append({"better": a, "worse": b, "difference": diff,
                     "two_se": None if se is None else 2 * se, "beyond_noise": verdict})
    return rows


def machine_info(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "gradmatch": __version__,
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"}
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------- command line
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="compare_coresets.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)

    def positive(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
        return value

    parser.add_argument("--dataset", default="digits",
                        help=f"one of {', '.join(DATASET_NAMES)}, read by gradmatch.datasets.load_dataset "
                             "(default digits)")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder of the dataset's files (fashion-mnist: {FASHION_MNIST_DIR} by default; "
                             "mnist, cifar10, cifar100 and svhn need it; none for digits)")
    parser.add_argument("--ipc", type=positive, default=1, help="images per class (default 1)")
    parser.add_argument("--budget", default="quick", choices=sorted(BUDGETS),
                        help="preset of the five options below (default quick)")
    parser.add_argument("--iterations", type=positive, help="outer iterations K of the gradient-matching condensers")
    parser.add_argument("--dm-iterations", type=positive,
                        help="iterations of dm (quick 50, paper 20000: DM's published count)")
    parser.add_argument("--repeats", type=positive, help="sets built per method, each with its own seed")
    parser.add_argument("--eval-models", type=positive, help="networks trained on each set")
    parser.add_argument("--epochs", type=positive,
                        help=f"training epochs of each evaluation network (default: the budget's with "
                             f"--eval-recipe dc, {IDC_EPOCHS} with idc)")
    parser.add_argument("--dsa-epochs", type=positive, default=1000,
                        help="training epochs of the evaluation networks of the +dsa methods and dm with "
                             "--eval-recipe dc (default 1000)")
    parser.add_argument("--eval-recipe", choices=EVAL_RECIPES, default="dc",
                        help="how every evaluation network is trained: dc (DC's recipe, the +dsa and dm sets "
                             "with DSA for --dsa-epochs; default) or idc (IDC's: batch 64, lr x0.2 at 2/3 and "
                             "5/6, DSA without cutout, flip but not on digits and mnist, CutMix p 0.5)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"subset of {' '.join(METHODS + EXTRA_METHODS)} (default: all that apply "
                             "of the paper's, without the +dsa, +f2 and +rep ones and dm)")
    parser.add_argument("--herding-epochs", default="auto",
                        help="epochs of Herding's feature network (default auto: the library's rule)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--jobs", type=positive, default=None,
                        help="worker processes, one set each at a time (default: the CPUs available; 1 on a GPU)")
    parser.add_argument("--threads", type=positive, default=1,
                        help="torch threads per process (default 1: the networks are small, and more threads "
                             "slow down badly on a busy machine)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--out", default="compare_results", help="output folder (default compare_results/)")
    args = parser.parse_args(argv)

    args.dataset = args.dataset.strip().lower().replace("_", "-")
    if args.dataset not in DATASET_NAMES:
        parser.error(f"unknown dataset {args.dataset!r}: choose from {', '.join(DATASET_NAMES)}")
    if args.eval_recipe == "idc" and args.epochs is None:
        args.epochs = IDC_EPOCHS
    for key, value in BUDGETS[args.budget].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    requested = METHODS if args.methods is None else [
        m.strip().lower() for item in args.methods for m in item.split(",") if m.strip()]
    unknown = [m for m in requested if m not in METHODS + EXTRA_METHODS]
    if unknown:
        parser.error(f"unknown method{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                     f"choose from {', '.join(METHODS + EXTRA_METHODS)}")
    if args.herding_epochs != "auto":
        try:
            args.herding_epochs = positive(args.herding_epochs)
        except argparse.ArgumentTypeError as err:
            parser.error(f"argument --herding-epochs: {err} or 'auto'")
    try:
        from gradmatch.runtime import resolve_device

        args.device = str(resolve_device(args.device))
    except ValueError as err:
        parser.error(f"argument --device: {err}")
    # At T = 1 matching step per iteration no network step is taken: the schedule cannot matter.
    single_step = default_loops(args.ipc)[0] == 1
    args.skipped = [m for m in SCHEDULE_VARIANTS if m in requested] if single_step else []
    args.methods = [m for m in METHODS + EXTRA_METHODS if m in requested and m not in args.skipped]
    if not args.methods:
        parser.error(f"nothing to run: {', '.join(args.skipped)} equal md at ipc {args.ipc}; add md")
    return parser, args


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        data = load_dataset(args.dataset, args.data_dir)
    except (DatasetError, ValueError, ImportError) as err:
        parser.error(str(err))
    (X, y), (X_test, y_test) = data
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < args.ipc:
        parser.error(f"--ipc {args.ipc} is more than the smallest class of {args.dataset} holds ({counts.min()})")
    on_gpu = args.device.startswith("cuda")
    jobs = 1 if on_gpu else (args.jobs or available_cpus())
    dsa = dsa_strategy(args.dataset)
    # DC's recipe scores the +dsa and dm sets the DSA way (DSA for --dsa-epochs); IDC's scores every set alike.
    dsa_evaluated = [m for m in args.methods if m in DSA_EVALUATED and args.eval_recipe == "dc"]
    recipe_text = describe_recipe(args.eval_recipe, args.epochs, args.dataset)
    idc_strategy = eval_recipe("idc", args.epochs, args.dataset).augment.strategy
    tasks = [dict(method=m, repeat=r, seed=args.seed + 1000 * r, ipc=args.ipc,
                  iterations=args.dm_iterations if m in DM_METHODS else args.iterations,
                  herding_epochs=args.herding_epochs, eval_models=args.eval_models,
                  epochs=args.dsa_epochs if m in dsa_evaluated else args.epochs,
                  augment=dsa if m in DSA_EVALUATED else None, eval_augment=dsa if m in dsa_evaluated else None,
                  recipe=args.eval_recipe, dataset=args.dataset, device=args.device)
             for m in args.methods for r in range(args.repeats)]
    jobs = min(jobs, len(tasks))
    condensers = [m for m in args.methods if m in CONDENSERS or m in DM_METHODS]
    machine = machine_info(args.device)

    shape = "x".join(map(str, np.asarray(X).shape[1:]))
    print(f"gradmatch {__version__}: {args.dataset}, {len(X)} training / {len(X_test)} test images of {shape}, "
          f"{len(classes)} classes; {args.ipc} image(s) per class ({args.ipc * len(classes)} per set)")
    print(f"budget {args.budget}: K={args.iterations} iterations per condensation, {args.repeats} set(s) x "
          f"{args.eval_models} network(s) per method (n={args.repeats * args.eval_models}), "
          f"{args.epochs} epochs per network; herding feature epochs {args.herding_epochs}; seed {args.seed}"
          + (f"; dm {args.dm_iterations} iterations" if "dm" in args.methods else "")
          + f"; evaluation by {recipe_text}")
    print(f"work: {len(condensers) * args.repeats} condensations, "
          f"{args.repeats if 'herding' in args.methods else 0} herding feature networks, "
          f"{len(tasks) * args.eval_models} evaluation networks; {jobs} process(es) x {args.threads} torch "
          f"thread(s) on {machine['device']}"
          + (f"; load average {machine['load_average_start'][0]:.1f} on {machine['cpu_count']} CPUs"
             if "load_average_start" in machine else ""))
    print(f"methods: {', '.join(args.methods)}")
    which = " and ".join(name for name, group in (("+dsa", DSA_METHODS), ("dm", DM_METHODS))
                         if any(m in group for m in args.methods))
    if dsa_evaluated:
        print(f"DSA strategy {dsa}; the {which} sets are evaluated with it for {args.dsa_epochs} epochs")
    elif which:
        print(f"DSA strategy {dsa} in the {which} condensations; IDC's recipe scores their sets like the "
              f"others' ({args.epochs} epochs; --dsa-epochs unused)")
    formations = {m: CONDENSERS[m]["factor"] for m in args.methods if CONDENSERS.get(m, {}).get("factor", 1) > 1}
    for factor in sorted(set(formations.values())):
        names = [m for m, f in formations.items() if f == factor]
        print(f"{', '.join(names)}: factor {factor}, each stored image decodes into {factor ** 2} training images: "
              f"{args.ipc} stored and {args.ipc * factor ** 2} trained on per class "
              f"({args.ipc * factor ** 2 * len(classes)} per set)")
    if args.skipped:
        print(f"skipped: {', '.join(args.skipped)}: at ipc {args.ipc} an iteration has a single matching step "
              f"(T = 1), so no network steps are taken and the schedule has no effect ({' = '.join(args.skipped)} "
              "= md)")
    print(flush=True)

    # Longest first, so that the workers finish together: condensers, herding, random.
    order = {m: i for i, m in enumerate(["mda+dsa", "md+dsa", "dc+dsa", "md+f2+rep", "md+f2", "md+rep", "dm",
                                         "mdo", "mda", "md", "m", "dc", "herding", "random"])}
    tasks.sort(key=lambda t: (t["repeat"], order[t["method"]]))
    width = max(7, *map(len, args.methods))
    threads_before = torch.get_num_threads()
    start = time.perf_counter()
    records = []
    try:
        if jobs == 1:
            torch.set_num_threads(args.threads)
            outputs = (run_set(task, data, None) for task in tasks)
        else:
            from joblib import Parallel, delayed

            outputs = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(run_set)(task, data, args.threads) for task in tasks)
        for rec in outputs:
            records.append(rec)
            acc = np.asarray(rec["accuracies"])
            print(f"  {rec['method']:>{width}} set {rec['repeat'] + 1}/{args.repeats}: {100 * acc.mean():5.1f} +- "
                  f"{100 * acc.std():.1f} % (n={acc.size}); built in {rec['fit_seconds']:.1f} s, "
                  f"scored in {rec['eval_seconds']:.1f} s", flush=True)
    finally:
        torch.set_num_threads(threads_before)
    total = time.perf_counter() - start
    if hasattr(os, "getloadavg"):
        machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]

    # ------------------------------------------------------------- results
    by_method = {}
    for m in args.methods:
        recs = sorted((r for r in records if r["method"] == m), key=lambda r: r["repeat"])
        accs = [a for r in recs for a in r["accuracies"]]
        by_method[m] = {
            "label": LABELS[m],
            "settings": ({**CONDENSERS[m], "augment": dsa} if m in DSA_METHODS
                         else {**DM_SETTINGS, "augment": dsa, "iterations": args.dm_iterations} if m in DM_METHODS
                         else CONDENSERS.get(m, {"selector": m})),
            "eval_recipe": args.eval_recipe,
            "eval_epochs": recs[0]["epochs"],
            "eval_augment": recs[0]["eval_augment"] if args.eval_recipe == "dc" else idc_strategy,
            "eval_mix": "cutmix" if args.eval_recipe == "idc" else None,
            "set_size": int(len(recs[0]["y_set"])),
            "stored_size": int(recs[0].get("stored_size", len(recs[0]["y_set"]))),
            "accuracies": accs,
            "per_set": [r["accuracies"] for r in recs],
            "set_means": [float(np.mean(r["accuracies"])) for r in recs],
            "seeds": [r["seed"] for r in recs],
            **summarize(accs),
            "fit_seconds": [r["fit_seconds"] for r in recs],
            "eval_seconds": [r["eval_seconds"] for r in recs],
            **({"iterations_run": [r["iterations_run"] for r in recs]} if "iterations_run" in recs[0] else {}),
            **({"herding_feature_train_accuracy": [r["herding_feature_train_accuracy"] for r in recs]}
               if m == "herding" and "herding_feature_train_accuracy" in recs[0] else {}),
        }
    paper = ({m: PAPER_FASHION_MNIST[m][args.ipc] for m in args.methods
              if args.ipc in PAPER_FASHION_MNIST.get(m, {})} if args.dataset == "fashion-mnist" else {})

    print()
    scored_by = (f"IDC's recipe for {args.epochs} epochs, every method" if args.eval_recipe == "idc" else
                 f"DC's recipe for {args.epochs} epochs"
                 + (f"; the {which} sets with DSA for {args.dsa_epochs}" if dsa_evaluated else ""))
    print(f"Test accuracy of ConvNets trained from scratch on each set by {scored_by} ({args.dataset}, "
          f"ipc {args.ipc}); mean +- std over n networks; seconds to build one set (mean over sets, "
          f"{args.threads} torch thread(s){', worker processes in parallel' if jobs > 1 else ''}):")
    print()
    head = "| method | accuracy (%) | n | seconds per set |" + (
        (" paper (%, DC's recipe) |" if args.eval_recipe == "idc" else " paper (%) |") if paper else "")
    print(head)
    print("|---|---|---|---|" + ("---|" if paper else ""))
    for m, res in by_method.items():
        row = (f"| {res['label']} ({m}) | {100 * res['mean']:.1f} +- {100 * res['std']:.1f} | {res['n']} | "
               f"{np.mean(res['fit_seconds']):.1f} |")
        if paper:
            row += f" {paper.get(m, '-')} |"
        print(row)
    ranked = sorted(((m, r["accuracies"]) for m, r in by_method.items()), key=lambda t: -np.mean(t[1]))
    pairs = compare_adjacent(ranked)
    if pairs:
        print()
        print("Ranking: " + " > ".join(m for m, _ in ranked) + ". Each method against the next one: is the "
              "difference beyond the pooled noise (2 x its standard error)?")
        print()
        print("| pair | difference (points) | 2 x standard error | beyond noise? |")
        print("|---|---|---|---|")
        for p in pairs:
            se = "-" if p["two_se"] is None else f"{100 * p['two_se']:.1f}"
            print(f"| {p['better']} vs {p['worse']} | {100 * p['difference']:+.1f} | {se} | {p['beyond_noise']} |")
        print()
        if args.repeats == 1:
            print("n counts networks, all trained on one set per method: the test sees network-to-network "
                  "noise only, not how much another set would differ; use --repeats 2 or more.")
        else:
            spread = {m: 100 * float(np.ptp([np.mean(a) for a in r["per_set"]])) for m, r in by_method.items()}
            widest = max(spread, key=spread.get)
            print(f"n counts networks, which are not independent when they share a set: the set means of a "
                  f"method differ by up to {spread[widest]:.1f} points ({widest}), and with {args.repeats} sets "
                  "per method the test is optimistic where that spread is large; more --repeats narrow it.")

    # ------------------------------------------------------------- files
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}_ipc{args.ipc}"
    settings = {"dataset": args.dataset, "data_dir": args.data_dir, "n_train": int(len(X)),
                "n_test": int(len(X_test)), "n_classes": int(len(classes)), "ipc": args.ipc,
                "budget": args.budget, "iterations": args.iterations, "dm_iterations": args.dm_iterations,
                "repeats": args.repeats,
                "eval_models": args.eval_models, "epochs": args.epochs, "dsa_epochs": args.dsa_epochs,
                "eval_recipe": args.eval_recipe, "eval_recipe_description": recipe_text,
                "herding_epochs": args.herding_epochs,
                "methods": args.methods, "skipped": args.skipped, "seed": args.seed, "jobs": jobs,
                "threads": args.threads, "device": args.device,
                "command": "python examples/compare_coresets.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    record = {"settings": settings, "machine": machine, "total_seconds": total, "methods": by_method,
              "ranking": [m for m, _ in ranked], "adjacent_pairs": pairs,
              "paper_fashion_mnist": paper or None}
    json_path = out / f"{stem}.json"
    write_text_atomic(json_path, json.dumps(record, indent=1))

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from gradmatch.plotting import plot_accuracies, plot_image_grid

    chart_path = out / f"{stem}_accuracy.png"
    fig = plot_accuracies({m: r["accuracies"] for m, r in by_method.items()},
                          reference={f"paper, {LABELS[m]}": v / 100 for m, v in paper.items()} or None,
                          title=f"{args.dataset}, {args.ipc} image(s) per class "
                                f"({args.repeats} set(s) x {args.eval_models} networks, "
                                f"{args.eval_recipe.upper()}'s recipe)",
                          path=chart_path)
    plt.close(fig)

    grid_path = out / f"{stem}_sets.png"
    firsts = {r["method"]: r for r in records if r["repeat"] == 0}
    per_class = max(len(r["y_set"]) for r in firsts.values()) // len(classes)  # decoded multi-formation sets
    fig, axes = plt.subplots(1, len(args.methods), squeeze=False, layout="constrained",
                             figsize=(len(args.methods) * max(1.6, 0.35 * per_class + 0.8),
                                      max(2.5, 0.3 * len(classes) + 1)))
    for ax, m in zip(axes[0], args.methods):
        plot_image_grid(firsts[m]["X_set"], firsts[m]["y_set"], classes=classes, ax=ax, title=m)
    fig.suptitle(f"first set of each method: {args.dataset}, ipc {args.ipc}")
    fig.savefig(grid_path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print()
    print(f"total {total:.0f} s. Wrote {json_path}, {chart_path} and {grid_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

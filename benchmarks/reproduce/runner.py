"""Running cells: make or load each set, score it, save the cell after every set.

A cell's record is written as soon as each of its sets is scored, and the
sets already scored are skipped when the command is rerun, so a long budget
can span several sessions. Every set made is saved; a set whose file is there
but whose evaluation was never recorded is evaluated, not fitted again, when
the file is exactly what the cell would make. Each condensation checkpoints
itself to ``<out>/checkpoints/`` (gradient matching every 10 iterations, or
every one when a cell has fewer than 100; distribution matching every 100, or
every tenth of a shorter run): to carry a set in progress over to a fresh
checkout, commit its checkpoint (``git add -f``); the rerun resumes from it.
An evaluation keeps its networks' accuracies there too, as it goes
(``eval-<key>-set<s>.json``, one step of ``eval_jobs`` networks at a time), so
an evaluation of hours also resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _common import machine_info as describe_machine

from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser, Herding, RandomCoreset
from gradmatch.data import Normalization, channel_stats
from gradmatch.datasets import FASHION_MNIST_DIR, load_digits_images, load_fashion_mnist
from gradmatch.evaluation import EvaluationResult, evaluate_set
from gradmatch.io import load_set, save_set, settings_as_saved
from gradmatch.runtime import cpu_has_bf16
from gradmatch.training import idc_recipe

from .budgets import Budget, Cell
from .methods import CONDENSERS, DISTRIBUTION_MATCHING
from .records import cell_record_path, read_record, set_path, write_record

#: Settings that change how a fit runs or reports, not the set it makes.
RUN_ONLY_SETTINGS = ("verbose", "checkpoint", "checkpoint_every", "callback")


@dataclass
class SetToScore:
    """A set ready for evaluation, with the normalisation of the real data it came from."""

    X: np.ndarray
    y: np.ndarray
    normalization: dict | Normalization
    #: Seconds the set took to make (its fit's own time when it was loaded from a file).
    fit_seconds: float
    #: Of those, the seconds spent choosing representative real batches (None: random batches).
    sampling_seconds: float | None = None


def load_data(dataset: str, data_dir: str | None):
    """``((X, y), (X_test, y_test))`` of ``"digits"`` or ``"fashion-mnist"`` (from ``data_dir``)."""
    if dataset == "digits":
        return load_digits_images()
    return load_fashion_mnist(data_dir or FASHION_MNIST_DIR)


def make_reducer(cell: Cell, seed: int, verbose: int, checkpoint: Path | None = None,
                 herding_feature_epochs: int | str = "auto"):
    """The unfitted estimator that makes ``cell``'s set with ``seed``.

    Parameters
    ----------
    cell : Cell
        Its ``maker`` names the method, its ``ipc`` and ``iterations`` the size and K.
    seed : int
        ``random_state`` of the estimator.
    verbose : int
        The estimator's verbosity.
    checkpoint : Path, optional
        Checkpoint folder of a condenser.
    herding_feature_epochs : int or "auto"
        Herding's ``feature_epochs``.

    Returns
    -------
    RandomCoreset, Herding, GradientMatchingCondenser or DistributionMatchingCondenser
    """
    method = cell.maker
    if method == "random":
        return RandomCoreset(ipc=cell.ipc, random_state=seed)
    if method == "herding":
        return Herding(ipc=cell.ipc, random_state=seed, verbose=verbose, feature_epochs=herding_feature_epochs)
    if method in DISTRIBUTION_MATCHING:
        # A DM iteration takes seconds: checkpoints every 100 iterations (DM's
        # default), every tenth of the run when it is shorter.
        return DistributionMatchingCondenser(ipc=cell.ipc, iterations=cell.iterations, random_state=seed,
                                             verbose=verbose, checkpoint=checkpoint,
                                             checkpoint_every=max(1, min(100, cell.iterations // 10)),
                                             **DISTRIBUTION_MATCHING[method])
    # Checkpoints every 10 outer iterations, every one when there are few (an
    # ipc-10 iteration takes minutes): a session that ends mid-set loses
    # minutes, not the set (the resumed run gives the same set, see issue 4).
    return GradientMatchingCondenser(ipc=cell.ipc, iterations=cell.iterations, random_state=seed,
                                     verbose=verbose, checkpoint=checkpoint,
                                     checkpoint_every=max(1, min(10, cell.iterations // 10)),
                                     **CONDENSERS[method])


def machine_info() -> dict:
    """The machine record (``benchmarks/_common.py``) for the device this run uses."""
    return describe_machine("cuda" if torch.cuda.is_available() else "cpu")


def cannot_run_here(cell: Cell) -> str | None:
    """Why ``cell`` must not run on this machine, or None (bf16 would silently run float32)."""
    settings = CONDENSERS.get(cell.maker, {})
    for name in ("precision", "network_precision"):
        if settings.get(name, "float32") == "bf16" and not cell.reuse_sets and not cpu_has_bf16():
            return (f"its condenser runs {name}='bf16', and this CPU has no bf16 hardware "
                    "(it would fall back to float32)")
    return None


def saved_set_of(path: Path, reducer, dataset: str):
    """The set at ``path`` if ``reducer`` would make exactly it, else None.

    A file left by another configuration (other settings, seed or data) is
    never taken for this one: it is refitted and overwritten.

    Parameters
    ----------
    path : Path
        A file written by :func:`gradmatch.io.save_set`, or a missing one.
    reducer : estimator
        The unfitted estimator the cell would fit.
    dataset : str
        The name of the data the set must come from.

    Returns
    -------
    gradmatch.io.SyntheticSet or None
        None when the file is missing, unreadable or another configuration's.
    """
    if not path.exists():
        return None
    try:
        saved = load_set(path)
    except (OSError, ValueError):
        return None
    wanted = settings_as_saved(reducer)
    differ = {key for key in set(wanted) | set(saved.settings) if key not in RUN_ONLY_SETTINGS
              and wanted.get(key) != saved.settings.get(key)}
    if saved.method != type(reducer).__name__ or saved.dataset != dataset or differ:
        return None
    return saved


def obtain_set(cell: Cell, index: int, train, out: Path, verbose: int, budget: Budget) -> SetToScore | None:
    """Set number ``index`` of ``cell``: loaded, or made and saved; None while it waits for another cell.

    A cell that re-evaluates another's sets waits until that set's file
    exists. Otherwise a saved file that is exactly this set is evaluated
    rather than fitted again (a run stopped mid-evaluation), and any other
    file is overwritten by a fresh fit.
    """
    start = time.perf_counter()
    source = set_path(out, cell.set_stem, index)
    if cell.reuse_sets:
        if not source.exists():
            print(f"  {cell.key} set {index + 1}: waits for {source.name}", flush=True)
            return None
        saved = load_set(source)
        return SetToScore(saved.X, saved.y, saved.normalization, time.perf_counter() - start)
    source.parent.mkdir(parents=True, exist_ok=True)
    reducer = make_reducer(cell, 1000 * index, verbose, out / "checkpoints", budget.herding_feature_epochs)
    saved = saved_set_of(source, reducer, budget.dataset)
    if saved is None:
        X_set, y_set = reducer.fit_resample(*train)
        save_set(source, reducer, dataset=budget.dataset)
        # A condensation's own time across every session it spanned (a resumed
        # fit's wall clock covers only the last one); a selection's wall clock.
        history = getattr(reducer, "history_", None)
        seconds = float(sum(history["seconds"])) if history else time.perf_counter() - start
        # The real data's normalisation, for every kind of set.
        return SetToScore(X_set, y_set, reducer.normalization_, seconds, _sampling_seconds(history))
    print(f"  {cell.key} set {index + 1}: evaluating the saved {source.name}", flush=True)
    # The fit's own time from the set's history, not the load's.
    seconds = float(sum(saved.history["seconds"])) if saved.history else time.perf_counter() - start
    return SetToScore(saved.X, saved.y, saved.normalization, seconds, _sampling_seconds(saved.history))


def _sampling_seconds(history: dict | None) -> float | None:
    """Seconds a fit spent choosing representative real batches, from its history (None: none chosen)."""
    if not history or "sampling_seconds" not in history:
        return None
    return float(sum(history["sampling_seconds"]))


def run_cell(cell: Cell, data, out: Path, verbose: int, budget: Budget) -> dict:
    """Make and score the sets of ``cell`` not yet recorded; save the record after each.

    Parameters
    ----------
    cell : Cell
        The cell to run.
    data : tuple
        ``((X, y), (X_test, y_test))``, as :func:`load_data` returns.
    out : Path
        The results folder.
    verbose : int
        The estimators' verbosity.
    budget : Budget
        The budget the cell belongs to (dataset, evaluation jobs, Herding's setting).

    Returns
    -------
    dict
        The cell's record, as saved.
    """
    path = cell_record_path(out, cell.key)
    record = read_record(path)
    if record is None or record.get("budget") != cell.recorded_budget():
        record = {"key": cell.key, "budget": cell.recorded_budget(), "sets": extended_sets(cell, out)}
    train, (X_test, y_test) = data
    for index in range(len(record["sets"]), cell.sets):
        seed = 1000 * index
        made = obtain_set(cell, index, train, out, verbose, budget)
        if made is None:
            break
        progress = evaluation_progress_path(out, cell, index)
        accuracies, eval_seconds = evaluate_in_steps(made, cell, seed, (X_test, y_test), budget.eval_jobs,
                                                     progress)
        entry = {"seed": seed, "accuracies": accuracies, "fit_seconds": made.fit_seconds,
                 "eval_seconds": eval_seconds, "machine": machine_info()}
        if made.sampling_seconds is not None:
            entry["sampling_seconds"] = made.sampling_seconds
        record["sets"].append(entry)
        write_record(path, record)
        progress.unlink(missing_ok=True)
        print(f"  {cell.key} set {index + 1}/{cell.sets}: {EvaluationResult(accuracies)} "
              f"(fit {made.fit_seconds:.0f} s)", flush=True)
    return record


def evaluation_progress_path(out: Path, cell: Cell, index: int) -> Path:
    """Where the networks already scored on set ``index`` of ``cell`` are kept while it is evaluated."""
    return out / "checkpoints" / f"eval-{cell.key}-set{index}.json"


def evaluation_identity(made: SetToScore, cell: Cell, seed: int) -> str:
    """A digest of everything the evaluation's accuracies depend on: the set, the protocol, the seed."""
    digest = hashlib.sha256()
    for array in (made.X, made.y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    norm = made.normalization
    norm = norm.as_dict() if isinstance(norm, Normalization) else norm
    protocol = {"budget": cell.recorded_budget(), "seed": seed, "normalization": norm}
    digest.update(json.dumps(protocol, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def evaluate_in_steps(made: SetToScore, cell: Cell, seed: int, test, jobs: int,
                      progress: Path) -> tuple[list[float], float]:
    """Score ``made`` with ``cell``'s protocol, ``jobs`` networks at a time, keeping each step.

    Network ``i`` is seeded ``seed + i`` exactly as one :func:`evaluate_set`
    call seeds it, and each step runs in the same number of processes, so the
    accuracies are those of one call. After every step but the last, the
    networks scored so far are written to ``progress``; a rerun continues from
    them when the file describes this very set, protocol and seed (anything
    else is ignored and overwritten), so an evaluation of hours can span
    sessions like a fit.

    Returns
    -------
    accuracies : list of float
        One per network, in seed order.
    seconds : float
        The evaluation's own time, summed over every session it spanned.
    """
    identity = evaluation_identity(made, cell, seed)
    kept = read_record(progress)
    accuracies, seconds = [], 0.0
    if kept is not None and kept.get("identity") == identity:
        accuracies, seconds = list(kept["accuracies"]), float(kept["seconds"])
        print(f"  {cell.key}: {len(accuracies)} of {cell.models} networks already scored "
              f"({progress.name})", flush=True)
    X_test, y_test = test
    while len(accuracies) < cell.models:
        start = time.perf_counter()
        result = evaluate_set(made.X, made.y, X_test, y_test, normalization=made.normalization,
                              n_models=min(max(1, jobs), cell.models - len(accuracies)),
                              augment=cell.eval_augment, epochs=cell.epochs, recipe=evaluation_recipe(cell),
                              random_state=seed + len(accuracies), n_jobs=jobs)
        accuracies += result.accuracies
        seconds += time.perf_counter() - start
        if len(accuracies) < cell.models:
            write_record(progress, {"identity": identity, "accuracies": accuracies, "seconds": seconds})
    return accuracies, seconds


def evaluation_recipe(cell: Cell):
    """The training recipe of ``cell``'s evaluation networks: None (DC's) or IDC's."""
    if cell.eval_recipe is None:
        return None
    if cell.eval_recipe == "idc":
        return idc_recipe(cell.epochs)
    raise ValueError(f"cell {cell.key}: unknown evaluation recipe {cell.eval_recipe!r}")


def extended_sets(cell: Cell, out: Path) -> list:
    """The finished sets of the cell that ``cell`` extends, when their protocol is the same."""
    if cell.extends is None:
        return []
    base = read_record(cell_record_path(out, cell.extends))
    if base is None:
        return []
    mine = cell.recorded_budget()
    same = ("ipc", "iterations", "models", "epochs", "eval_augment")
    if any(base["budget"].get(k) != mine.get(k) for k in same):
        return []
    return base["sets"][: cell.sets]


def real_normalization(X) -> Normalization:
    """Per-channel mean and std of the real images ``X`` (``(n, H, W)`` or ``(n, C, H, W)``)."""
    images = torch.from_numpy(np.asarray(X))
    return channel_stats(images.unsqueeze(1) if images.dim() == 3 else images)


def run_whole(budget: Budget, data, out: Path) -> dict | None:
    """The whole-training-set reference: one ConvNet, ``budget.whole_epochs`` epochs, recorded once.

    Returns the record (the saved one when it exists), or None when the
    budget has no reference.
    """
    if budget.whole_epochs <= 0:
        return None
    path = cell_record_path(out, f"whole-{budget.whole_epochs}ep")
    record = read_record(path)
    if record is not None:
        return record
    (X, y), (X_test, y_test) = data
    start = time.perf_counter()
    result = evaluate_set(X, y, X_test, y_test, normalization=real_normalization(X), n_models=1,
                          epochs=budget.whole_epochs, random_state=0, n_jobs=1)
    record = {"key": path.stem, "epochs": budget.whole_epochs, "accuracies": result.accuracies,
              "seconds": time.perf_counter() - start, "machine": machine_info()}
    write_record(path, record)
    print(f"  whole training set, {budget.whole_epochs} epochs: {result}", flush=True)
    return record

"""Reproduce the paper's ablations (Tables 1-3) on Fashion-MNIST, cell by cell.

Every cell (one method at one ipc) condenses or selects ``sets`` training sets
with different seeds and trains ``models`` fresh ConvNets on each with DC's
evaluation recipe, then scores them on the real test set. Each cell is saved
to ``<out>/cells/<key>.json`` as soon as each of its sets is scored, and
finished sets are skipped on a rerun, so a long budget can span sessions.
Every set made is saved to ``<out>/sets/``; condensations checkpoint to
``<out>/checkpoints/`` (ignored by git).

Budgets
-------
smoke   seconds, on scikit-learn digits (used by the test suite)
cpu     Fashion-MNIST at K = 100 (ipc 1) and K = 10 (ipc 10, indicative);
        about 10 hours on 2 CPU cores; then distribution matching at ipc 1,
        10 and 50 (ipc1-dm, ipc10-dm, ipc50-dm), about an hour's fit each
paper   the full protocol (K = 1000, 2 sets x 50 models), for a GPU

Usage::

    python benchmarks/reproduce --budget cpu                 # run / resume everything
    python benchmarks/reproduce --budget cpu --cells ipc1-dc ipc1-md
    python benchmarks/reproduce --budget cpu --cells ipc10-dm       # one distribution-matching cell
    python benchmarks/reproduce --budget cpu --cells whole    # the whole-training-set reference
    python benchmarks/reproduce --budget cpu --report        # tables from what is done
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    # Run as ``python benchmarks/reproduce``: Python put this folder first on
    # sys.path. Put benchmarks/ there instead and import the package, so that
    # this file's relative imports resolve (PEP 366).
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    import reproduce  # noqa: F401

    __package__ = "reproduce"

import argparse

from gradmatch import memory
from gradmatch.atomic import write_text_atomic
from gradmatch.cli import add_keep_freed_memory_option
from gradmatch.datasets import FASHION_MNIST_DIR

from .budgets import BUDGET_NAMES, WHOLE_KEY, Budget, make_budget
from .plots import write_plots
from .report import report_text
from .runner import cannot_run_here, load_data, machine_info, run_cell, run_whole

#: The default results folder is ``<repository>/docs/results/reproduce-<budget>``.
RESULTS_ROOT = Path(__file__).resolve().parents[2] / "docs" / "results"


def build_parser() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = argparse.ArgumentParser(prog="python benchmarks/reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="smoke", choices=BUDGET_NAMES)
    parser.add_argument("--cells", nargs="*", help="cell keys to run (default: all), e.g. ipc1-dc; 'whole' is the "
                        "whole-training-set reference")
    parser.add_argument("--data-dir", default=None, help=f"Fashion-MNIST IDX folder (default {FASHION_MNIST_DIR})")
    parser.add_argument("--out", default=None, help="results folder (default docs/results/reproduce-<budget>)")
    parser.add_argument("--report", action="store_true", help="only write the tables from finished cells")
    parser.add_argument("--verbose", type=int, default=0)
    add_keep_freed_memory_option(parser, note="each set's record says which; sets recorded before 2026-12-01 "
                                   "ran without it")
    return parser


def run_budget(budget: Budget, args: argparse.Namespace, out: Path) -> None:
    """Run (or resume) the budget's cells named in ``args.cells`` (all by default), then the reference."""
    data = load_data(budget.dataset, args.data_dir)
    # The allocator changes seconds, never results: records say which ran.
    with memory.keep_freed_memory(enabled=args.keep_freed_memory):
        # Inside the block, so that the machine line says which allocator runs.
        print(f"budget {budget.name} on {budget.dataset}: {len(budget.cells)} cells; "
              f"machine {machine_info()}", flush=True)
        for cell in budget.cells:
            if args.cells and cell.key not in args.cells:
                continue
            reason = cannot_run_here(cell)
            if reason:
                print(f"cell {cell.key}: skipped: {reason}", flush=True)
                continue
            print(f"cell {cell.key}: K={cell.iterations}, {cell.sets} set(s) x {cell.models} models, "
                  f"{cell.epochs} epochs", flush=True)
            run_cell(cell, data, out, args.verbose, budget)
        if not args.cells or WHOLE_KEY in args.cells:
            run_whole(budget, data, out)


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments, as :func:`build_parser` reads them.

    Returns
    -------
    int
        0; errors (an unknown budget or cell) exit through ``SystemExit``.
    """
    args = build_parser().parse_args(argv)
    budget = make_budget(args.budget)
    out = Path(args.out) if args.out else RESULTS_ROOT / f"reproduce-{budget.name}"
    out.mkdir(parents=True, exist_ok=True)
    # "whole" is the whole-training-set reference, run after the cells by default.
    known = {c.key for c in budget.cells} | ({WHOLE_KEY} if budget.whole_epochs > 0 else set())
    unknown = sorted(set(args.cells or ()) - known)
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; valid: {sorted(known)}")
    if not args.report:
        run_budget(budget, args, out)
    text = report_text(budget, out)
    write_text_atomic(out / "tables.md", text)
    for path in write_plots(budget, out):
        print(f"wrote {path}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Copy the reproduction's condensed sets into the package, with their provenance.

``gradmatch.datasets.load_condensed`` reads what this script writes:

- ``gradmatch/condensed/<dataset>/ipc<k>-<method>.npz``: byte-for-byte copies of
  set files the reproduction saved (``docs/results/reproduce-cpu/sets/``,
  written by :func:`gradmatch.io.save_set`);
- ``gradmatch/condensed/manifest.json``: for each copy, the method and its
  settings (from the set file's metadata), the seed, the cell that scored it
  and that cell's budget (K, evaluation epochs, DSA-or-not evaluation), the
  accuracy of the set's own evaluation networks and the cell's pooled figure,
  the machine, the source paths and the gradmatch versions.

Which sets: one per method and ipc (1 and 10) that has a committed cell and a
committed set file. The method is a cell's method without an ``@`` suffix
(``@dsa-eval`` re-evaluates another cell's sets, ``@k200`` and ``@spread`` are
investigations): ``md``, ``dc+dsa``, ``md-bf16``, ... The set is the lowest set
number whose file exists and whose score a cell with that method's own
evaluation recorded: set 0 where its file was kept, otherwise the next
(``ipc1-dc``: set 1; ``ipc1-random``: set 2, scored by ``ipc1-random@spread``,
which extends ``ipc1-random`` with the same protocol). A set that another
cell re-evaluated (``md@dsa-eval``) lists that score too. Methods with a cell
but no set file are listed under ``not_shipped``.

The fit's seconds are the set file's own per-iteration history where it has
one (a fit resumed over sessions keeps it whole); the cell record's figure,
which for such fits counts only the last session, is kept beside it.

Accuracies are in percent; ``std`` is the population standard deviation over
the networks, as ``benchmarks/reproduce``'s tables report it.

Usage::

    python benchmarks/release_sets.py            # (re)write gradmatch/condensed/
    python benchmarks/release_sets.py --check    # exit 1 when gradmatch/condensed/ is stale

Nothing is trained or evaluated; it runs in about a second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradmatch import __version__, load_set  # noqa: E402
from gradmatch.atomic import write_bytes_atomic, write_text_atomic  # noqa: E402

#: The reproduction's results folder, relative to the repository root.
SOURCE = Path("docs/results/reproduce-cpu")
#: The dataset that folder's cpu budget condensed.
DATASET = "fashion-mnist"
#: The package folder the copies and the manifest go to, relative to the repository root.
DEST = Path("gradmatch/condensed")
#: The ipcs released.
IPCS = (1, 10)

_SET_FILE = re.compile(r"^ipc(?P<ipc>\d+)-(?P<stem>.+)-set(?P<index>\d+)\.npz$")

#: The evaluation every cell used (``gradmatch.evaluation.evaluate_set`` with DC's recipe).
_TRAINING = ("DC's recipe: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half "
             "the epochs; inputs normalised with the real training data's per-channel mean and std")


def _stem(budget: dict) -> str:
    """The method part of the set files a cell scored (as benchmarks/reproduce's ``Cell.set_stem``)."""
    method = budget["method"]
    return method.split("@")[0] if budget.get("reuse_sets") or budget.get("extends") else method


def _percent(values) -> dict:
    """Mean, population std and count of accuracies (fractions) in percent."""
    values = [float(v) for v in values]
    return {"mean": 100 * float(np.mean(values)), "std": 100 * float(np.std(values)), "n": len(values)}


def _summary(stats: dict) -> str:
    return f"{stats['mean']:.1f} +- {stats['std']:.1f}"


def _recipe(budget: dict) -> dict:
    augment = budget.get("eval_augment")
    return {"model": "convnet", "epochs": budget["epochs"], "augment": augment,
            "evaluation": "DSA's (augmented batches)" if augment == "dsa" else "DC's (no augmentation)",
            "networks": budget["models"], "training": _TRAINING,
            "test": f"the {DATASET} test split"}


def _evaluation(key: str, record: dict, index: int, source: Path) -> dict:
    """One cell's score of set ``index``: that set's networks and the cell's pooled figure."""
    entry = record["sets"][index]
    budget = record["budget"]
    mine = _percent(entry["accuracies"])
    pooled = _percent([a for s in record["sets"] for a in s["accuracies"]])
    return {
        "cell": key, "cell_record": (source / "cells" / f"{key}.json").as_posix(),
        "set_index": index,
        "accuracy": {**mine, "accuracies": [round(100 * float(a), 4) for a in entry["accuracies"]],
                     "text": f"{_summary(mine)} ({mine['n']} networks)"},
        "cell_accuracy": {**pooled, "sets": len(record["sets"]),
                          "text": f"{_summary(pooled)} ({pooled['n']} networks over {len(record['sets'])} sets)"},
        "recipe": _recipe(budget),
        "network_seeds": [entry["seed"] + i for i in range(len(entry["accuracies"]))],
        "indicative": bool(budget.get("indicative", False)),
    }


def read_cells(source: Path) -> dict[str, dict]:
    """Every cell record with a budget under ``source/cells``, by key."""
    cells = {}
    for path in sorted((ROOT / source / "cells").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if "budget" in record and record.get("sets"):
            cells[record["key"]] = record
    return cells


def plan(source: Path = SOURCE, dataset: str = DATASET) -> tuple[list[dict], list[dict]]:
    """The sets to release (manifest entries with their source file) and the methods left out.

    Returns
    -------
    released : list of dict
        Manifest entries, sorted by ipc then method; each has ``source`` (the
        set file, relative to the repository root).
    not_shipped : list of dict
        ``{"dataset", "ipc", "method", "cells", "why"}`` for methods with a cell but no usable set file.
    """
    cells = read_cells(source)
    files = {}
    for path in (ROOT / source / "sets").glob("*.npz"):
        match = _SET_FILE.match(path.name)
        if match:
            files[(int(match["ipc"]), match["stem"], int(match["index"]))] = path
    methods = sorted({(r["budget"]["ipc"], r["budget"]["method"]) for r in cells.values()
                      if "@" not in r["budget"]["method"] and r["budget"]["ipc"] in IPCS})
    released, not_shipped = [], []
    for ipc, method in methods:
        # Cells that scored this method's sets: its own protocol first (the plain
        # cell, then cells extending it), re-evaluations after.
        scoring = [(key, r) for key, r in cells.items()
                   if r["budget"]["ipc"] == ipc and _stem(r["budget"]) == method]
        own = sorted([(k, r) for k, r in scoring if not r["budget"].get("reuse_sets")],
                     key=lambda kr: (kr[0] != f"ipc{ipc}-{method}", kr[0]))
        again = sorted([(k, r) for k, r in scoring if r["budget"].get("reuse_sets")])
        indices = sorted(i for (i_ipc, stem, i) in files if i_ipc == ipc and stem == method)
        chosen = next(((i, k, r) for i in indices for k, r in own if len(r["sets"]) > i), None)
        if chosen is None:
            why = (f"no set file under {(source / 'sets').as_posix()}/ that a cell of its own protocol scored"
                   if indices else f"no set file ipc{ipc}-{method}-set<i>.npz under {(source / 'sets').as_posix()}/")
            not_shipped.append({"dataset": dataset, "ipc": ipc, "method": method,
                                "cells": sorted(k for k, _ in scoring), "why": why})
            continue
        index, key, record = chosen
        path = files[(ipc, method, index)]
        syn = load_set(path)
        entry = record["sets"][index]
        seed = int(entry["seed"])
        if syn.settings.get("random_state") != seed or syn.settings.get("ipc") != ipc:
            raise SystemExit(f"{path}: random_state {syn.settings.get('random_state')} / ipc "
                             f"{syn.settings.get('ipc')} do not match cell {key}'s set {index} "
                             f"(seed {seed}, ipc {ipc})")
        data = path.read_bytes()
        released.append({
            "name": f"{dataset}/ipc{ipc}-{method}",
            "file": f"{dataset}/ipc{ipc}-{method}.npz",
            "dataset": dataset, "ipc": ipc, "method": method,
            "estimator": syn.method, "settings": syn.settings, "made_with": syn.version,
            "seed": seed, "K": int(record["budget"]["iterations"]),
            **_evaluation(key, record, index, source),
            "also_evaluated": [_evaluation(k, r, index, source) for k, r in again if len(r["sets"]) > index],
            "fit_seconds": (float(sum(syn.history["seconds"])) if syn.history and "seconds" in syn.history
                            else float(entry["fit_seconds"])),
            "fit_seconds_cell_record": float(entry["fit_seconds"]),
            "machine": entry["machine"],
            "source": path.relative_to(ROOT).as_posix(),
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        })
    return released, not_shipped


def manifest(released: list[dict], not_shipped: list[dict], source: Path = SOURCE) -> dict:
    """The manifest written to ``gradmatch/condensed/manifest.json``."""
    return {
        "format": "gradmatch.condensed-manifest", "format_version": 1,
        "gradmatch_version": __version__,
        "generated_by": "benchmarks/release_sets.py",
        "source": source.as_posix(),
        "accuracy_unit": "percent; std is the population standard deviation over the networks",
        "fit_seconds": ("the sum of the set file's own per-iteration history (history.seconds) where it has "
                        "one, else the cell record's figure; fit_seconds_cell_record is the cell record's, "
                        "which for a fit resumed over sessions may count only the last session (or the "
                        "saved file's load time)"),
        "sets": {e["name"]: e for e in released},
        "not_shipped": not_shipped,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when gradmatch/condensed/ differs from what would be written")
    args = parser.parse_args(argv)
    released, not_shipped = plan()
    dest = ROOT / DEST
    text = json.dumps(manifest(released, not_shipped), indent=1, sort_keys=False) + "\n"
    wanted = {dest / e["file"]: (ROOT / e["source"]).read_bytes() for e in released}
    present = set(dest.rglob("*.npz")) if dest.exists() else set()
    stale = sorted(present - set(wanted))
    differ = [p for p, data in wanted.items() if not p.exists() or p.read_bytes() != data]
    manifest_path = dest / "manifest.json"
    if not manifest_path.exists() or manifest_path.read_text(encoding="utf-8") != text:
        differ.append(manifest_path)
    if args.check:
        for path in differ + stale:
            print(f"stale: {path.relative_to(ROOT)}")
        return 1 if differ or stale else 0
    for path, data in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path in differ:
            write_bytes_atomic(path, data)
    for path in stale:
        path.unlink()
        print(f"removed {path.relative_to(ROOT)} (not released)")
    write_text_atomic(manifest_path, text)
    for e in released:
        print(f"{e['name']:<32} set {e['set_index']} of {e['cell']:<20} seed {e['seed']:>5}  "
              f"K={e['K']:<4} {e['accuracy']['text']:<28} {e['bytes'] / 1024:6.1f} KiB")
    for e in not_shipped:
        print(f"{e['dataset']}/ipc{e['ipc']}-{e['method']:<22} not shipped: {e['why']}")
    total = sum(e["bytes"] for e in released) + len(text.encode("utf-8"))
    print(f"wrote {len(released)} sets and {manifest_path.relative_to(ROOT)} to {DEST}/: "
          f"{total / 1024:.0f} KiB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())

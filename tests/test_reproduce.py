"""The benchmark package benchmarks/reproduce/ end to end at the smoke budget (digits, seconds).

Run as its documentation says, ``python benchmarks/reproduce ...`` (a folder
with ``__main__.py``), from another working directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reproduce"  # a package folder, run by Python as a script


def run(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_smoke_budget_runs_saves_cells_and_resumes(tmp_path):
    out = tmp_path / "smoke"
    first = run("--budget", "smoke", "--out", str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    cells = sorted(p.stem for p in (out / "cells").glob("*.json"))
    assert cells == ["ipc1-dc", "ipc1-dm", "ipc1-herding", "ipc1-md", "ipc1-md+dsa", "ipc1-md-f2-rep",
                     "ipc1-md-f2-rep@idc-eval", "ipc1-md@dsa-eval", "ipc1-random", "ipc1-random@spread",
                     "whole-1ep"]
    # Every set made is saved, and the re-evaluation cells (DSA's, IDC's) reuse the sets they score.
    sets = sorted(p.name for p in (out / "sets").glob("*.npz"))
    assert sets == sorted([f"ipc1-{m}-set0.npz" for m in ("dc", "dm", "herding", "md", "md+dsa", "md-f2-rep",
                                                          "random")]
                          + ["ipc1-random-set1.npz"])  # the Random investigation's second selection
    # Multi-formation with representative batches: a stored set of 10 decoding into 40, its
    # clustering seconds recorded, and its set scored again by IDC's recipe.
    both = json.loads((out / "cells" / "ipc1-md-f2-rep.json").read_text())["sets"][0]
    assert both["sampling_seconds"] > 0
    idc = json.loads((out / "cells" / "ipc1-md-f2-rep@idc-eval.json").read_text())
    assert idc["budget"]["eval_recipe"] == "idc" and idc["budget"]["reuse_sets"]
    from gradmatch.io import load_set
    f2 = load_set(out / "sets" / "ipc1-md-f2-rep-set0.npz")
    assert f2.factor == 2 and len(f2.X_stored) == 10 and len(f2.X) == 40
    reused = json.loads((out / "cells" / "ipc1-md@dsa-eval.json").read_text())
    assert reused["budget"]["reuse_sets"] and reused["budget"]["eval_augment"] == "dsa"
    # Distribution matching's set is made by its own estimator and evaluated DSA's way.
    dm = json.loads((out / "cells" / "ipc1-dm.json").read_text())
    assert dm["budget"]["eval_augment"] == "dsa" and dm["budget"]["iterations"] == 2 and len(dm["sets"]) == 1
    from gradmatch.io import load_set
    dm_set = load_set(out / "sets" / "ipc1-dm-set0.npz")
    assert dm_set.method == "DistributionMatchingCondenser" and dm_set.settings["iterations"] == 2
    assert len(dm_set.history["seconds"]) == 2 and dm_set.settings["init"] == "real"
    assert "reuse_sets" not in json.loads((out / "cells" / "ipc1-dc.json").read_text())["budget"]
    record = json.loads((out / "cells" / "ipc1-md.json").read_text())
    assert record["budget"]["iterations"] == 2 and len(record["sets"]) == 1
    accs = record["sets"][0]["accuracies"]
    assert len(accs) == 1 and 0.0 <= accs[0] <= 1.0
    # The Random investigation starts from Table 3's selection and adds one.
    random = json.loads((out / "cells" / "ipc1-random.json").read_text())["sets"]
    spread = json.loads((out / "cells" / "ipc1-random@spread.json").read_text())["sets"]
    assert len(random) == 1 and len(spread) == 2 and spread[0] == random[0]
    assert spread[1]["seed"] == 1000
    assert first.stdout.count("ipc1-random@spread set") == 1  # only the new selection ran
    tables = (out / "tables.md").read_text()
    assert "Investigation: the Random baseline" in tables and "selections done: 2 of 2" in tables
    for heading in ("Table 1", "Table 2", "Table 3", "Ordering at ipc 1", "with DSA", "distribution matching"):
        assert heading in tables
    assert "| dm | 1 | 2 | 1 x 1 | DSA, 5 epochs | " in tables
    assert "| Ours-MD |" in tables and "71.4" in tables  # ours beside the paper's figure
    assert "| DC+DSA |" in tables and "70.6" in tables and "| md+dsa vs md |" in tables
    for png in ("ipc1-table3.png", "ipc1-sets.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    # A rerun finds every cell finished: nothing is recomputed, the record is unchanged.
    second = run("--budget", "smoke", "--out", str(out), cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "set 1/1" not in second.stdout
    assert json.loads((out / "cells" / "ipc1-md.json").read_text()) == record

    # A run stopped after a set was saved but before its evaluation was
    # recorded: the rerun evaluates the saved set instead of fitting it again.
    (out / "cells" / "ipc1-md.json").unlink()
    saved = (out / "sets" / "ipc1-md-set0.npz").read_bytes()
    third = run("--budget", "smoke", "--out", str(out), "--cells", "ipc1-md", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "ipc1-md set 1: evaluating the saved ipc1-md-set0.npz" in third.stdout
    assert (out / "sets" / "ipc1-md-set0.npz").read_bytes() == saved  # not refitted
    again = json.loads((out / "cells" / "ipc1-md.json").read_text())
    assert again["sets"][0]["accuracies"] == record["sets"][0]["accuracies"]


def test_unknown_cell_is_a_clear_error(tmp_path):
    res = run("--budget", "smoke", "--out", str(tmp_path), "--cells", "ipc1-nope", cwd=tmp_path)
    assert res.returncode != 0
    assert "unknown cells ['ipc1-nope']" in res.stderr


def test_whole_set_reference_runs_alone(tmp_path):
    out = tmp_path / "whole"
    res = run("--budget", "smoke", "--out", str(out), "--cells", "whole", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    # Only the reference ran: no cell was condensed or selected.
    assert sorted(p.stem for p in (out / "cells").glob("*.json")) == ["whole-1ep"]
    record = json.loads((out / "cells" / "whole-1ep.json").read_text())
    assert record["epochs"] == 1 and 0.0 <= record["accuracies"][0] <= 1.0
    assert "| Whole training set | ours " in (out / "tables.md").read_text()


def test_cpu_budget_has_dm_cells_evaluated_dsa_way(reproduce):
    budgets = reproduce.budgets
    cells = {c.key: c for c in budgets.make_budget("cpu").cells}
    expected = {1: budgets.DM_ITERATIONS_IPC1, 10: budgets.DM_ITERATIONS_IPC10, 50: budgets.DM_ITERATIONS_IPC50}
    for ipc, iterations in expected.items():
        cell = cells[f"ipc{ipc}-dm"]
        assert (cell.method, cell.ipc, cell.iterations, cell.sets) == ("dm", ipc, iterations, 1)
        assert 3 <= cell.models <= 5 and cell.indicative
        # DSA's evaluation protocol, with the epochs of the budget's other DSA cells.
        assert cell.eval_augment == "dsa" and cell.epochs == reproduce.paper.DSA_EVAL_EPOCHS
        assert cell.epochs == cells["ipc10-mda+dsa"].epochs
        assert not cell.reuse_sets and cell.extends is None and cell.set_stem == f"ipc{ipc}-dm"
    # The smoke budget makes one set of every kind of cell, DM's included.
    smoke = {c.key: c for c in budgets.make_budget("smoke").cells}
    assert smoke["ipc1-dm"].eval_augment == "dsa" and smoke["ipc1-dm"].sets == 1


def test_a_dm_cell_builds_dm_with_its_published_settings_and_the_cells_k(reproduce, tmp_path):
    from gradmatch import DistributionMatchingCondenser
    from gradmatch.augment import DSA_STRATEGY

    cells = {c.key: c for c in reproduce.budgets.make_budget("cpu").cells}
    cell = cells["ipc10-dm"]
    reducer = reproduce.runner.make_reducer(cell, 1000, 0, tmp_path)
    assert isinstance(reducer, DistributionMatchingCondenser)
    params = reducer.get_params()
    assert (params["ipc"], params["iterations"], params["random_state"]) == (10, cell.iterations, 1000)
    assert params["init"] == "real" and params["augment"] == DSA_STRATEGY == "color_crop_cutout_flip_scale_rotate"
    assert (params["lr_syn"], params["momentum_syn"], params["batch_real"]) == (1.0, 0.5, 256)
    assert params["checkpoint"] == tmp_path and params["checkpoint_every"] == 100
    # A short run checkpoints every tenth of it; every method name resolves to one estimator.
    assert reproduce.runner.make_reducer(reproduce.budgets.Cell("dm", 1, 30, 1, 1, 5), 0, 0).checkpoint_every == 3
    assert "dm" not in reproduce.methods.CONDENSERS and reproduce.runner.cannot_run_here(cell) is None


def test_dm_settings_match_the_compare_example(reproduce):
    """examples/compare_coresets.py's dm is the benchmark's, its DSA strategy chosen per dataset."""
    import importlib.util

    from gradmatch.augment import DSA_STRATEGY

    spec = importlib.util.spec_from_file_location("compare_coresets_for_dm", ROOT / "examples" / "compare_coresets.py")
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # dataclasses look their module up there
    try:
        spec.loader.exec_module(example)
    finally:
        del sys.modules[spec.name]
    assert reproduce.methods.DISTRIBUTION_MATCHING["dm"] == dict(example.DM_SETTINGS, augment=DSA_STRATEGY)
    assert example.dsa_strategy("fashion-mnist") == DSA_STRATEGY


def test_time_to_accuracy_reads_only_dc_recipe_cells(reproduce, tmp_path):
    """Cells of one maker and K under both recipes are told apart (they once made the
    report sort statistics dictionaries and crash)."""
    report = reproduce.report
    budget = reproduce.budgets.make_budget("cpu")
    cells = {c.key: c for c in budget.cells}

    def stats(mean, seconds):
        return {"mean": mean, "std": 0.0, "n": 1, "sets": 1, "fit_seconds": seconds}

    measured = {"ipc1-md": stats(70.0, 1000.0), "ipc1-md-rep": stats(71.0, 1100.0),
                "ipc1-md-rep@idc-eval": stats(99.0, 1100.0), "ipc1-md-rep@k50": stats(69.0, 500.0)}
    results = report.Results(budget, tmp_path, cells, {key: measured.get(key) for key in cells})
    text = "\n".join(report.time_to_accuracy(results))
    assert "| 100 | 71.0 | yes | 1100 | 1.10 (*) |" in text  # no machine recorded: flagged
    assert "| 50 | 69.0 | no | 500 | 0.50 (*) |" in text
    assert "99.0" not in text
    host = ["AMD EPYC (avx512_bf16), malloc keep-freed"]
    for key in measured:
        measured[key]["machines"] = host
    measured["ipc1-md-rep@k50"]["machines"] = ["AMD EPYC (avx2), malloc default"]
    text = "\n".join(report.time_to_accuracy(report.Results(budget, tmp_path, cells,
                                                             {key: measured.get(key) for key in cells})))
    assert "| 100 | 71.0 | yes | 1100 | 1.10 |" in text and "| 50 | 69.0 | no | 500 | 0.50 (*) |" in text
    assert "(*) made on AMD EPYC (avx2), malloc default: not the machine of md's record" in text


def test_an_evaluation_continues_from_the_networks_it_kept(reproduce, tmp_path, monkeypatch):
    """Scored a step at a time, an evaluation gives one call's accuracies; stopped after a
    step, the rerun scores only the networks left; a kept file of another set is ignored."""
    import gradmatch.evaluation
    from gradmatch.datasets import load_digits_images

    runner = reproduce.runner
    (X, y), test = load_digits_images()
    rows = np.concatenate([np.flatnonzero(y == c)[:2] for c in np.unique(y)])
    X_set, y_set = X[rows], y[rows]
    norm = runner.real_normalization(X)
    made = runner.SetToScore(X_set, y_set, norm, fit_seconds=1.0)
    cell = reproduce.budgets.Cell("random", 1, 1, 1, 3, 2)
    whole = gradmatch.evaluation.evaluate_set(X_set, y_set, *test, normalization=norm, n_models=3, epochs=2,
                                              random_state=7, n_jobs=1).accuracies
    progress = tmp_path / "eval.json"

    calls = []

    def stopping_after_one_step(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(kwargs["random_state"])
        return gradmatch.evaluation.evaluate_set(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_set", stopping_after_one_step)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate_in_steps(made, cell, 7, test, 1, progress)
    kept = json.loads(progress.read_text())
    assert kept["accuracies"] == whole[:1]

    counted = []

    def counting(*args, **kwargs):
        counted.append(kwargs["random_state"])
        return gradmatch.evaluation.evaluate_set(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_set", counting)
    accuracies, seconds = runner.evaluate_in_steps(made, cell, 7, test, 1, progress)
    assert accuracies == whole and counted == [8, 9] and seconds >= kept["seconds"] > 0
    # Another set (one pixel changed) does not inherit the kept networks: all are scored again.
    counted.clear()
    other = runner.SetToScore(X_set.copy(), y_set, norm, fit_seconds=1.0)
    other.X[0, 0, 0] += 1.0
    progress.write_text(json.dumps(kept))
    runner.evaluate_in_steps(other, cell, 7, test, 2, progress)
    assert counted == [7, 9]

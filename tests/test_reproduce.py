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
    assert cells == ["ipc1-dc", "ipc1-herding", "ipc1-md", "ipc1-md+dsa", "ipc1-md@dsa-eval",
                     "ipc1-random", "ipc1-random@spread", "whole-1ep"]
    # Every set made is saved, and the DSA re-evaluation cell reuses MD's.
    sets = sorted(p.name for p in (out / "sets").glob("*.npz"))
    assert sets == sorted([f"ipc1-{m}-set0.npz" for m in ("dc", "herding", "md", "md+dsa", "random")]
                          + ["ipc1-random-set1.npz"])  # the Random investigation's second selection
    reused = json.loads((out / "cells" / "ipc1-md@dsa-eval.json").read_text())
    assert reused["budget"]["reuse_sets"] and reused["budget"]["eval_augment"] == "dsa"
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
    for heading in ("Table 1", "Table 2", "Table 3", "Ordering at ipc 1", "with DSA"):
        assert heading in tables
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

"""benchmarks/speed.py --dm end to end at a tiny size (seconds): DM beside gradient matching."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradmatch.datasets import FASHION_MNIST_DIR, DatasetError, load_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "speed.py"
TINY = ["--dm", "--per-class", "12", "--batch-real", "4", "--dm-repeats", "2", "--gm-repeats", "1",
        "--threads", "1"]


def run_dm(tmp_path, *args):
    out = tmp_path / "speed-dm"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), *TINY, *args, "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md").read_text(), proc.stdout


@pytest.mark.slow
def test_dm_mode_on_random_data_estimates_multi_step_gm_iterations(tmp_path):
    record, table, stdout = run_dm(tmp_path, "--ipcs", "1", "2", "--data-dir", str(tmp_path / "none"))
    settings = record["settings"]
    assert settings["ipcs"] == [1, 2] and settings["batch_real"] == 4 and settings["dm_repeats"] == 2
    # Without the files the data are random, and the output says so and why.
    assert settings["data"].startswith("random images of Fashion-MNIST's shape (120: 12 per class;")
    assert str(tmp_path / "none") in settings["data"] and "Data: random images" in table
    assert {"platform", "cpu_count", "torch", "gradmatch", "device"} <= set(record["machine"])
    rows = {r["ipc"]: r for r in record["rows"]}
    assert list(rows) == [1, 2]
    for r in rows.values():
        assert r["dm_s"] > 0 and len(r["dm_all"]) == 2
        assert r["fixed_over_dm"] == pytest.approx(r["gm_fixed_s"] / r["dm_s"])
        assert r["adaptive_over_dm"] == pytest.approx(r["gm_adaptive_s"] / r["dm_s"])
        assert r["dm_iterations_per_hour"] == pytest.approx(3600 / r["dm_s"])
    # ipc 1: T = 1, one matching step timed whole, the same for both schedules.
    assert not rows[1]["gm_estimated"] and rows[1]["gm_fixed_s"] == rows[1]["gm_adaptive_s"] > 0
    # ipc 2: T = 2 (DC's loops interpolated): estimated from a matching and a network step.
    gm = rows[2]["gm"]
    assert rows[2]["gm_estimated"] and gm["T"] == 2 and gm["zeta"] == 6
    assert gm["fixed"]["network_steps"] == 6 and gm["adaptive"]["network_steps"] == 50  # eq. 12: 50 after t = 0
    for schedule in ("fixed", "adaptive"):
        expected = 2 * gm["matching_step_s"] + gm[schedule]["network_steps"] * gm["network_step_s"]
        assert gm[schedule]["seconds"] == pytest.approx(expected)
    assert "| ipc | DM iteration (s) | DM iterations per hour | GM fixed (s) | GM adaptive (s) |" in table
    assert "(est.)" in table and "Machine:" in table and "ipc 2: DM iteration" in stdout


@pytest.mark.slow
def test_dm_mode_on_fashion_mnist_times_whole_gm_iterations(tmp_path):
    try:
        load_fashion_mnist(FASHION_MNIST_DIR)
    except DatasetError:
        pytest.skip("needs the Fashion-MNIST IDX files")
    record, table, _ = run_dm(tmp_path, "--ipcs", "2", "--gm-full")
    assert record["settings"]["data"] == "Fashion-MNIST training images (120: 12 per class)"
    (row,) = record["rows"]
    assert not row["gm_estimated"] and "(est.)" not in table
    assert row["gm"]["fixed"]["network_steps"] == 6 and row["gm"]["adaptive"]["network_steps"] == 50
    assert row["gm_fixed_s"] > 0 and row["gm_adaptive_s"] > 0

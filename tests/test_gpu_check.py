"""benchmarks/gpu_check.py: one line and nothing written without CUDA; every check runs on the CPU at a tiny size.

The checks are meant for a GPU; here each is called with ``device="cpu"`` and
``TINY`` sizes so that their logic (fits, comparisons, the one-rank group,
torchrun, timing against the committed CPU figures, the report) is exercised
on every machine. One torch thread: the checks' tensors are tiny.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


@pytest.fixture
def one_thread(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the subprocesses
    yield
    torch.set_num_threads(before)


def _listing(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_without_cuda_one_line_exit_0_nothing_written(tmp_path):
    results = ROOT / "benchmarks" / "results"
    before = _listing(results)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "CUDA is not available" in proc.stdout
    assert _listing(results) == before and list(tmp_path.iterdir()) == []


def test_fits(gc, one_thread):
    res = gc.check_fits(device="cpu", size=gc.TINY)
    assert res["status"] == "pass", res["summary"]
    assert len(res["reducers"]) == 5
    assert all(not r[kind]["problems"] for r in res["reducers"].values() for kind in ("numpy", "torch"))


def test_determinism(gc, one_thread):
    res = gc.check_determinism(device="cpu", size=gc.TINY)
    assert res["status"] == "pass", res["summary"]
    # The CPU is exact, with its default kernels too.
    for key in ("gm_first_update", "gm_fit_default_kernels", "gm_fit_deterministic_kernels", "dm_fit"):
        assert res[key]["max_abs_diff"] == 0.0, key
    assert res["gm_first_update"]["update_max_abs"] > 0 and res["herding"]["same_selection"]
    assert not torch.are_deterministic_algorithms_enabled()  # restored


def test_bf16(gc, one_thread):
    res = gc.check_bf16(device="cpu", size=gc.TINY)
    assert res["status"] in ("pass", "skip"), res["summary"]  # skip: no bf16 hardware, it fell back
    if res["status"] == "pass":
        assert res["precision_used"] == "bf16" and 0 < res["first_update"]["relative_diff"] <= gc.BF16_REL_TOL
        assert res["first_update"]["cosine"] > 0.9 and res["fit"]["finite"]


def test_distributed_one_rank_group_and_torchrun(gc, one_thread):
    res = gc.check_distributed(device="cpu", size=gc.TINY)
    assert res["status"] == "pass", (res["summary"], res["torchrun"].get("output"))
    assert res["group"]["backend"] == "gloo" and res["group"]["n_ranks_"] == 1
    assert res["torchrun"]["n_ranks_"] == 1 and not res["sharding_exercised"]
    assert "sharding was not exercised" in res["summary"]


def test_speed_beside_committed_cpu_figures(gc, one_thread, tmp_path):
    res = gc.check_speed(device="cpu", size=gc.TINY, data_dir=tmp_path / "none")
    assert res["status"] == "pass", res["summary"]
    assert res["data"].startswith("random 1x28x28 images")
    cells = {(r["method"], r["ipc"], r["variant"]): r for r in res["rows"]}
    assert set(cells) == {("gradient matching", 1, "float32"), ("gradient matching", 1, "bf16"), ("DM", 1, "float32")}
    for row in cells.values():
        assert row["seconds"] > 0 and row["cpu_seconds"] > 0 and row["over_cpu"] > 0


def test_cpu_reference_reads_the_committed_results(gc):
    refs = gc.cpu_reference()
    for key in [("gm", 1, v) for v in gc.VARIANTS] + [("gm", 10, v) for v in gc.VARIANTS] + [("dm", 10, "float32")]:
        assert refs[key][0] > 0, key


def test_cuda_tests_runs_pytest_and_counts(gc, one_thread):
    res = gc.check_cuda_tests(device="cpu", size=gc.TINY, tests=gc.CUDA_TESTS[1:2])
    assert res["status"] == "pass" and res["exit"] == 0, res.get("output_tail")
    expected = {"passed": 1} if torch.cuda.is_available() else {"skipped": 1}
    assert res["counts"] == expected
    assert all(Path(ROOT, t.split("::")[0]).is_file() for t in gc.CUDA_TESTS)


def test_run_all_writes_both_files_and_fails_on_a_failed_check(gc, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gc, "check_fits", lambda device, size: {"status": "pass", "summary": "a | b"})

    def broken(device, size):
        raise RuntimeError("boom")

    monkeypatch.setattr(gc, "check_bf16", broken)
    rc = gc.run_all("cpu", gc.TINY, tmp_path / "gpu_check", ["fits", "bf16"])
    assert rc == 1
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["checks"]["fits"]["status"] == "pass" and record["checks"]["bf16"]["status"] == "fail"
    assert "RuntimeError: boom" in record["checks"]["bf16"]["summary"] and record["result"].startswith("FAILED")
    assert {"torch", "cuda", "cpu", "device"} <= set(record["machine"])
    page = (tmp_path / "gpu_check.md").read_text()
    assert "| fits | pass |" in page and "a \\| b" in page and "| bf16 | fail |" in page
    out = capsys.readouterr().out
    assert "[bf16] FAIL in" in out and "summary:" in out

"""benchmarks/allocator.py end to end with a tiny batch (seconds): one process per variant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradmatch.memory import glibc_available

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "allocator.py"


@pytest.mark.slow
@pytest.mark.skipif(not glibc_available(), reason="the allocator variants need glibc")
def test_allocator_benchmark_compares_variants_in_fresh_processes(tmp_path):
    out = tmp_path / "alloc"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--variants", "keep-freed", "--rounds", "1",
                           "--repeats", "1", "--threads", "1", "--per-class", "8", "--batch-real", "8",
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.with_suffix(".json").read_text())
    runs = {r["variant"]: r for r in result["runs"]}
    # The default is always run, as the reference of every ratio.
    assert list(runs) == ["default", "keep-freed"]
    assert runs["keep-freed"]["keep_freed_active"] is True and runs["default"]["keep_freed_active"] is None
    assert result["summary"]["default"]["float32_step_ratio"] == pytest.approx(1.0)
    for r in runs.values():
        assert r["float32_step_s"] > 0 and r["peak_rss_mib"] > 0
        # bf16 is timed exactly where the CPU does it in hardware.
        assert (r["bf16_step_s"] is not None) == result["settings"]["bf16_hardware"]
    table = out.with_suffix(".md").read_text()
    assert "| default |" in table and "| keep-freed |" in table and "Machine:" in table

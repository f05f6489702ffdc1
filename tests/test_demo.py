"""python -m gradmatch.demo, the README's main job, at a tiny budget."""

from __future__ import annotations

import re

import pytest

from gradmatch.demo import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")

TINY = ["--iterations", "2", "--models", "2", "--epochs", "3", "--jobs", "1", "--verbose", "0"]


def _run(capsys, *extra) -> str:
    assert main([*TINY, *extra]) == 0
    return capsys.readouterr().out


def test_demo_prints_the_comparison_and_draws_the_set(capsys, tmp_path):
    grid = tmp_path / "grid.png"
    out = _run(capsys, "--grid", str(grid))
    assert "| condensed (gradmatch, 1 set x 2 networks) |" in out
    assert "| random selection (2 sets x 1 network) |" in out
    assert re.search(r"difference: [+-]\d+\.\d points; it (exceeds|does not exceed) twice its standard error", out)
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_prints_the_same_figures_with_and_without_kept_memory(capsys):
    def figures(text):  # every accuracy and the matching loss, not the seconds
        return re.findall(r"\d+\.\d \+- \d+\.\d %|loss \d+ -> \d+", text)

    kept = figures(_run(capsys, "--grid", ""))
    plain = figures(_run(capsys, "--grid", "", "--no-keep-freed-memory"))
    assert len(kept) == 3 and kept == plain

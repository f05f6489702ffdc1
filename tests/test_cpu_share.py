"""gradmatch.cpu_share: other processes' share of the CPU during a fit's first iteration."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gradmatch import cpu_share
from gradmatch.cpu_share import CpuShareProbe, cores_used_by_others, oversubscription_note, read_busy_seconds

STAT = "cpu  {user} 0 {system} 99999 50 {irq} 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"


def test_busy_seconds_sum_every_busy_field_and_leave_idle_out(tmp_path):
    path = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    path.write_text(STAT.format(user=3 * hz, system=hz, irq=hz, steal=hz))
    assert read_busy_seconds(str(path)) == pytest.approx(6.0)
    path.write_text("intr 1 2 3\n")
    assert read_busy_seconds(str(path)) is None
    assert read_busy_seconds(str(tmp_path / "missing")) is None


@given(own=st.floats(0, 1e4), others=st.floats(0, 1e4), wall=st.floats(1e-3, 1e4))
def test_cores_used_by_others_is_the_rest_per_second(own, others, wall):
    got = cores_used_by_others(own + others, own, wall)
    assert got == pytest.approx(others / wall, rel=1e-9, abs=1e-9)
    assert cores_used_by_others(own, own + others, wall) == 0.0  # never negative


def test_the_note_speaks_only_when_threads_and_others_exceed_the_cores():
    assert oversubscription_note(others=1.0, threads=2, cores=2) is not None
    assert "n_threads=1" in oversubscription_note(others=1.9, threads=2, cores=2)
    assert oversubscription_note(others=1.0, threads=2, cores=4) is None  # room for both
    assert oversubscription_note(others=0.3, threads=2, cores=2) is None  # noise, not a job
    assert oversubscription_note(others=2.0, threads=1, cores=2) is None


def test_probe_reads_others_from_the_readers_difference():
    readings = iter([100.0, 100.0 + 1e6])
    probe = CpuShareProbe.start(reader=lambda: next(readings))
    assert probe.others(reader=lambda: next(readings)) > 1.0
    assert CpuShareProbe.start(reader=lambda: None).others(reader=lambda: 5.0) is None


def test_a_cpu_fit_says_when_the_cpu_was_shared(digits, monkeypatch, capsys):
    """Beside the progress bar when verbose, as a warning otherwise."""
    from gradmatch import GradientMatchingCondenser, engine

    monkeypatch.setattr(cpu_share.CpuShareProbe, "others", lambda self, reader=None: 1.5)
    monkeypatch.setattr(engine, "CPU_SHARE_MIN_SECONDS", 0.0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    X, y = digits
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        GradientMatchingCondenser(ipc=1, iterations=2, verbose=1, random_state=0).fit(X, y)
        said = capsys.readouterr().err
        with pytest.warns(UserWarning, match="other processes kept 1.5 of the 2 CPU cores busy"):
            GradientMatchingCondenser(ipc=1, iterations=2, verbose=0, random_state=0).fit(X, y)
        quiet = capsys.readouterr().err
        torch.set_num_threads(1)  # one thread fits beside the others: nothing to say
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            GradientMatchingCondenser(ipc=1, iterations=2, verbose=0, random_state=0).fit(X, y)
    finally:
        torch.set_num_threads(threads)
    assert "other processes kept 1.5 of the 2 CPU cores busy" in said and said.count("other processes") == 1
    assert "other processes" not in quiet

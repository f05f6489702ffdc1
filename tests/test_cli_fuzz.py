"""Hypothesis fuzzing of the command line: odd arguments, odd paths, corrupt files.

Whatever the draw, each of ``condense``, ``evaluate`` and ``show`` ends with
exit status 0, 1 (a failure it explains) or 2 (a bad command line); a failure
prints exactly one line on stderr, ``gradmatch: error: ...``; and no file
changes except the output the command was asked to write, and only when it
succeeds. The draws keep real work tiny (random selection, one epoch, one
network), so the file runs in well under a minute.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradmatch.cli import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")

EXAMPLES = int(os.environ.get("GRADMATCH_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(max_examples=EXAMPLES or 15, deadline=None, derandomize=EXAMPLES is None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Names of the files in the playground (see ``playground``) a draw may point at.
FILES = ("good.npz", "good.png", "garbage.npz", "truncated.npz", "notes.txt", "folder", "missing.npz",
         "nofolder/out.npz", "out.npz", "out.json", "out.png", "")


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    """A folder with a good set (twice, one named .png), corrupt files, a folder and free names."""
    folder = tmp_path_factory.mktemp("cli-fuzz")
    assert main(["condense", "--method", "random", "--out", str(folder / "good.npz"), "--quiet"]) == 0
    good = (folder / "good.npz").read_bytes()
    (folder / "good.png").write_bytes(good)
    (folder / "garbage.npz").write_bytes(b"\x00\x01 not a zip at all" * 10)
    (folder / "truncated.npz").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("notes\n")
    (folder / "folder").mkdir()
    return folder


def snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def reset(folder, before):
    for path in list(folder.rglob("*")):
        if path.is_file() and path not in before:
            path.unlink()
    for path, content in before.items():
        if path.read_bytes() != content:
            path.write_bytes(content)


def paths(folder):
    return st.sampled_from(FILES).map(lambda name: str(folder / name) if name else "")


def condense_args(folder):
    method = st.sampled_from(["random", "random", "herding", "bogus"])
    extra = st.lists(st.sampled_from([
        ["--ipc", "0"], ["--ipc", "2"], ["--ipc", "x"], ["--seed", "-1"], ["--iterations", "1"],
        ["--match", "cross"], ["--features", "pixels"], ["--dataset", "cifar10"], ["--data-dir", "/nonexistent"],
        ["--checkpoint", ""], ["--model", "mlp"], ["--quiet"], ["--lr-syn", "nan"],
    ]), max_size=3)
    return st.tuples(method, paths(folder), extra).map(
        lambda t: ["condense", "--method", t[0], "--out", t[1], *[a for pair in t[2] for a in pair]])


def evaluate_args(folder):
    extra = st.lists(st.sampled_from([
        ["--models", "0"], ["--epochs", "-1"], ["--dataset", "digits"], ["--dataset", "mnist"],
        ["--model", "mlp"], ["--augment", "blur"], ["--jobs", "1"],
    ]), max_size=3)
    json_out = st.one_of(st.just([]), paths(folder).map(lambda p: ["--json", p]))
    return st.tuples(paths(folder), json_out, extra).map(
        lambda t: ["evaluate", t[0], "--models", "1", "--epochs", "1", *t[1], *[a for pair in t[2] for a in pair]])


def show_args(folder):
    out = st.one_of(st.just([]), paths(folder).map(lambda p: ["--out", p]))
    title = st.one_of(st.just([]), st.text(max_size=5).map(lambda s: ["--title", s]))
    return st.tuples(paths(folder), out, title).map(lambda t: ["show", t[0], *t[1], *t[2]])


def output_of(argv):
    """The file the command was asked to write (show's default included), or None."""
    for option in ("--out", "--json"):
        if option in argv:
            return argv[argv.index(option) + 1]
    if argv[0] == "show":
        return os.path.splitext(argv[1])[0] + ".png"
    return None


@FUZZ
@given(data=st.data())
def test_every_command_fails_in_one_line_and_changes_only_its_output(playground, capsys, data):
    command = data.draw(st.sampled_from([condense_args, evaluate_args, show_args]), label="command")
    argv = data.draw(command(playground), label="argv")
    before = snapshot(playground)
    try:
        status = main(argv)
        captured = capsys.readouterr()
        assert status in (0, 1, 2), (argv, status)
        if status != 0:
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("gradmatch: error: "), (argv, captured.err)
        after = snapshot(playground)
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        allowed = {str(playground / output_of(argv))} if status == 0 and output_of(argv) else set()
        assert {str(p) for p in changed} <= allowed, (argv, status, changed)
        assert not list(playground.rglob("*.tmp")), argv
    finally:
        reset(playground, before)


@pytest.mark.parametrize("argv, status", [
    (["show", "good.png"], 1),  # the default picture path is the set itself
    (["evaluate", "good.npz", "--json", "good.npz"], 1),
    (["show", "garbage.npz"], 1),
    (["evaluate", "truncated.npz"], 1),
])
def test_cases_the_fuzzing_is_built_around(playground, capsys, argv, status):
    before = snapshot(playground)
    argv = [str(playground / a) if a in FILES else a for a in argv]
    try:
        assert main(argv) == status
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert snapshot(playground) == before
    finally:
        reset(playground, before)


def test_the_playground_set_is_loadable(playground):
    from gradmatch.io import load_set

    assert np.isfinite(load_set(playground / "good.npz").X).all()

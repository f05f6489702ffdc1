"""The tutorials' code runs: docs/own_data.md, block by block, as a reader would run it.

The ```python blocks of each page run in order in one namespace, in a
temporary working directory (the page writes its example files there). A
block whose fence follows a ``<!-- no-test -->`` line (needs a GPU, or hours)
is skipped. Comment lines that follow a ``print(...)`` line (``# output``)
are the output the page promises: each must appear in what that block
printed, ``...`` standing for text left out. The page's whole code must run
within :data:`TIME_BUDGET_S`.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
import warnings
from pathlib import Path

import pytest
import torch

# One torch thread: the page's networks are tiny, and two threads on a busy 2-core machine spin.
pytestmark = pytest.mark.usefixtures("torch_single_thread")

DOCS = Path(__file__).resolve().parents[1] / "docs"

#: Seconds the code of one page may take with one torch thread on 2 busy CPU cores (it took 3 s there).
TIME_BUDGET_S = 30

NO_TEST = "<!-- no-test -->"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, skipped)`` of every ```python block, in order.

    ``skipped`` when the last non-blank line before the fence is ``<!-- no-test -->``.
    """
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        skipped = bool(before) and before[-1].strip() == NO_TEST
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1), skipped))
    return blocks


def promised_output(code: str) -> list[str]:
    """The ``# ...`` comment lines that directly follow a ``print(`` line (or another such comment)."""
    promised, after_print = [], False
    for line in code.splitlines():
        stripped = line.strip()
        if after_print and stripped.startswith("# "):
            promised.append(stripped[2:])
            continue
        after_print = stripped.startswith("print(")
    return promised


def check_output(promise: str, printed: str, where: str) -> None:
    for fragment in (part.strip() for part in promise.split("...")):
        assert fragment in printed, f"{where}: the page promises {promise!r}; the block printed:\n{printed}"


def test_python_blocks_and_promised_output_are_found():
    page = "\n".join([
        "text", "```python", "x = 1", "print(x)", "# 1", "# and more", "y = 2  # not output", "```",
        "", NO_TEST, "", "```python", "raise SystemExit", "```",
    ])
    blocks = python_blocks(page)
    assert [(line, skipped) for line, _, skipped in blocks] == [(2, False), (12, True)]
    assert promised_output(blocks[0][1]) == ["1", "and more"]
    check_output("a ... c", "a b c", "here")
    with pytest.raises(AssertionError, match="promises"):
        check_output("a ... d", "a b c", "here")


@pytest.fixture
def restore_global_state():
    """The page may set torch's threads or register networks: undo it for the other tests."""
    from gradmatch.networks import list_models, unregister_model

    threads, models = torch.get_num_threads(), set(list_models())
    yield
    torch.set_num_threads(threads)
    for name in set(list_models()) - models:
        unregister_model(name)


@pytest.mark.parametrize("page", ["own_data.md"])
def test_tutorial_code_runs(page, tmp_path, monkeypatch, restore_global_state):
    blocks = python_blocks((DOCS / page).read_text(encoding="utf-8"))
    assert sum(not skipped for _, _, skipped in blocks) >= 5, "the page lost its code"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__tutorial__"}
    start = time.perf_counter()
    for line, code, skipped in blocks:
        if skipped:
            compile(code, f"{page}:{line}", "exec")  # still valid Python
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the page's own warnings (e.g. no bf16 here) are not failures
            exec(compile(code, f"{page}:{line}", "exec"), namespace)
        for promise in promised_output(code):
            check_output(promise, printed.getvalue(), f"{page}, block at line {line}")
    seconds = time.perf_counter() - start
    assert seconds < TIME_BUDGET_S, f"{page}'s code took {seconds:.0f} s, over its budget of {TIME_BUDGET_S} s"

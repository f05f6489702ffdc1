"""The Sphinx documentation builds with warnings as errors.

Runs ``python -m sphinx -W --keep-going -b html docs <tmp>`` in a fresh
process (the build imports every documented module) with the output and the
doctrees in ``tmp_path``, so nothing is written into the checkout. Skipped
when the documentation's requirements (``docs/requirements.txt``) are not
installed. Takes about 10 seconds on 2 CPU cores.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: The build must finish well within this; a slower one fails the test.
BUILD_TIMEOUT_S = 90


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    pytest.importorskip("numpydoc")
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ in docs/_ext
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the documentation build took more than {BUILD_TIMEOUT_S} s")
    assert proc.returncode == 0, (
        f"sphinx failed (exit {proc.returncode}); a warning is an error:\n"
        f"{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}"
    )

    # The Markdown pages, the user guide with the paper's equations, and the API reference.
    for page in ["index", "installation", "quickstart", "method", "performance", "reliability",
                 "user_guide", "examples", "benchmarks", "api/index", "api/estimators"]:
        assert (out / f"{page}.html").is_file(), page
    guide = (out / "user_guide.html").read_text(encoding="utf-8")
    for tag in (4, 5, 6, 7, 8, 9, 12):
        assert f"\\tag{{{tag}}}" in guide
    api = (out / "api" / "estimators.html").read_text(encoding="utf-8")
    for name in ["GradientMatchingCondenser", "Herding", "RandomCoreset", "DivergenceError",
                 "fit_resample"]:
        assert name in api
    # Optional modules get a page exactly when they exist.
    for module in ["pipeline", "cli"]:
        exists = importlib.util.find_spec(f"gradmatch.{module}") is not None
        assert (out / "api" / f"{module}.html").is_file() == exists, module

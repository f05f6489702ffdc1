"""The released condensed sets: package data, manifest, ``load_condensed`` and the CLI by name.

Nothing here trains or evaluates a network: the accuracies are checked against
the reproduction's committed cell records (``docs/results/reproduce-cpu/cells``),
and ``gradmatch evaluate`` is only checked up to the point where it would load
Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import gradmatch
from gradmatch.cli import _load_set_argument, _resolve_dataset, _set_argument, main
from gradmatch.datasets import list_condensed, load_condensed

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = Path(gradmatch.__file__).resolve().parent / "condensed"
MANIFEST = json.loads((PACKAGE_DATA / "manifest.json").read_text(encoding="utf-8"))
RELEASED = list_condensed()


def _cell(key: str) -> dict:
    return json.loads((ROOT / "docs" / "results" / "reproduce-cpu" / "cells" / f"{key}.json").read_text())


def test_the_release_has_the_headline_methods():
    names = {f"{d}/ipc{i}-{m}" for d, i, m in RELEASED}
    for name in ["fashion-mnist/ipc1-random", "fashion-mnist/ipc1-dc", "fashion-mnist/ipc1-md",
                 "fashion-mnist/ipc1-dc+dsa", "fashion-mnist/ipc1-md+dsa", "fashion-mnist/ipc10-md",
                 "fashion-mnist/ipc10-mda", "fashion-mnist/ipc10-mda+dsa", "fashion-mnist/ipc10-dc"]:
        assert name in names
    assert names == set(MANIFEST["sets"])


@pytest.mark.parametrize("dataset, ipc, method", RELEASED)
def test_every_released_set_loads(dataset, ipc, method):
    X, y, info = load_condensed(dataset, ipc, method)
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)
    # A multi-formation set gives its decoded images: factor**2 per stored one.
    factor = info["factor"]
    assert factor == (2 if "-f2" in method else 1)
    assert info["stored_shape"] == (10 * ipc, 28, 28)
    per_class = ipc * factor**2
    assert X.shape == (10 * per_class, 28, 28) and X.dtype == np.float32
    assert np.isfinite(X).all()
    assert y.shape == (10 * per_class,)
    assert np.array_equal(np.bincount(y, minlength=10), np.full(10, per_class))
    assert list(info["classes"]) == list(range(10))
    assert info["dataset"] == dataset and info["ipc"] == ipc and info["method"] == method
    assert info["name"] == f"{dataset}/ipc{ipc}-{method}"
    # What evaluating it needs: the real data's statistics, one channel.
    assert len(info["normalization"]["mean"]) == len(info["normalization"]["std"]) == 1
    # The installed file is the one the manifest describes, and the reproduction's own file.
    data = Path(info["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]
    source = ROOT / info["source"]
    if source.exists():
        assert source.read_bytes() == data
    assert gradmatch.load_set(info["path"]).settings["random_state"] == info["seed"]


@pytest.mark.parametrize("dataset, ipc, method", RELEASED)
def test_recorded_accuracy_is_its_cells(dataset, ipc, method):
    info = load_condensed(dataset, ipc, method)[2]
    record = _cell(info["cell"])
    entry = record["sets"][info["set_index"]]
    assert entry["seed"] == info["seed"]
    assert info["accuracy"]["mean"] == pytest.approx(100 * np.mean(entry["accuracies"]), abs=1e-9)
    assert info["accuracy"]["std"] == pytest.approx(100 * np.std(entry["accuracies"]), abs=1e-9)
    assert info["accuracy"]["n"] == len(entry["accuracies"])
    pooled = [a for s in record["sets"] for a in s["accuracies"]]
    assert info["cell_accuracy"]["mean"] == pytest.approx(100 * np.mean(pooled), abs=1e-9)
    budget = record["budget"]
    assert budget["ipc"] == ipc and budget["method"].split("@")[0] == method
    assert info["K"] == budget["iterations"]
    assert info["recipe"]["epochs"] == budget["epochs"]
    assert info["recipe"]["augment"] == budget.get("eval_augment")
    assert info["machine"] == entry["machine"]
    for other in info["also_evaluated"]:
        again = _cell(other["cell"])["sets"][other["set_index"]]
        assert other["accuracy"]["mean"] == pytest.approx(100 * np.mean(again["accuracies"]), abs=1e-9)


def test_manifest_lists_exactly_the_shipped_files():
    shipped = {p.relative_to(PACKAGE_DATA).as_posix() for p in PACKAGE_DATA.rglob("*") if p.is_file()}
    assert shipped == {e["file"] for e in MANIFEST["sets"].values()} | {"manifest.json"}
    assert MANIFEST["format"] == "gradmatch.condensed-manifest"


def test_package_data_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"condensed/**/*.npz"' in text and '"condensed/*.json"' in text


def test_manifest_is_what_the_script_writes():
    """``benchmarks/release_sets.py --check``: the package data matches the committed results."""
    spec = importlib.util.spec_from_file_location("release_sets", ROOT / "benchmarks" / "release_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0


def test_names_are_normalised():
    X, y, info = load_condensed(" Fashion_MNIST ", np.int64(1), "MD")
    assert info["name"] == "fashion-mnist/ipc1-md" and X.shape == (10, 28, 28)


@pytest.mark.parametrize("args", [("fashion-mnist", 1, "herding"), ("fashion-mnist", 50, "md"),
                                  ("digits", 1, "md"), ("fashion-mnist", 1, "bogus")])
def test_unknown_set_lists_the_released_ones(args):
    with pytest.raises(ValueError, match=r"no released set .*released: .*fashion-mnist/ipc1-md, "):
        load_condensed(*args)


def test_ipc_must_be_an_integer():
    with pytest.raises(TypeError, match="ipc must be an integer"):
        load_condensed("fashion-mnist", True, "md")
    with pytest.raises(TypeError, match="ipc must be an integer"):
        load_condensed("fashion-mnist", 1.0, "md")


def test_the_returned_info_is_a_copy():
    info = load_condensed("fashion-mnist", 1, "md")[2]
    info["accuracy"]["mean"] = -1
    assert load_condensed("fashion-mnist", 1, "md")[2]["accuracy"]["mean"] > 0


# --------------------------------------------------------------------------- the CLI by name

def test_show_by_name_writes_into_the_working_directory(tmp_path, monkeypatch, capsys):
    before = sorted(PACKAGE_DATA.rglob("*"))
    monkeypatch.chdir(tmp_path)
    assert main(["show", "fashion-mnist/ipc1-md"]) == 0
    out = tmp_path / "fashion-mnist-ipc1-md.png"
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out
    assert sorted(PACKAGE_DATA.rglob("*")) == before


def test_show_by_name_with_out(tmp_path, capsys):
    out = tmp_path / "set.png"
    assert main(["show", "Fashion_MNIST/ipc10-MDA+dsa", "--out", str(out)]) == 0
    assert out.is_file()
    assert "drew 100 images (10 classes)" in capsys.readouterr().out


def test_an_existing_file_wins_over_a_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fashion-mnist").mkdir()
    (tmp_path / "fashion-mnist" / "ipc1-md").write_bytes(b"not a set")
    assert main(["show", "fashion-mnist/ipc1-md", "--out", str(tmp_path / "x.png")]) == 1
    assert "fashion-mnist/ipc1-md" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", ["show", "evaluate"])
def test_unknown_names_list_the_released_sets(tmp_path, capsys, command):
    assert main([command, "fashion-mnist/ipc1-herding"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no released set 'fashion-mnist/ipc1-herding'" in err[0]
    assert "fashion-mnist/ipc10-mda+dsa" in err[0]
    missing = tmp_path / "nothing.npz"
    assert main([command, str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "fashion-mnist/ipc1-md" in err[0]


def test_evaluate_resolves_a_name_to_its_dataset():
    """What ``gradmatch evaluate fashion-mnist/ipc1-md`` loads, short of training networks."""
    args = argparse.Namespace(set=Path("fashion-mnist/ipc1-md"), dataset=None)
    file, released = _set_argument(args.set)
    assert released == ("fashion-mnist", 1, "md") and file.parent.parent == PACKAGE_DATA
    syn = _load_set_argument(file, released)
    _resolve_dataset(args, syn)
    assert args.dataset == "fashion-mnist"
    assert syn.normalization is not None and syn.X.shape == (10, 28, 28)

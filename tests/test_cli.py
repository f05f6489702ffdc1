"""The command line: ``gradmatch condense | evaluate | show`` (gradmatch.cli, python -m gradmatch).

Most tests call :func:`gradmatch.cli.main` in-process with tiny budgets on scikit-learn's
digits; two run ``python -m gradmatch`` in a subprocess. Datasets other than digits are
faked with small IDX files written to a temporary folder (read as ``--dataset mnist``).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradmatch
from gradmatch.cli import main
from gradmatch.io import load_set

pytestmark = pytest.mark.usefixtures("torch_single_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: A condensation budget that keeps one in-process run to a few seconds.
TINY = ["--iterations", "1", "--batch-real", "8", "--ipc", "1", "--quiet"]

HELP_OPTIONS = {
    None: ["--help", "--version", "condense", "evaluate", "show"],
    "condense": ["--dataset", "--data-dir", "--ipc", "--out", "--method", "--seed", "--quiet",
                 "--device", "--model", "--match", "--distance", "--schedule", "--iterations",
                 "--matching-steps", "--network-steps", "--lr-syn", "--lr-net", "--batch-real",
                 "--init", "--augment", "--checkpoint", "--checkpoint-every", "--features",
                 "--feature-epochs", "--keep-freed-memory"],
    "evaluate": ["SET", "--dataset", "--data-dir", "--models", "--epochs", "--model", "--jobs",
                 "--device", "--seed", "--json", "--keep-freed-memory"],
    "show": ["SET", "--out", "--title"],
}


def _write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.tobytes())


def _fake_idx_dataset(folder: Path, side: int, n_classes: int, scale: float = 255.0) -> Path:
    """Four IDX files of ``side x side`` uint8 images with labels 0..n_classes-1."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for stem, n in (("train", 40), ("t10k", 20)):
        labels = np.arange(n) % n_classes
        images = rng.uniform(0, scale, size=(n, side, side))
        _write_idx(folder / f"{stem}-images-idx3-ubyte", images)
        _write_idx(folder / f"{stem}-labels-idx1-ubyte", labels)
    return folder


def _error_line(err: str) -> str:
    """The single line of ``err``, checked to be a gradmatch error without a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradmatch: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def random_set(tmp_path_factory):
    """A random digits coreset (1 per class) saved by the command line."""
    path = tmp_path_factory.mktemp("cli") / "random.npz"
    assert main(["condense", "--method", "random", "--out", str(path), "--quiet"]) == 0
    return path


# ----------------------------------------------------------------------------- condense
def test_condense_writes_a_loadable_set(tmp_path, capsys):
    out = tmp_path / "syn.npz"
    assert main(["condense", "--dataset", "digits", "--out", str(out), "--seed", "3", *TINY]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "condensed digits" in lines[0]
    assert captured.err == ""  # --quiet: no progress bar
    syn = load_set(out)
    assert syn.method == "GradientMatchingCondenser"
    assert syn.X.shape == (10, 8, 8) and syn.y.tolist() == list(range(10))
    assert syn.settings["iterations"] == 1 and syn.settings["random_state"] == 3
    assert syn.settings["batch_real"] == 8 and syn.settings["verbose"] == 0
    assert len(syn.history["loss"]) == 1 and syn.normalization is not None


def test_condense_dm_writes_a_loadable_set(tmp_path, capsys):
    out = tmp_path / "dm.npz"
    assert main(["condense", "--method", "dm", "--out", str(out), "--seed", "4", "--iterations", "2",
                 "--batch-real", "16", "--augment", "none", "--quiet"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0]
    assert "condensed digits" in lines[0] and "with distribution matching (2 iterations" in lines[0]
    assert captured.err == ""
    syn = load_set(out)
    assert syn.method == "DistributionMatchingCondenser"
    assert syn.X.shape == (10, 8, 8) and syn.y.tolist() == list(range(10))
    assert syn.settings["iterations"] == 2 and syn.settings["batch_real"] == 16
    assert syn.settings["augment"] is None and syn.settings["random_state"] == 4
    # Options not given are DM's own defaults, not gradient matching's.
    assert syn.settings["lr_syn"] == 1.0 and syn.settings["init"] == "real"
    assert syn.settings["checkpoint_every"] == 100
    assert len(syn.history["loss"]) == 2 and syn.normalization is not None


@pytest.mark.parametrize("method, extra, cls", [
    ("herding", ["--features", "pixels"], "Herding"),
    ("random", [], "RandomCoreset"),
])
def test_condense_selectors(tmp_path, capsys, method, extra, cls):
    out = tmp_path / f"{method}.npz"
    assert main(["condense", "--method", method, "--ipc", "2", "--out", str(out), "--quiet", *extra]) == 0
    assert "selected 20 of the 1347 digits training images" in capsys.readouterr().out
    syn = load_set(out)
    assert syn.method == cls and syn.X.shape == (20, 8, 8)
    assert syn.sample_indices is not None and len(syn.sample_indices) == 20


def test_condense_checkpoint_folder(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    out = tmp_path / "syn.npz"
    args = ["condense", "--out", str(out), "--model", "mlp", "--schedule", "fixed",
            "--matching-steps", "1", "--network-steps", "0", "--checkpoint", str(ckpt), *TINY]
    assert main(args) == 0
    assert len(list(ckpt.glob("gradmatch-*.npz"))) == 1


def test_condense_and_evaluate_with_augmentation(tmp_path, capsys):
    out = tmp_path / "dsa.npz"
    assert main(["condense", "--out", str(out), "--augment", "crop_scale_rotate", *TINY]) == 0
    assert load_set(out).settings["augment"] == "crop_scale_rotate"
    report = tmp_path / "acc.json"
    assert main(["evaluate", str(out), "--models", "1", "--epochs", "2", "--device", "cpu",
                 "--augment", "dsa", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["augment"] == "dsa"


def test_condense_a_multi_formation_set_with_representative_batches_and_score_it_idc_style(tmp_path, capsys):
    out = tmp_path / "f2.npz"
    assert main(["condense", "--out", str(out), "--factor", "2", "--init", "mix", "--real-sampling",
                 "representative", "--recluster-every", "3", *TINY]) == 0
    line = capsys.readouterr().out.strip()
    assert "4 per class x 10 classes of 8x8 (stored as 1 per class, each decoding into 2x2)" in line
    syn = load_set(out)
    assert syn.factor == 2 and syn.X.shape == (40, 8, 8) and syn.X_stored.shape == (10, 8, 8)
    assert syn.settings["real_sampling"] == "representative" and syn.settings["recluster_every"] == 3
    assert "sampling_seconds" in syn.history
    report = tmp_path / "acc.json"
    assert main(["evaluate", str(out), "--models", "1", "--epochs", "2", "--device", "cpu", "--recipe", "idc",
                 "--json", str(report)]) == 0
    assert "2 epochs, IDC's recipe," in capsys.readouterr().out
    record = json.loads(report.read_text())
    assert record["recipe"] == "idc" and record["epochs"] == 2 and record["n_images"] == 40
    assert main(["evaluate", str(out), "--models", "1", "--epochs", "2", "--device", "cpu", "--mix", "cutmix"]) == 0
    assert "DC's recipe + cutmix" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--factor", "0"], "argument --factor"),
    (["--real-sampling", "kmeans"], "argument --real-sampling"),
    (["--recluster-every", "0"], "argument --recluster-every"),
])
def test_bad_formation_and_sampling_options_are_usage_errors(tmp_path, capsys, argv, match):
    assert main(["condense", "--out", str(tmp_path / "x.npz"), *argv, *TINY]) == 2
    assert match in capsys.readouterr().err


# ----------------------------------------------------------------------------- evaluate, show
def test_evaluate_prints_accuracy_and_writes_json(random_set, tmp_path, capsys):
    report = tmp_path / "acc.json"
    assert main(["evaluate", str(random_set), "--models", "1", "--epochs", "2", "--device", "cpu",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "+-" in out and "(n=1)" in out and "450 digits test images" in out
    record = json.loads(report.read_text())
    assert record["n"] == 1 and len(record["accuracies"]) == 1
    assert 0.0 <= record["mean"] <= 1.0 and record["std"] == 0.0
    assert record["model"] == "convnet" and record["epochs"] == 2 and record["method"] == "RandomCoreset"


def test_evaluate_refuses_zero_epochs(random_set, capsys):
    # Zero epochs would print the accuracy of untrained networks as the set's.
    assert main(["evaluate", str(random_set), "--epochs", "0", "--device", "cpu"]) == 2
    assert "--epochs: must be an integer >= 1, got '0'" in capsys.readouterr().err


def test_evaluate_warns_when_statistics_differ(random_set, tmp_path, capsys):
    # 8x8 images with labels 0..9, but in 0..255 where digits lie in 0..16.
    data = _fake_idx_dataset(tmp_path / "fake", side=8, n_classes=10)
    assert main(["evaluate", str(random_set), "--dataset", "mnist", "--data-dir", str(data),
                 "--models", "1", "--epochs", "1"]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("gradmatch: warning: ") for w in warnings)
    # The set says where it came from; the statistics say it too.
    assert "was made from digits; scoring it on mnist's test split as asked" in warnings[0]
    assert "another dataset" in warnings[1]
    assert "(n=1)" in captured.out


def test_evaluate_defaults_to_the_dataset_the_set_records(tmp_path, capsys):
    data = _fake_idx_dataset(tmp_path / "fake", side=8, n_classes=10)
    path = tmp_path / "mnist-random.npz"
    assert main(["condense", "--method", "random", "--dataset", "mnist", "--data-dir", str(data),
                 "--out", str(path), "--quiet"]) == 0
    assert load_set(path).dataset == "mnist"
    report = tmp_path / "acc.json"
    # No --dataset: the set's own (its files still come from --data-dir).
    assert main(["evaluate", str(path), "--data-dir", str(data), "--models", "1", "--epochs", "1",
                 "--json", str(report)]) == 0
    captured = capsys.readouterr()
    assert "20 mnist test images" in captured.out and captured.err == ""
    record = json.loads(report.read_text())
    assert record["dataset"] == record["set_dataset"] == "mnist"


def test_evaluate_needs_dataset_for_a_set_from_other_data(digits, tmp_path, capsys):
    from gradmatch import RandomCoreset
    from gradmatch.io import save_set

    path = save_set(tmp_path / "own.npz", RandomCoreset(ipc=1, random_state=0).fit(*digits),
                    dataset="my-scans")
    assert main(["evaluate", str(path), "--models", "1", "--epochs", "1"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "was made from 'my-scans'" in line and "give --dataset" in line
    # Sets that record no dataset keep the old default, digits.
    plain = save_set(tmp_path / "plain.npz", RandomCoreset(ipc=1, random_state=0).fit(*digits))
    assert main(["evaluate", str(plain), "--models", "1", "--epochs", "1"]) == 0
    assert "450 digits test images" in capsys.readouterr().out


def test_show_writes_a_png(random_set, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["show", str(random_set), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert str(out) in capsys.readouterr().out


def test_show_titles_the_picture_with_the_recorded_dataset(random_set, tmp_path, monkeypatch):
    import gradmatch.plotting

    titles = []
    real = gradmatch.plotting.plot_image_grid
    monkeypatch.setattr(gradmatch.plotting, "plot_image_grid",
                        lambda *a, title=None, **k: titles.append(title) or real(*a, title=title, **k))
    assert main(["show", str(random_set), "--out", str(tmp_path / "a.png")]) == 0
    assert main(["show", str(random_set), "--out", str(tmp_path / "b.png"), "--title", "mine"]) == 0
    assert titles == ["RandomCoreset: 1 per class of digits", "mine"]


# ----------------------------------------------------------------------------- help, version
@pytest.mark.parametrize("command", [None, "condense", "evaluate", "show"])
def test_help_is_complete(command, capsys):
    argv = ([command] if command else []) + ["--help"]
    assert main(argv) == 0
    text = " ".join(capsys.readouterr().out.split())  # undo the wrapping to the terminal width
    for option in HELP_OPTIONS[command]:
        assert option in text, f"{option} missing from {argv}"
    if command == "condense":
        assert "(default: cos+l2)" in text and "dm: DistributionMatchingCondenser" in text
        # Options condense and dm share name each method's default.
        assert "(default: 1000 for condense, 20000 for dm)" in text
        assert "(default: 0.1 for condense, 1.0 for dm)" in text
        assert "(default: noise for condense, real for dm)" in text
        assert "(default: none for condense, dsa for dm)" in text
        assert "(default: 10 for condense, 100 for dm)" in text


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gradmatch {gradmatch.__version__}"


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("argv, needle", [
    (["condense", "--method", "distill", "--out", "x.npz"], "--method"),
    (["condense", "--dataset", "imagenet", "--out", "x.npz"], "--dataset"),
    (["condense", "--ipc", "0", "--out", "x.npz"], "--ipc"),
    (["condense", "--distance", "cosine", "--out", "x.npz"], "--distance"),
    (["condense", "--augment", "crop_blur", "--out", "x.npz"], "--augment"),
    (["condense", "--method", "random", "--augment", "dsa", "--out", "x.npz"], "does not apply"),
    (["condense", "--method", "random", "--match", "intra", "--out", "x.npz"], "does not apply"),
    # Given at gradient matching's default value, still given: refused, not silently dropped.
    (["condense", "--method", "random", "--iterations", "1000", "--out", "x.npz"],
     "--iterations does not apply to --method random"),
    (["condense", "--method", "herding", "--init", "real", "--out", "x.npz"],
     "--init does not apply to --method herding"),
    # Gradient matching's own options do not apply to distribution matching.
    (["condense", "--method", "dm", "--match", "intra", "--out", "x.npz"],
     "--match does not apply to --method dm"),
    (["condense", "--method", "dm", "--lr-net", "0.1", "--out", "x.npz"],
     "--lr-net does not apply to --method dm"),
    (["condense", "--method", "dm", "--matching-steps", "2", "--network-steps", "1", "--distance", "cos",
      "--schedule", "fixed", "--out", "x.npz"],
     "--distance, --schedule, --matching-steps, --network-steps do not apply to --method dm"),
    (["condense", "--method", "dm", "--features", "pixels", "--out", "x.npz"],
     "--features does not apply to --method dm"),
    (["condense", "--data-dir", "somewhere", "--out", "x.npz"], "--data-dir"),
    (["condense", "--dataset", "cifar10", "--out", "x.npz"], "needs --data-dir"),
    (["condense"], "--out"),
    ([], "choose a command"),
])
def test_usage_errors_exit_2_with_one_line(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert needle in _error_line(captured.err)
    assert captured.out == ""
    assert not (tmp_path / "x.npz").exists()


# ----------------------------------------------------------------------------- options from the estimators
#: Options of --method condense and dm whose default is the chosen method's estimator's.
PER_METHOD = ["iterations", "lr_syn", "batch_real", "init", "augment", "checkpoint", "checkpoint_every"]


def _estimator_options():
    """(command, option, estimator class, parameter) of every option whose default is one estimator's."""
    from gradmatch import GradientMatchingCondenser, Herding
    from gradmatch.classifier import NetworkClassifier

    condenser = ["ipc", "match", "distance", "schedule", "matching_steps", "network_steps", "lr_net",
                 "model", "device"]
    return ([("condense", name, GradientMatchingCondenser, name) for name in condenser]
            + [("condense", name, Herding, name) for name in ("features", "feature_epochs")]
            + [("evaluate", name, NetworkClassifier, name) for name in ("augment", "mix", "model", "device")])


def _command_options(command):
    """{option string: argparse action} of a command's fully built parser."""
    import argparse

    from gradmatch.cli import build_parser

    parser = build_parser(lazy=False)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s: action for action in commands.choices[command]._actions for s in action.option_strings}


def test_cli_defaults_are_the_estimators_defaults(tmp_path):
    from gradmatch.cli import build_parser
    from gradmatch.evaluation import evaluate_set

    given = {"condense": ["condense", "--out", "x.npz"], "evaluate": ["evaluate", "s.npz"]}
    parsed = {command: vars(build_parser().parse_args(argv)) for command, argv in given.items()}
    for command, dest, cls, name in _estimator_options():
        assert parsed[command][dest] == cls().get_params()[name], (command, dest)
    # --epochs stands for the recipe's own: DC's (the classifier's default) or IDC's 1000
    assert parsed["evaluate"]["epochs"] is None and parsed["evaluate"]["recipe"] == "dc"
    from gradmatch.classifier import NetworkClassifier

    assert NetworkClassifier().epochs == 300
    assert parsed["evaluate"]["models"] == inspect.signature(evaluate_set).parameters["n_models"].default
    assert parsed["evaluate"]["jobs"] == inspect.signature(evaluate_set).parameters["n_jobs"].default
    # The options condense and dm share stand for "the chosen method's default" ...
    assert all(parsed["condense"][dest] is None for dest in PER_METHOD)


@pytest.mark.parametrize("method", ["condense", "dm"])
def test_learned_methods_get_their_own_estimators_defaults(method):
    """... so the estimator the command builds has its class's defaults in every parameter it does not set."""
    from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser
    from gradmatch.cli import _make_estimator, build_parser

    cls = {"condense": GradientMatchingCondenser, "dm": DistributionMatchingCondenser}[method]
    args = build_parser().parse_args(["condense", "--method", method, "--out", "x.npz", "--seed", "5", "--quiet"])
    built = _make_estimator(args)
    assert type(built) is cls
    assert built.get_params() == {**cls().get_params(), "random_state": 5, "verbose": 0}
    # Meaningful: the two methods' defaults differ in all but batch_real (and checkpoint: none).
    gm, dm = GradientMatchingCondenser().get_params(), DistributionMatchingCondenser().get_params()
    assert [n for n in PER_METHOD if gm[n] != dm[n]] == ["iterations", "lr_syn", "init", "augment",
                                                        "checkpoint_every"]


def test_dm_defaults_are_read_from_the_class(monkeypatch, capsys):
    """The command line holds no copy of DM's defaults: change one, and the help and the estimator follow."""
    from gradmatch import DistributionMatchingCondenser
    from gradmatch.cli import _make_estimator, build_parser

    monkeypatch.setitem(DistributionMatchingCondenser.__init__.__kwdefaults__, "iterations", 123)
    args = build_parser().parse_args(["condense", "--method", "dm", "--out", "x.npz"])
    assert _make_estimator(args).iterations == 123
    assert main(["condense", "--help"]) == 0
    assert "(default: 1000 for condense, 123 for dm)" in " ".join(capsys.readouterr().out.split())


def test_dm_options_reach_the_estimator(tmp_path):
    from gradmatch.cli import _make_estimator, build_parser

    args = build_parser().parse_args([
        "condense", "--method", "dm", "--out", "x.npz", "--ipc", "3", "--iterations", "7", "--lr-syn", "0.5",
        "--batch-real", "9", "--init", "noise", "--augment", "none", "--checkpoint", str(tmp_path / "ck"),
        "--checkpoint-every", "4", "--model", "mlp", "--device", "cpu"])
    params = _make_estimator(args).get_params()
    assert {k: params[k] for k in ["ipc", *PER_METHOD, "model", "device"]} == dict(
        ipc=3, iterations=7, lr_syn=0.5, batch_real=9, init="noise", augment=None,
        checkpoint=str(tmp_path / "ck"), checkpoint_every=4, model="mlp", device="cpu")


def test_cli_choices_are_the_declared_options():
    from sklearn.utils._param_validation import StrOptions

    from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser, Herding
    from gradmatch.classifier import NetworkClassifier
    from gradmatch.networks import list_models

    def declared_options(cls, name):
        return set().union(*(c.options for c in cls._parameter_constraints[name] if isinstance(c, StrOptions)))

    models = list_models()
    declared = [("condense", "--match", GradientMatchingCondenser, "match"),
                ("condense", "--schedule", GradientMatchingCondenser, "schedule"),
                ("condense", "--features", Herding, "features")]
    for command, option, cls, name in declared:
        assert set(_command_options(command)[option].choices) == declared_options(cls, name), option
    # --init is condense's and dm's: it lists both declarations' options, and the chosen
    # method's rule checks the value after parsing (test_bad_value_is_refused_by_the_declared_rule).
    metavar = _command_options("condense")["--init"].metavar
    assert metavar.startswith("{") and metavar.endswith("}")
    assert set(metavar[1:-1].split(",")) == (declared_options(GradientMatchingCondenser, "init")
                                             | declared_options(DistributionMatchingCondenser, "init"))
    for command, cls in (("condense", GradientMatchingCondenser), ("evaluate", NetworkClassifier)):
        choices = _command_options(command)["--model"].choices
        assert list(choices) == ["auto", *models]
        rule = cls._parameter_constraints["model"][0]
        assert all(rule.is_satisfied_by(name) for name in choices)


@pytest.mark.parametrize("argv, option, rule", [
    (["condense", "--iterations", "0"], "--iterations", "'iterations' parameter of GradientMatchingCondenser"),
    (["condense", "--iterations", "1.5"], "--iterations", "'iterations' parameter"),
    (["condense", "--matching-steps", "0"], "--matching-steps", "'matching_steps' parameter"),
    (["condense", "--network-steps", "-1"], "--network-steps", "'network_steps' parameter"),
    (["condense", "--lr-syn", "0"], "--lr-syn", "'lr_syn' parameter"),
    (["condense", "--lr-net", "nan"], "--lr-net", "'lr_net' parameter"),
    (["condense", "--batch-real", "many"], "--batch-real", "'batch_real' parameter"),
    (["condense", "--match", "both"], "--match", "'match' parameter"),
    (["condense", "--schedule", "cosine"], "--schedule", "'schedule' parameter"),
    (["condense", "--init", "zeros"], "--init", "'init' parameter"),
    (["condense", "--checkpoint-every", "0"], "--checkpoint-every", "'checkpoint_every' parameter"),
    (["condense", "--augment", "crop_blur"], "--augment", "'augment' parameter of GradientMatchingCondenser"),
    (["condense", "--method", "dm", "--iterations", "0"], "--iterations",
     "'iterations' parameter of DistributionMatchingCondenser"),
    (["condense", "--method", "dm", "--lr-syn", "-1"], "--lr-syn",
     "'lr_syn' parameter of DistributionMatchingCondenser"),
    (["condense", "--method", "dm", "--batch-real", "0"], "--batch-real", "'batch_real' parameter"),
    (["condense", "--method", "dm", "--init", "zeros"], "--init", "'init' parameter of DistributionMatchingCondenser"),
    (["condense", "--method", "dm", "--augment", "crop_blur"], "--augment",
     "'augment' parameter of DistributionMatchingCondenser"),
    (["condense", "--method", "dm", "--checkpoint-every", "0"], "--checkpoint-every", "'checkpoint_every' parameter"),
    (["condense", "--model", "resnet50"], "--model", "'model' parameter of GradientMatchingCondenser"),
    (["condense", "--device", "gpu7"], "--device", "unknown device"),
    (["condense", "--method", "herding", "--features", "edges"], "--features", "'features' parameter of Herding"),
    (["condense", "--method", "herding", "--feature-epochs", "-1"], "--feature-epochs",
     "'feature_epochs' parameter of Herding"),
    (["evaluate", "s.npz", "--epochs", "-1"], "--epochs", "must be an integer >= 1"),
    (["evaluate", "s.npz", "--model", "resnet50"], "--model", "'model' parameter of NetworkClassifier"),
    (["evaluate", "s.npz", "--augment", "crop_blur"], "--augment", "'augment' parameter of NetworkClassifier"),
])
def test_bad_value_is_refused_by_the_declared_rule(argv, option, rule, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "condense":
        argv = [*argv, "--out", "x.npz"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = _error_line(captured.err)
    assert f"argument {option}: " in line and rule in line
    assert captured.out == "" and not (tmp_path / "x.npz").exists()


def test_values_are_checked_by_the_estimators_current_rule(tmp_path, capsys, monkeypatch):
    # The command line holds no copy of a rule: change the declaration, and it follows.
    from gradmatch import GradientMatchingCondenser
    from gradmatch.parameters import Count

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(GradientMatchingCondenser._parameter_constraints, "iterations", [Count(5)])
    assert main(["condense", "--iterations", "3", "--out", "x.npz"]) == 2
    assert "argument --iterations: " in _error_line(capsys.readouterr().err)


def test_a_shared_option_is_checked_by_the_chosen_methods_rule(monkeypatch):
    from gradmatch import DistributionMatchingCondenser
    from gradmatch.cli import _check_method_options, _UsageError, build_parser
    from gradmatch.parameters import Count

    monkeypatch.setitem(DistributionMatchingCondenser._parameter_constraints, "iterations", [Count(5)])
    for method, refused in (("condense", False), ("dm", True)):
        args = build_parser().parse_args(["condense", "--method", method, "--iterations", "3", "--out", "x.npz"])
        if refused:
            with pytest.raises(_UsageError, match="argument --iterations: .*DistributionMatchingCondenser"):
                _check_method_options(args)
        else:
            _check_method_options(args)


def test_missing_set_file(tmp_path, capsys):
    missing = tmp_path / "nothing.npz"
    for command in ("evaluate", "show"):
        assert main([command, str(missing)]) == 1
        assert str(missing) in _error_line(capsys.readouterr().err)


def test_output_folder_checked_before_work(tmp_path, capsys):
    assert main(["condense", "--out", str(tmp_path / "no" / "syn.npz"), *TINY]) == 1
    assert "does not exist" in _error_line(capsys.readouterr().err)


def test_estimator_value_error_is_one_line(tmp_path, capsys):
    # digits has fewer than 500 images per class: RandomCoreset refuses.
    assert main(["condense", "--method", "random", "--ipc", "500", "--out", str(tmp_path / "x.npz")]) == 1
    _error_line(capsys.readouterr().err)


@pytest.mark.parametrize("side, n_classes, needle", [(28, 10, "shape 8x8"), (8, 5, "classes")])
def test_set_that_does_not_match_the_dataset(random_set, tmp_path, capsys, side, n_classes, needle):
    data = _fake_idx_dataset(tmp_path / "fake", side=side, n_classes=n_classes)
    assert main(["evaluate", str(random_set), "--dataset", "mnist", "--data-dir", str(data),
                 "--models", "1", "--epochs", "1"]) == 1
    line = _error_line(capsys.readouterr().err)
    assert needle in line and "it was made from another dataset (digits)" in line


def test_missing_dataset_files(random_set, tmp_path, capsys):
    assert main(["evaluate", str(random_set), "--dataset", "mnist", "--data-dir", str(tmp_path)]) == 1
    assert "MNIST" in _error_line(capsys.readouterr().err)


def test_corrupt_set_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    assert main(["show", str(bad), "--out", str(tmp_path / "g.png")]) == 1
    _error_line(capsys.readouterr().err)


def _raise(exc):
    def fit(self, X, y):
        raise exc
    return fit


@pytest.mark.parametrize("method, cls", [("condense", "GradientMatchingCondenser"),
                                         ("dm", "DistributionMatchingCondenser")])
def test_keyboard_interrupt_exits_130(tmp_path, capsys, monkeypatch, method, cls):
    monkeypatch.setattr(getattr(gradmatch, cls), "fit", _raise(KeyboardInterrupt()))
    ckpt = tmp_path / "ckpt"
    assert main(["condense", "--method", method, "--out", str(tmp_path / "x.npz"), "--checkpoint", str(ckpt),
                 *TINY]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gradmatch: interrupted") and str(ckpt) in err


def test_unexpected_error_and_debug_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gradmatch.GradientMatchingCondenser, "fit", _raise(RuntimeError("boom")))
    argv = ["condense", "--out", str(tmp_path / "x.npz"), *TINY]
    monkeypatch.delenv("GRADMATCH_DEBUG", raising=False)
    assert main(argv) == 1
    line = _error_line(capsys.readouterr().err)
    assert "RuntimeError: boom" in line and "GRADMATCH_DEBUG=1" in line
    monkeypatch.setenv("GRADMATCH_DEBUG", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == "gradmatch: error: RuntimeError: boom"


# ----------------------------------------------------------------------------- python -m gradmatch
def _run_module(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("GRADMATCH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "gradmatch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_python_m_gradmatch_help(tmp_path):
    proc = _run_module(["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "condense" in proc.stdout and "evaluate" in proc.stdout and "show" in proc.stdout


def test_help_and_package_import_do_not_load_torch():
    # The top-level help should be instant: a command's options (which read the
    # estimator classes, and so import torch) are added only when it is chosen.
    # The public names load their modules on first use.
    code = textwrap.dedent("""
        import contextlib, io, sys
        import gradmatch, gradmatch.cli as cli
        cli.build_parser().format_help()
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["--help"]) == 0
        print("torch" in sys.modules)
        gradmatch.GradientMatchingCondenser
        print("torch" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


def test_package_exports_resolve():
    import gradmatch

    for name in gradmatch.__all__:
        assert getattr(gradmatch, name) is not None
        assert name in dir(gradmatch)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gradmatch.nope  # noqa: B018


def test_python_m_gradmatch_condense(tmp_path):
    proc = _run_module(["condense", "--out", "syn.npz", "--model", "mlp", "--schedule", "fixed",
                        "--matching-steps", "1", "--network-steps", "0", *TINY], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "saved to syn.npz" in proc.stdout
    assert load_set(tmp_path / "syn.npz").X.shape == (10, 8, 8)


@pytest.mark.parametrize("command", ["condense", "evaluate"])
@pytest.mark.parametrize("flag, kept", [([], True), (["--no-keep-freed-memory"], False),
                                        (["--keep-freed-memory"], True)])
def test_commands_run_inside_keep_freed_memory_unless_told_not_to(command, flag, kept, monkeypatch, tmp_path):
    import gradmatch.cli as cli
    from gradmatch.memory import freed_memory_is_kept, glibc_available

    seen = []
    monkeypatch.setattr(cli, f"_{command}", lambda args: seen.append(freed_memory_is_kept()) or 0)
    argv = [command] + (["--out", str(tmp_path / "s.npz")] if command == "condense" else [str(tmp_path / "s.npz")])
    assert main(argv + flag) == 0
    assert seen == [kept and glibc_available()]
    assert not freed_memory_is_kept()  # restored when the command returns


# ----------------------------------------------------------------------------- never over an input
def _copy_of(path: Path, folder: Path, name: str) -> Path:
    copy = folder / name
    copy.write_bytes(path.read_bytes())
    return copy


@pytest.mark.parametrize("link", ["same-path", "hard-link", "symlink"])
def test_no_command_writes_over_its_input(random_set, tmp_path, capsys, link):
    """Regression: show wrote its picture over a set saved as syn.png; evaluate --json replaced the set."""
    syn = _copy_of(random_set, tmp_path, "syn.png")  # save_set adds no suffix
    before = syn.read_bytes()
    target = syn
    if link == "hard-link":
        target = tmp_path / "other-name.npz"
        os.link(syn, target)
    elif link == "symlink":
        target = tmp_path / "alias.npz"
        target.symlink_to(syn)
    cases = [["show", str(syn)], ["show", str(syn), "--out", str(target)],
             ["evaluate", str(syn), "--models", "1", "--epochs", "1", "--json", str(target)]]
    for argv in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "is the input" in err and "never writes over its input" in err and err.count("\n") == 1
        assert syn.read_bytes() == before


def test_outputs_are_written_atomically(random_set, tmp_path, capsys, monkeypatch):
    """A failure while writing leaves the previous output whole and no temporary file."""
    import gradmatch.atomic as atomic

    out = tmp_path / "grid.png"
    out.write_bytes(b"previous picture")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    assert main(["show", str(random_set), "--out", str(out)]) == 1
    assert out.read_bytes() == b"previous picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_evaluate_names_the_file_of_a_non_finite_set(random_set, tmp_path, capsys):
    bad = tmp_path / "nan.npz"
    with np.load(random_set, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["X"] = arrays["X"].astype(np.float64)
    arrays["X"][0, 0] = np.nan
    np.savez(bad, **arrays)
    assert main(["evaluate", str(bad), "--models", "1", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: X holds NaN or infinite values" in err and err.count("\n") == 1


def test_n_threads_reaches_learned_estimators_and_is_refused_elsewhere():
    from gradmatch.cli import _check_method_options, _make_estimator, _UsageError, build_parser

    for method in ("condense", "dm"):
        args = build_parser().parse_args(["condense", "--method", method, "--out", "x.npz", "--n-threads", "1"])
        _check_method_options(args)
        assert _make_estimator(args).n_threads == 1
    args = build_parser().parse_args(["condense", "--method", "random", "--out", "x.npz", "--n-threads", "1"])
    with pytest.raises(_UsageError, match="--n-threads does not apply to --method random"):
        _check_method_options(args)
    with pytest.raises(_UsageError, match="argument --n-threads: .*n_threads.* must be an int in the range"):
        build_parser().parse_args(["condense", "--out", "x.npz", "--n-threads", "0"])


def test_precision_options_reach_the_gradient_matching_condenser():
    from gradmatch.cli import _make_estimator, build_parser

    args = build_parser().parse_args(["condense", "--out", "x.npz", "--precision", "bf16",
                                      "--network-precision", "bf16"])
    built = _make_estimator(args)
    assert (built.precision, built.network_precision) == ("bf16", "bf16")

"""The example scripts run end to end, and the accuracy bar chart they draw."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT / "examples" / "compare_coresets.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compare():
    """examples/compare_coresets.py as a module (its main(argv) and tables)."""
    return _load(COMPARE, "compare_coresets_example")


# ----------------------------------------------------------------- compare_coresets.py end to end
@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    """The script run as a command on digits with a tiny budget, in one process (worker start-up is slow)."""
    out = tmp_path_factory.mktemp("compare")
    cmd = [sys.executable, str(COMPARE), "--iterations", "1", "--repeats", "1", "--eval-models", "2",
           "--epochs", "2", "--herding-epochs", "1", "--methods", "random", "herding", "dc", "md",
           "md+dsa", "--dsa-epochs", "3", "--jobs", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_compare_json(compare_run):
    out, _ = compare_run
    record = json.loads((out / "digits_ipc1.json").read_text())
    settings = record["settings"]
    assert settings["dataset"] == "digits" and settings["ipc"] == 1
    assert (settings["iterations"], settings["repeats"], settings["eval_models"], settings["epochs"]) == (1, 1, 2, 2)
    assert settings["methods"] == ["random", "herding", "dc", "md", "md+dsa"]
    assert {"platform", "cpu_count", "torch", "gradmatch", "device"} <= set(record["machine"])
    assert list(record["methods"]) == ["random", "herding", "dc", "md", "md+dsa"]
    for name, res in record["methods"].items():
        assert len(res["accuracies"]) == res["n"] == 2, name
        assert all(0.0 <= a <= 1.0 for a in res["accuracies"]), name
        assert res["mean"] == pytest.approx(np.mean(res["accuracies"]))
        assert len(res["fit_seconds"]) == 1 and res["fit_seconds"][0] >= 0, name
    assert record["methods"]["md"]["settings"] == dict(match="multilevel", distance="cos+l2", schedule="fixed")
    assert record["methods"]["md+dsa"]["settings"]["augment"] == "color_crop_cutout_scale_rotate"
    assert record["methods"]["md+dsa"]["eval_epochs"] == 3 and record["methods"]["md"]["eval_epochs"] == 2
    assert sorted(record["ranking"]) == sorted(record["methods"])
    assert len(record["adjacent_pairs"]) == 4


def test_compare_pngs(compare_run):
    out, _ = compare_run
    for name in ("digits_ipc1_accuracy.png", "digits_ipc1_sets.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 1000, name


def test_compare_printed_tables(compare_run):
    _, stdout = compare_run
    lines = stdout.splitlines()
    # Settings and budget come first, before any result.
    assert lines[0].startswith("gradmatch ") and "digits" in lines[0]
    assert lines[1].startswith("budget quick: K=1 iterations")
    assert "| method | accuracy (%) | n | seconds per set |" in lines
    rows = [line for line in lines if line.startswith("| ") and "+-" in line]
    assert [row.split("(")[1].split(")")[0] for row in rows] == ["random", "herding", "dc", "md", "md+dsa"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        mean = float(cells[1].split("+-")[0])
        assert 0.0 <= mean <= 100.0 and cells[2] == "2" and float(cells[3]) >= 0
    assert "| pair | difference (points) | 2 x standard error | beyond noise? |" in lines
    assert sum(" vs " in line for line in lines) == 4
    # DSA's strategy for digits leaves flip out; its sets are evaluated for --dsa-epochs.
    assert "DSA strategy color_crop_cutout_scale_rotate; the +dsa sets are evaluated with it for 3 epochs" in lines


def test_compare_dm_at_a_tiny_budget(compare, tmp_path, capsys):
    """dm: DM's published settings with DSA (no flip on digits), evaluated the DSA way, --dm-iterations long."""
    out = tmp_path / "out"
    assert compare.main(["--methods", "dm", "--dm-iterations", "2", "--iterations", "5", "--repeats", "1",
                         "--eval-models", "1", "--epochs", "1", "--dsa-epochs", "2", "--jobs", "1",
                         "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "; dm 2 iterations" in stdout.splitlines()[1]
    assert "DSA strategy color_crop_cutout_scale_rotate; the dm sets are evaluated with it for 2 epochs" in stdout
    record = json.loads((out / "digits_ipc1.json").read_text())
    assert record["settings"]["methods"] == ["dm"] and record["settings"]["dm_iterations"] == 2
    dm = record["methods"]["dm"]
    assert dm["label"] == "DM" and dm["n"] == 1 and 0.0 <= dm["mean"] <= 1.0
    assert dm["settings"] == dict(init="real", lr_syn=1.0, momentum_syn=0.5, batch_real=256,
                                  augment="color_crop_cutout_scale_rotate", iterations=2)
    assert dm["iterations_run"] == [2]
    assert dm["eval_epochs"] == 2 and dm["eval_augment"] == "color_crop_cutout_scale_rotate"
    reducer = compare.make_reducer("dm", 1, 0, 2, "auto", "cpu", "color_crop_cutout_scale_rotate")
    assert type(reducer).__name__ == "DistributionMatchingCondenser"
    assert (reducer.iterations, reducer.augment, reducer.init, reducer.lr_syn) == (
        2, "color_crop_cutout_scale_rotate", "real", 1.0)


def test_compare_runs_dm_only_when_named(compare):
    _, args = compare.parse_args([])
    assert "dm" not in args.methods
    _, args = compare.parse_args(["--methods", "md", "dm"])
    assert args.methods == ["md", "dm"]


def test_compare_multi_formation_and_representative_at_a_tiny_budget(compare, tmp_path, capsys):
    """md+f2 trains on 4 decoded images per stored one (digits' 8x8 in 4x4 parts); md+rep on DREAM's batches."""
    out = tmp_path / "out"
    assert compare.main(["--methods", "random", "md+f2", "md+rep", "--iterations", "1", "--repeats", "1",
                         "--eval-models", "1", "--epochs", "2", "--jobs", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "md+f2: factor 2, each stored image decodes into 4 training images: 1 stored and 4 trained on per " \
           "class (40 per set)" in stdout
    assert "; evaluation by DC's recipe (batch 256, lr x0.1 at half the epochs)" in stdout.splitlines()[1]
    rows = [line for line in stdout.splitlines() if line.startswith("| ") and "+-" in line]
    assert [row.split("(")[1].split(")")[0] for row in rows] == ["random", "md+f2", "md+rep"]
    record = json.loads((out / "digits_ipc1.json").read_text())
    assert record["settings"]["methods"] == ["random", "md+f2", "md+rep"]
    assert record["settings"]["eval_recipe"] == "dc" and record["settings"]["epochs"] == 2
    methods = record["methods"]
    assert list(methods) == ["random", "md+f2", "md+rep"]
    assert methods["md+f2"]["settings"] == dict(match="multilevel", distance="cos+l2", schedule="fixed",
                                                factor=2, init="mix")
    assert methods["md+rep"]["settings"] == dict(match="multilevel", distance="cos+l2", schedule="fixed",
                                                 real_sampling="representative")
    assert (methods["md+f2"]["label"], methods["md+rep"]["label"]) == ("Ours-MD+F2", "Ours-MD+REP")
    assert (methods["md+f2"]["set_size"], methods["md+f2"]["stored_size"]) == (40, 10)
    assert (methods["md+rep"]["set_size"], methods["md+rep"]["stored_size"]) == (10, 10)
    assert (methods["random"]["set_size"], methods["random"]["stored_size"]) == (10, 10)
    for name, res in methods.items():
        assert res["n"] == 1 and 0.0 <= res["mean"] <= 1.0, name
        assert (res["eval_recipe"], res["eval_epochs"], res["eval_augment"], res["eval_mix"]) == (
            "dc", 2, None, None), name
    assert methods["md+f2"]["iterations_run"] == methods["md+rep"]["iterations_run"] == [1]
    reducer = compare.make_reducer("md+f2+rep", 1, 0, 2, "auto", "cpu")
    assert (reducer.factor, reducer.init, reducer.real_sampling, reducer.distance) == (
        2, "mix", "representative", "cos+l2")


def test_compare_idc_recipe_at_a_tiny_budget(compare, tmp_path, capsys):
    """--eval-recipe idc scores every set, the +dsa ones too, by IDC's recipe for --epochs; no flip on digits."""
    out = tmp_path / "out"
    assert compare.main(["--methods", "random", "md+f2", "md+dsa", "--eval-recipe", "idc", "--epochs", "2",
                         "--iterations", "1", "--repeats", "1", "--eval-models", "1", "--jobs", "1",
                         "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("2 epochs per network; herding feature epochs auto; seed 0; evaluation by IDC's recipe "
                             "(batch 64, lr x0.2 at epochs 1 and 1, DSA color_crop_scale_rotate, CutMix p 0.5)")
    assert "DSA strategy color_crop_cutout_scale_rotate in the +dsa condensations; IDC's recipe scores their sets " \
           "like the others' (2 epochs; --dsa-epochs unused)" in lines
    assert any(line.startswith("Test accuracy of ConvNets trained from scratch on each set by IDC's recipe for 2 "
                               "epochs, every method (digits, ipc 1)") for line in lines)
    record = json.loads((out / "digits_ipc1.json").read_text())
    settings = record["settings"]
    assert (settings["eval_recipe"], settings["epochs"]) == ("idc", 2)
    assert settings["eval_recipe_description"].startswith("IDC's recipe (batch 64")
    assert "--eval-recipe idc" in settings["command"]
    for name, res in record["methods"].items():
        assert (res["eval_recipe"], res["eval_epochs"], res["eval_augment"], res["eval_mix"]) == (
            "idc", 2, "color_crop_scale_rotate", "cutmix"), name
    assert record["methods"]["md+f2"]["set_size"] == 40
    assert record["methods"]["md+dsa"]["settings"]["augment"] == "color_crop_cutout_scale_rotate"


def test_compare_eval_recipe_options(compare):
    """IDC's recipe trains 1000 epochs unless --epochs says otherwise; flip only where mirrors stay in class."""
    _, args = compare.parse_args([])
    assert (args.eval_recipe, args.epochs) == ("dc", 300)
    assert not set(compare.FORMATION_METHODS) & set(args.methods)
    for argv in (["--eval-recipe", "idc"], ["--eval-recipe", "idc", "--budget", "paper"]):
        _, args = compare.parse_args(argv)
        assert (args.eval_recipe, args.epochs) == ("idc", 1000)
    _, args = compare.parse_args(["--eval-recipe", "idc", "--epochs", "30", "--methods", "md+f2+rep", "md",
                                  "md+rep", "md+f2"])
    assert args.epochs == 30 and args.methods == ["md", "md+f2", "md+rep", "md+f2+rep"]
    assert compare.eval_recipe("dc", 300, "digits") is None
    recipe = compare.eval_recipe("idc", 1000, "fashion-mnist")
    assert (recipe.epochs, recipe.batch_size, recipe.mix, recipe.augment.strategy) == (
        1000, 64, "cutmix", "color_crop_flip_scale_rotate")
    for dataset in ("digits", "mnist"):
        assert compare.eval_recipe("idc", 1000, dataset).augment.strategy == "color_crop_scale_rotate"
    assert compare.describe_recipe("idc", 1000, "fashion-mnist") == (
        "IDC's recipe (batch 64, lr x0.2 at epochs 666 and 833, DSA color_crop_flip_scale_rotate, CutMix p 0.5)")


def test_compare_skips_schedule_variants_at_ipc1(compare):
    parser, args = compare.parse_args(["--methods", "md", "mda", "mdo"])
    assert args.methods == ["md"] and args.skipped == ["mda", "mdo"]
    _, args = compare.parse_args(["--ipc", "2"])
    assert args.methods == list(compare.METHODS) and args.skipped == []


def test_compare_budget_presets_and_overrides(compare):
    _, args = compare.parse_args([])
    assert (args.iterations, args.dm_iterations, args.repeats, args.eval_models, args.epochs) == (50, 50, 2, 4, 300)
    _, args = compare.parse_args(["--budget", "paper", "--eval-models", "7"])
    assert (args.iterations, args.dm_iterations, args.repeats, args.eval_models, args.epochs) == (
        1000, 20000, 2, 7, 300)
    _, args = compare.parse_args(["--budget", "paper", "--dm-iterations", "300"])
    assert (args.iterations, args.dm_iterations) == (1000, 300)


def test_compare_methods_match_the_benchmark(compare):
    """The example's methods are those of benchmarks/reproduce/ (which spells md+f2 as md-f2, and so on)."""
    methods = _load(ROOT / "benchmarks" / "reproduce" / "methods.py", "reproduce_methods")
    for name, params in compare.CONDENSERS.items():
        benchmark_name = name.replace("+f2", "-f2").replace("+rep", "-rep")
        assert methods.CONDENSERS[benchmark_name] == params, name


@pytest.mark.parametrize("argv, message", [
    (["--methods", "random", "nope"], "unknown method 'nope'"),
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--iterations", "0"], "expected a positive integer"),
    (["--dm-iterations", "0"], "expected a positive integer"),
    (["--eval-recipe", "dsa"], "invalid choice: 'dsa'"),
    (["--ipc", "1000"], "more than the smallest class"),
    (["--data-dir", "/tmp"], "digits ships with scikit-learn"),
])
def test_compare_bad_arguments_exit_2(compare, argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        compare.main(argv + ["--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.strip().splitlines()[-1].startswith("compare_coresets.py: error: ")
    assert not list(tmp_path.iterdir())


def test_compare_missing_dataset_files_exit_2(compare, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "none") in err and "error:" in err and "Traceback" not in err


def test_compare_unknown_method_from_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, str(COMPARE), "--methods", "bogus", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "compare_coresets.py: error: unknown method 'bogus': choose from random, herding, dc, m, md, mda, mdo, "
        "dc+dsa, md+dsa, mda+dsa, md+f2, md+rep, md+f2+rep, dm")
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------- plot_accuracies
def test_plot_accuracies_bars_and_file(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from gradmatch.evaluation import EvaluationResult
    from gradmatch.plotting import plot_accuracies

    results = {"random": [0.60, 0.55, 0.65], "herding": [0.7], "dc": EvaluationResult([0.80, 0.84])}
    path = tmp_path / "acc.png"
    fig = plot_accuracies(results, reference={"paper": 0.705, "whole set": 0.935}, title="t", path=path)
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        bars = ax.patches
        assert len(bars) == 3
        assert [b.get_height() for b in bars] == pytest.approx([60.0, 70.0, 82.0])
        assert [t.get_text() for t in ax.texts] == ["60.0", "70.0", "82.0"]
        assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] == \
            pytest.approx([70.5, 93.5])
        assert ax.get_ylim()[1] >= 93.5
        assert path.read_bytes()[:8] == PNG_MAGIC
    finally:
        plt.close(fig)


def test_plot_accuracies_into_given_axes():
    import matplotlib.pyplot as plt

    from gradmatch.plotting import plot_accuracies

    fig, ax = plt.subplots()
    try:
        assert plot_accuracies({"a": [0.5], "b": [0.25, 0.75]}, ax=ax) is fig
        assert len(ax.patches) == 2
    finally:
        plt.close(fig)


@pytest.mark.parametrize("results, reference, message", [
    ({}, None, "non-empty mapping"),
    ({"a": []}, None, "holds no accuracies"),
    ({"a": [87.5]}, None, "fractions in [0, 1]"),
    ({"a": [0.5]}, {"paper": 70.5}, "reference['paper']"),
])
def test_plot_accuracies_rejects_bad_input(results, reference, message):
    from gradmatch.plotting import plot_accuracies

    with pytest.raises(ValueError) as exc:
        plot_accuracies(results, reference=reference)
    assert message in str(exc.value)


# ----------------------------------------------------------------- architecture_proxy.py
def test_architecture_proxy_quick_run(tmp_path, capsys):
    """--quick on digits with two networks (and one that does not fit 8x8): table, JSON and plot."""
    proxy = _load(ROOT / "examples" / "architecture_proxy.py", "architecture_proxy_example")
    out = tmp_path / "out"
    assert proxy.main(["--quick", "--iterations", "1", "--epochs", "2", "--architectures", "convnet", "mlp",
                       "lenet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    record = json.loads((out / "digits_ipc1.json").read_text())
    settings = record["settings"]
    assert (settings["dataset"], settings["ipc"], settings["iterations"], settings["epochs"]) == ("digits", 1, 1, 2)
    assert (settings["real_epochs"], settings["models"], settings["quick"]) == (1, 1, True)
    assert settings["architectures"] == ["convnet", "mlp"] and settings["n_train"] == 1347
    assert list(record["skipped"]) == ["lenet"] and "too small for LeNet" in record["skipped"]["lenet"]
    assert {"platform", "cpu", "cpu_count", "torch_threads", "torch", "gradmatch"} <= set(record["machine"])
    assert record["condensation"]["seconds"] > 0 and record["condensation"]["K"] == 1
    for name, res in record["architectures"].items():
        for key, epochs in (("condensed", 2), ("real", 1)):
            assert len(res[key]["accuracies"]) == 1 and 0.0 <= res[key]["mean"] <= 1.0, name
            assert res[key]["seconds"] > 0 and res[key]["epochs"] == epochs, name
    assert sorted(record["ranking"]["condensed"]) == sorted(record["ranking"]["real"]) == ["convnet", "mlp"]
    means = {k: [record["architectures"][n][k]["mean"] for n in ("convnet", "mlp")] for k in ("condensed", "real")}
    expected = proxy.spearman(means["condensed"], means["real"])
    assert record["spearman"] == (None if np.isnan(expected) else pytest.approx(expected))
    seconds = record["seconds"]
    assert seconds["proxy_total"] == pytest.approx(seconds["condensed_training"] + seconds["condensation"])
    assert seconds["saved"] == pytest.approx(seconds["real_training"] - seconds["proxy_total"])
    assert seconds["training_speedup"] == pytest.approx(seconds["real_training"] / seconds["condensed_training"])
    assert (out / "digits_ipc1.png").read_bytes()[:8] == PNG_MAGIC
    assert "| architecture | condensed set: accuracy (%) | seconds | real data: accuracy (%) | seconds " \
           "| rank (condensed) | rank (real) |" in stdout
    assert sum(line.startswith(("| convnet |", "| mlp |")) for line in stdout.splitlines()) == 2
    assert "skipped lenet: input of shape (1, 8, 8) is too small for LeNet" in stdout

    # Spearman by hand: identical rankings 1, reversed -1, ties take their average rank.
    assert proxy.spearman([0.1, 0.5, 0.9], [10, 20, 30]) == pytest.approx(1.0)
    assert proxy.spearman([0.1, 0.5, 0.9, 0.95], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert proxy.average_ranks([0.3, 0.1, 0.3, 0.9]).tolist() == [2.5, 1.0, 2.5, 4.0]
    # scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138
    assert proxy.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138)
    assert np.isnan(proxy.spearman([1, 1, 1], [1, 2, 3]))

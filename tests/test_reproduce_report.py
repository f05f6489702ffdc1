"""The report of benchmarks/reproduce/ from fabricated cell records: the Table 1 and 2 analyses.

No training here: records with chosen accuracies are written to a folder and
the report is read back, so each verdict (beyond noise, same way as the paper,
the rank agreement) is checked against figures whose answer is known. The
committed report is checked against the committed records it was made from.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_cell(out: Path, key: str, set_accuracies: list[list[float]], fit_seconds: float = 1.0) -> None:
    sets = [{"seed": 1000 * i, "accuracies": accs, "fit_seconds": fit_seconds, "eval_seconds": 1.0}
            for i, accs in enumerate(set_accuracies)]
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "cells" / f"{key}.json").write_text(json.dumps({"key": key, "budget": {}, "sets": sets}))


def table_row(text: str, pair: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {pair} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def tight(mean: float) -> list[list[float]]:
    """Two sets of five networks each, within 0.1 points of ``mean`` (%)."""
    return [[(mean + d) / 100 for d in (-0.1, 0.0, 0.1, 0.0, 0.05)] for _ in range(2)]


def test_same_way_verdicts(reproduce):
    same_way = reproduce.report.same_way
    assert same_way(+1.0, 0.1, +0.4) == "yes"
    assert same_way(-1.0, 0.1, +0.4) == "no, reversed beyond noise"
    assert same_way(+0.1, 0.1, +0.4) == "same sign, within noise"
    assert same_way(-0.1, 0.1, +0.4) == "opposite sign, within noise"
    assert same_way(+0.1, 0.1, 0.0) == "paper: a tie, ours too (within noise)"
    assert same_way(+1.0, 0.1, 0.0) == "paper: a tie, ours not"


def test_rank_agreement(reproduce):
    paper = {"a": 3.0, "b": 2.0, "c": 1.0}
    assert "+1.00" in reproduce.report.rank_agreement({"a": 9, "b": 8, "c": 7}, paper)
    assert "-1.00" in reproduce.report.rank_agreement({"a": 7, "b": 8, "c": 9}, paper)
    assert "over the 3 finished rows" in reproduce.report.rank_agreement({"a": 7, "b": 8, "c": 9, "z": 1}, paper)
    # Fewer than three rows in common have no ranking to compare.
    assert reproduce.report.rank_agreement({"a": 1, "b": 2}, paper) is None


def test_table1_analysis_follows_the_records(reproduce, tmp_path):
    # Multi-level clearly best, inter clearly worst: the paper's direction.
    for method, mean in [("dc", 70.0), ("inter", 68.0), ("interleaved", 70.05), ("m", 72.0)]:
        write_cell(tmp_path, f"ipc1-{method}", tight(mean))
    text = reproduce.report.report_text(reproduce.budgets.make_budget("cpu"), tmp_path)
    m_dc = table_row(text, "m vs dc")
    assert m_dc[1] == "+2.0" and m_dc[3] == "yes" and m_dc[6] == "+0.1" and m_dc[7] == "yes"
    assert table_row(text, "dc vs inter")[7] == "yes"
    assert table_row(text, "interleaved vs dc")[7] == "same sign, within noise"
    # The paper has multi-level and interleaved equal at ipc 1; ours are not.
    assert table_row(text, "m vs interleaved")[7] == "paper: a tie, ours not"
    assert "70.5 +- 0.6" in text  # the paper's figure with its standard deviation
    # 4 rows; the paper ties m and interleaved, so tau is below 1 but positive.
    tau_line = next(line for line in text.splitlines() if "Table 1" not in line and "over the 4" in line)
    assert float(tau_line.split(":")[1].split()[0]) > 0.5


def test_table2_analysis_reports_a_reversal(reproduce, tmp_path):
    # Magnitude alone beating the angle alone: the opposite of the paper's finding.
    for method, mean in [("m", 60.0), ("m-l2", 66.0), ("m-sse", 65.0), ("m-100mse", 64.0), ("md", 70.0)]:
        write_cell(tmp_path, f"ipc1-{method}", tight(mean))
    text = reproduce.report.report_text(reproduce.budgets.make_budget("cpu"), tmp_path)
    row = table_row(text, "m vs m-l2")
    assert row[1] == "-6.0" and row[3] == "no, reversed" and row[6] == "+9.3"
    assert row[7] == "no, reversed beyond noise"
    assert table_row(text, "md vs m")[7] == "yes"
    # A pair with a cell not run keeps its row, with the paper's difference.
    assert table_row(text, "m-cos+sse vs m")[1:2] == ["(not run)"]
    assert "Ordering, ours (ipc 1): d1+d2 (cos+l2) > d2 (l2) > d3 (sse) > 100 d4 (100*mse) > d1 (cos)" in text
    tau = next(line for line in text.splitlines() if "over the 5 finished rows" in line)
    assert float(tau.split(":")[1].split()[0]) < 0.5


def spread(mean: float, half_range: float, n: int = 5) -> list[float]:
    """``n`` network accuracies (fractions) centred on ``mean`` (%), evenly spaced over +-``half_range``."""
    step = 2 * half_range / (n - 1)
    return [(mean - half_range + i * step) / 100 for i in range(n)]


def test_longer_runs_compare_each_rule_at_both_budgets(reproduce, tmp_path):
    budget = reproduce.budgets.make_budget("cpu")
    k = reproduce.budgets.LONGER_ITERATIONS
    write_cell(tmp_path, "ipc1-dc", tight(70.0))
    write_cell(tmp_path, "ipc1-inter", [spread(68.3, 0.4), [0.679] * 5])
    section = lambda text: text[text.index("## Investigation: inter-class"):]  # noqa: E731
    text = section(reproduce.report.report_text(budget, tmp_path))
    assert table_row(text, "inter-class")[1:] == ["68.3", "68.1", "(not run)"]
    assert f"K={k} (not run)" in text and "K=100, all sets +1.9" in text
    # Without the longer runs there is no change between budgets to judge.
    assert "From K=" not in text
    # One-set SE: the two first sets' standard errors (sample sd / sqrt(5)) added in quadrature.
    se = lambda accs: statistics.stdev(100 * a for a in accs) / math.sqrt(len(accs))  # noqa: E731
    se_short = math.hypot(se(tight(70.0)[0]), se(spread(68.3, 0.4)))
    assert f"K=100 {se_short:.1f}" in text

    # The longer runs: inter-class catches up and the gap shrinks beyond its noise.
    write_cell(tmp_path, f"ipc1-dc@k{k}", [spread(70.5, 0.4)])
    write_cell(tmp_path, f"ipc1-inter@k{k}", [spread(70.2, 0.4)])
    text = section(reproduce.report.report_text(budget, tmp_path))
    assert table_row(text, "intra-class")[1:] == ["70.0", "70.0", "70.5"]
    assert f"K={k} +0.3" in text and "(the paper, K=1000: +0.3)" in text
    se_long = math.hypot(se(spread(70.5, 0.4)), se(spread(70.2, 0.4)))
    assert f"K=100 {se_short:.1f}; K={k} {se_long:.1f}." in text
    se_dc = math.hypot(se(tight(70.0)[0]), se(spread(70.5, 0.4)))
    se_inter = math.hypot(se(spread(68.3, 0.4)), se(spread(70.2, 0.4)))
    assert (f"From K=100 to K={k}, same seeds: intra-class +0.5 (standard error {se_dc:.1f}), "
            f"inter-class +1.9 (standard error {se_inter:.1f}); the gap moves by -1.4 points "
            f"(standard error {math.hypot(se_short, se_long):.1f}, beyond twice its noise).") in text
    # Noisier networks at K=200: the same move is within twice its noise.
    write_cell(tmp_path, f"ipc1-inter@k{k}", [spread(70.2, 4.0)])
    text = section(reproduce.report.report_text(budget, tmp_path))
    assert "the gap moves by -1.4 points" in text and "within twice its noise" in text


def test_a_longer_run_keeps_its_own_set_files(reproduce):
    cells = {c.key: c for c in reproduce.budgets.make_budget("cpu").cells}
    k = reproduce.budgets.LONGER_ITERATIONS
    assert cells[f"ipc1-inter@k{k}"].set_stem == f"ipc1-inter@k{k}"  # not the K=100 sets' files
    assert cells[f"ipc1-inter@k{k}"].maker == "inter"
    assert cells["ipc1-md@dsa-eval"].set_stem == "ipc1-md"  # re-evaluates MD's sets
    assert cells["ipc1-random@spread"].set_stem == "ipc1-random"  # extends Random's
    assert cells["ipc1-dc"].set_stem == "ipc1-dc"


def test_a_saved_set_is_reused_only_for_its_own_configuration(reproduce, tmp_path):
    import numpy as np

    from gradmatch import RandomCoreset
    from gradmatch.io import save_set
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 1, 8, 8)), np.repeat(np.arange(4), 10)
    path = tmp_path / "set.npz"
    save_set(path, RandomCoreset(ipc=2, random_state=0).fit(X, y), dataset="digits")
    assert reproduce.runner.saved_set_of(path, RandomCoreset(ipc=2, random_state=0), "digits") is not None
    # Another seed, another ipc, other data or no file at all: fit afresh.
    assert reproduce.runner.saved_set_of(path, RandomCoreset(ipc=2, random_state=1), "digits") is None
    assert reproduce.runner.saved_set_of(path, RandomCoreset(ipc=3, random_state=0), "digits") is None
    assert reproduce.runner.saved_set_of(path, RandomCoreset(ipc=2, random_state=0), "fashion-mnist") is None
    assert reproduce.runner.saved_set_of(tmp_path / "none.npz", RandomCoreset(ipc=2, random_state=0), "digits") is None
    path.write_bytes(b"not a set")  # a corrupt file is refitted, not trusted
    assert reproduce.runner.saved_set_of(path, RandomCoreset(ipc=2, random_state=0), "digits") is None


def dm_section(text: str) -> str:
    start = text.index("## Beyond the paper: distribution matching")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_dm_section_without_records(reproduce, tmp_path):
    budget = reproduce.budgets.make_budget("cpu")
    text = reproduce.report.report_text(budget, tmp_path)
    section = dm_section(text)
    # Every DM cell is listed, not yet run, with the paper's missing Fashion-MNIST figure as '-'.
    for ipc, k, models in ((1, reproduce.budgets.DM_ITERATIONS_IPC1, 5), (10, reproduce.budgets.DM_ITERATIONS_IPC10, 3),
                           (50, reproduce.budgets.DM_ITERATIONS_IPC50, 3)):
        assert f"| dm | {ipc} | {k} | 1 x {models} | DSA, 1000 epochs | (not run) |  | - |" in section
    assert "The DM paper reports no Fashion-MNIST figure (CIFAR-10: 26.0 at ipc 1, 48.9 at ipc 10, 63.0 at ipc 50)" \
        in section
    # At ipc 10, DM beside MD's (and MDA+DSA's) cell, none of them run yet.
    assert table_row(section, "DM (dm)")[1:4] == [str(reproduce.budgets.DM_ITERATIONS_IPC10), "DSA, 1000 epochs",
                                                  "(not run)"]
    assert table_row(section, "Ours-MD (md)")[1:4] == ["10", "no augmentation, 300 epochs", "(not run)"]
    assert table_row(section, "dm vs md")[1] == "(not run)"
    # DM's cells add no ipc-50 column to the gradient-matching tables, nor their K to its indicative note.
    assert "ipc 50 ours" not in text and "| Ours-MD | " in text
    assert "Indicative cells (ipc 10: K=10, ipc 10: K=100, against the paper's K=1000)" in text


def test_dm_section_with_records(reproduce, tmp_path):
    budget = reproduce.budgets.make_budget("cpu")
    write_cell(tmp_path, "ipc1-dm", [[0.70, 0.71, 0.72, 0.71, 0.71]], fit_seconds=3500.0)
    write_cell(tmp_path, "ipc10-dm", [[0.80, 0.81, 0.82]], fit_seconds=3600.0)
    write_cell(tmp_path, "ipc10-md", [[0.74, 0.74, 0.75], [0.73, 0.73, 0.74]], fit_seconds=1950.0)
    write_cell(tmp_path, "ipc10-mda+dsa", [[0.76, 0.76, 0.76]], fit_seconds=1022.0)
    section = dm_section(reproduce.report.report_text(budget, tmp_path))
    assert "| dm | 1 | " in section and "| 71.0 +- 0.6 | 3500 | - |" in section
    assert "| 81.0 +- 0.8 | 3600 | - |" in section
    assert f"| dm | 50 | {reproduce.budgets.DM_ITERATIONS_IPC50} | 1 x 3 | DSA, 1000 epochs | (not run) |" in section
    # Accuracy, set means and each fit's seconds side by side at ipc 10.
    assert table_row(section, "DM (dm)")[3:] == ["81.0 +- 0.8", "81.0", "3600"]
    assert table_row(section, "Ours-MD (md)")[3:] == ["73.8 +- 0.7", "74.3, 73.3", "1950, 1950"]
    assert table_row(section, "Ours-MDA+DSA (mda+dsa)")[3:] == ["76.0 +- 0.0", "76.0", "1022"]
    row = table_row(section, "dm vs md")
    assert row[1] == "+7.2" and row[3] == "yes" and row[5] == "yes"
    assert table_row(section, "dm vs mda+dsa")[1] == "+5.0"


def test_dm_section_only_where_the_budget_has_dm(reproduce, tmp_path):
    budget = reproduce.budgets.make_budget("cpu")
    budget.cells = [c for c in budget.cells if c.method != "dm"]
    assert "distribution matching" not in reproduce.report.report_text(budget, tmp_path)
    # The smoke budget has DM at ipc 1 only: its table, without the ipc-10 comparison.
    smoke = reproduce.report.report_text(reproduce.budgets.make_budget("smoke"), tmp_path)
    assert "| dm | 1 | 2 | 1 x 1 | DSA, 5 epochs | (not run) |" in dm_section(smoke)
    assert "DM (dm)" not in smoke


def test_the_committed_report_is_the_committed_records_report(reproduce):
    """docs/results/reproduce-cpu/tables.md is, byte for byte, what the report makes of the cells beside it."""
    out = ROOT / "docs" / "results" / "reproduce-cpu"
    text = reproduce.report.report_text(reproduce.budgets.make_budget("cpu"), out)
    assert text == (out / "tables.md").read_text()

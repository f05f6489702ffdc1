"""The report's pictures: bar charts of the finished ipc-1 cells and each method's first set."""

from __future__ import annotations

from pathlib import Path

from .budgets import Budget
from .paper import DSA_PAPER, TABLE1, TABLE2, TABLE3, TABLE_DSA
from .records import cell_record_path, read_record

#: The bar charts: (file name, title, (label, method) rows, reference lines or None).
CHARTS = [
    ("ipc1-table3.png", "Table 3 at ipc 1 (ours)", [(label, m) for label, m, _ in TABLE3],
     {"paper, DC": 0.705, "paper, Ours-MD": 0.714}),
    ("ipc1-table1.png", "Table 1 at ipc 1 (ours)", [(label, m) for label, m, _ in TABLE1],
     {"paper, multi-level": 0.706}),
    # No reference line: the paper's Table 2 is SVHN.
    ("ipc1-table2.png", "Table 2 at ipc 1 (ours): distances, multi-level matching",
     [(label, m) for label, m, _ in TABLE2], None),
    ("ipc1-dsa.png", "with DSA at ipc 1 (ours)", [(label, m) for label, m, _ in TABLE_DSA],
     {"published DSA (DC+DSA)": DSA_PAPER[1] / 100}),
    ("ipc1-precision.png", "float32 and bf16 at ipc 1 (ours)",
     [("Ours-MD, float32", "md"), ("Ours-MD, bf16", "md-bf16")], None),
]


def write_plots(budget: Budget, out: Path) -> list[Path]:
    """Draw the bar charts and the picture of the first sets into ``out``.

    Parameters
    ----------
    budget : Budget
        Only its cells are drawn; a chart with fewer than two finished rows is skipped.
    out : Path
        The results folder: records are read from it, PNG files written to it.

    Returns
    -------
    list of Path
        The files written.
    """
    written = write_bar_charts(budget, out)
    sets_picture = write_first_sets(budget, out)
    return written + ([sets_picture] if sets_picture else [])


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _network_accuracies(out: Path, method: str, ipc: int = 1) -> list[float] | None:
    """Every evaluation network's accuracy in a cell's record, or None when it has none."""
    record = read_record(cell_record_path(out, f"ipc{ipc}-{method}"))
    if record is None:
        return None
    return [a for s in record["sets"] for a in s["accuracies"]] or None


def write_bar_charts(budget: Budget, out: Path) -> list[Path]:
    """One bar chart per entry of :data:`CHARTS` with at least two finished rows; the files written."""
    plt = _pyplot()
    from gradmatch.plotting import plot_accuracies

    written = []
    known = {c.key for c in budget.cells}
    for name, title, rows, reference in CHARTS:
        results = {label: _network_accuracies(out, m) for label, m in rows if f"ipc1-{m}" in known}
        results = {k: v for k, v in results.items() if v}
        if len(results) < 2:
            continue
        fig = plot_accuracies(results, title=f"{budget.dataset}, {title}", reference=reference)
        fig.set_size_inches(max(6.0, 1.4 * len(results)), 4.5)
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(out / name)
    return written


def write_first_sets(budget: Budget, out: Path) -> Path | None:
    """``ipc1-sets.png``: the first ipc-1 set of every method saved in ``out``; None when there is none."""
    plt = _pyplot()
    from gradmatch.io import load_set
    from gradmatch.plotting import plot_image_grid

    firsts = sorted((out / "sets").glob("ipc1-*-set0.npz")) if (out / "sets").exists() else []
    if not firsts:
        return None
    fig, axes = plt.subplots(1, len(firsts), figsize=(1.4 * len(firsts) + 1, 6), squeeze=False)
    for ax, path in zip(axes[0], firsts):
        saved = load_set(path)
        plot_image_grid(saved.X, saved.y, image_shape=saved.input_shape, ax=ax,
                        title=path.stem.split("-", 1)[1].rsplit("-set", 1)[0])
    fig.suptitle(f"{budget.dataset}, ipc 1: the first set of each method")
    fig.savefig(out / "ipc1-sets.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out / "ipc1-sets.png"

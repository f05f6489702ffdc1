"""The report: ``tables.md`` from the finished cells, ours beside the paper's figures.

It reads the records a run saved and never fits or evaluates anything. The
report states figures and verdicts computed from them (a difference against
twice its standard error, whether it points the paper's way, Kendall's tau);
what the figures mean is discussed in the documentation (docs/benchmarks.md
and the README), not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .budgets import LONGER_ITERATIONS, Budget, Cell
from .methods import DISTRIBUTION_MATCHING
from .paper import (
    DM_PAPER,
    DM_PAPER_CIFAR10,
    DM_PAPER_ITERATIONS,
    DSA_EVAL_EPOCHS,
    PAPER_ITERATIONS,
    PAPER_WHOLE_SET,
    TABLE1,
    TABLE1_STD,
    TABLE2,
    TABLE2_STD,
    TABLE3,
    TABLE3_STD,
    TABLE_DSA,
)
from .records import cell_record_path, read_record, whole_set_records

#: Table 1's questions at ipc 1: multi-level against each other rule, then the rest in the paper's order.
TABLE1_PAIRS = [("m", "dc"), ("m", "inter"), ("m", "interleaved"), ("interleaved", "dc"), ("dc", "inter")]
#: Table 2's questions: does magnitude help the angle, and does the angle beat magnitude alone?
TABLE2_PAIRS = [("md", "m"), ("m-cos+sse", "m"), ("m-cos+100mse", "m"), ("m", "m-l2"), ("m", "m-sse"),
                ("m", "m-100mse"), ("md", "m-cos+sse"), ("md", "m-cos+100mse")]
#: The paper's ordering at ipc 1 (Table 3), as adjacent pairs.
ORDERING_PAIRS = [("md", "dc"), ("dc", "herding"), ("herding", "random")]
#: DSA's questions at ipc 1 and at ipc 10.
DSA_PAIRS = [("md+dsa", "md"), ("md+dsa", "md@dsa-eval"), ("md+dsa", "dc+dsa"), ("dc+dsa", "dc")]
DSA_PAIRS_IPC10 = [("mda+dsa", "mda"), ("mda+dsa", "mda@dsa-eval"), ("mda+dsa", "md"), ("mda@dsa-eval", "mda")]
#: Gradient-matching cells DM is set beside at ipc 10: (label, method).
DM_BESIDE = [("Ours-MD", "md"), ("Ours-MDA+DSA", "mda+dsa")]
#: What the pair tables' standard error assumes, and what 'sets apart' checks.
PAIR_TABLE_NOTE = ("The standard error treats every evaluation as independent; networks trained on "
                   "the same set are not, so with 2 sets it understates the spread between sets. "
                   "'Sets apart' is the stricter check: every set of the first method scores above "
                   "every set of the second (set means over their networks).")


def cell_stats(record: dict | None) -> dict | None:
    """Pooled and per-set statistics of a cell's record (accuracies in %), or None when nothing is done.

    Keys: ``mean``, ``std`` (population, over every network), ``n`` (networks),
    ``sets``, ``fit_seconds`` (mean per set), ``set_fit_seconds`` (each set's),
    ``set_means`` and ``set_ses`` (each set's mean and the standard error of
    that mean from its own networks, sample deviation; nan for one network).
    """
    if not record or not record.get("sets"):
        return None
    accs = [a for s in record["sets"] for a in s["accuracies"]]
    return {"mean": 100 * float(np.mean(accs)), "std": 100 * float(np.std(accs)), "n": len(accs),
            "sets": len(record["sets"]), "fit_seconds": float(np.mean([s["fit_seconds"] for s in record["sets"]])),
            "set_fit_seconds": [float(s["fit_seconds"]) for s in record["sets"]],
            "set_means": [100 * float(np.mean(s["accuracies"])) for s in record["sets"]],
            "set_sampling_seconds": [float(s["sampling_seconds"]) for s in record["sets"] if "sampling_seconds" in s],
            "machines": sorted({machine_label(s.get("machine")) for s in record["sets"]}),
            "set_ses": [100 * float(np.std(s["accuracies"], ddof=1) / math.sqrt(len(s["accuracies"])))
                        if len(s["accuracies"]) > 1 else float("nan") for s in record["sets"]]}


def machine_label(machine: dict | None) -> str:
    """What makes two records' seconds comparable: the CPU (with its vector extensions) and the allocator."""
    if not machine or not machine.get("cpu"):
        return "a CPU not recorded"
    return f"{machine['cpu']}, malloc {machine.get('malloc') or 'not recorded'}"


def machines_of(stats: dict) -> list[str]:
    """The :func:`machine_label` of each machine a cell's sets were made on."""
    return stats.get("machines") or [machine_label(None)]


def format_stats(stats: dict | None, cell: Cell | None) -> str:
    """``mean +- std``, marked partial when fewer sets than the cell's are done."""
    if stats is None:
        return "(not run)"
    text = f"{stats['mean']:.1f} +- {stats['std']:.1f}"
    if cell is not None and stats["sets"] < cell.sets:
        text += f" (partial: {stats['sets']}/{cell.sets} sets)"
    return text


@dataclass
class Results:
    """The cells of a budget with the statistics of their records, as the report reads them."""

    budget: Budget
    out: Path
    cells: dict[str, Cell]
    stats: dict[str, dict | None]

    @classmethod
    def read(cls, budget: Budget, out: Path) -> Results:
        """Read every cell record of ``budget`` in ``out`` (missing ones give None)."""
        cells = {c.key: c for c in budget.cells}
        stats = {key: cell_stats(read_record(cell_record_path(out, key))) for key in cells}
        return cls(budget, out, cells, stats)

    @property
    def ipcs(self) -> list[int]:
        """The ipcs of the budget's gradient-matching and selection cells, ascending: the
        columns of the main tables (distribution matching has its own table)."""
        return sorted({c.ipc for c in self.budget.cells if not is_dm(c)})

    def table_head(self) -> list[str]:
        """Header and separator of a table with ours and the paper's figure at each ipc."""
        return ["| method | " + " | ".join(f"ipc {i} ours | ipc {i} paper" for i in self.ipcs) + " |",
                "|---|" + "---|---|" * len(self.ipcs)]

    def table_row(self, label: str, method: str, paper, columns=None, paper_sd=None) -> str:
        """One row: ours and the paper's figure (by ipc, or one number) in each column."""
        cols = []
        for ipc in self.ipcs if columns is None else columns:
            key = f"ipc{ipc}-{method}"
            ours = format_stats(self.stats.get(key), self.cells.get(key)) if key in self.cells else "-"
            figure = paper.get(ipc) if isinstance(paper, dict) else paper
            sd = (paper_sd or {}).get(ipc)
            cols.append(f"{ours} | {'-' if figure is None else figure if sd is None else f'{figure} +- {sd}'}")
        return f"| {label} | " + " | ".join(cols) + " |"


def report_text(budget: Budget, out: Path) -> str:
    """The markdown report of ``budget`` from the records in ``out``.

    Parameters
    ----------
    budget : Budget
        The budget whose cells are reported (cells without a record show as not run).
    out : Path
        The results folder.

    Returns
    -------
    str
        The text of ``tables.md`` (no trailing newline).
    """
    results = Results.read(budget, out)
    lines = header_section(results) + table1_section(results) + table2_section(results)
    lines += table3_section(results)
    lines += ["## Ordering at ipc 1 (paper: Ours-MD > DC > Herding > Random)", ""]
    lines += pair_table(results.stats, ORDERING_PAIRS)
    if any(c.eval_augment for c in budget.cells):
        lines += dsa_section(results)
    if any(c.method == "md-bf16" for c in budget.cells):
        lines += precision_section(results)
    if any(is_dm(c) for c in budget.cells):
        lines += dm_section(results)
    if any(c.maker in BEYOND_METHODS for c in budget.cells):
        lines += beyond_section(results)
    spread = next((c for c in budget.cells if c.method == "random@spread"), None)
    if spread is not None:
        lines += random_spread_section(results.stats.get(spread.key), spread)
    longer = {c.maker: c for c in budget.cells if c.method.endswith(f"@k{LONGER_ITERATIONS}")}
    if longer:
        lines += longer_runs_section(results.stats, results.cells, longer)
    return "\n".join(lines)


def header_section(results: Results) -> list[str]:
    """Title, command, what the figures are, and every cell's budget."""
    budget = results.budget
    return [f"# Reproduction on {budget.dataset}, budget `{budget.name}`", "",
            f"Command: `python benchmarks/reproduce --budget {budget.name}`. "
            "Accuracy (%) of ConvNets trained from scratch on the set, mean +- std pooled over "
            "every evaluation; the paper's figure beside ours.", "",
            "Budget per ipc: " + "; ".join(
                f"ipc {c.ipc} {c.method}: K={c.iterations}, {c.sets} set(s) x {c.models} models, "
                f"{c.epochs} epochs" + (" (indicative)" if c.indicative else "") for c in budget.cells), ""]


def table1_section(results: Results) -> list[str]:
    """Table 1 (what to match) and its pairs against the paper's differences."""
    lines = ["## Table 1: what to match", ""] + results.table_head()
    lines += [results.table_row(*r, paper_sd=TABLE1_STD.get(r[1])) for r in TABLE1] + [""]
    return lines + against_paper(results.stats, TABLE1_PAIRS, {m: p[1] for _, m, p in TABLE1},
                                 "The paper's ordering at ipc 1, pair by pair.")


def table2_section(results: Results) -> list[str]:
    """Table 2 (distances; the paper's single SVHN column), the orderings, and its pairs."""
    lines = ["## Table 2: distance functions (paper: SVHN ipc 1; compare orderings)", "",
             "| method | ipc 1 ours (Fashion-MNIST) | paper (SVHN ipc 1) |", "|---|---|---|"]
    lines += [results.table_row(label, m, {1: paper}, columns=[1], paper_sd={1: TABLE2_STD[m]})
              for label, m, paper in TABLE2] + [""]
    done = [(label, s["mean"]) for label, s in ((label, results.stats.get(f"ipc1-{m}")) for label, m, _ in TABLE2)
            if s]
    if done:
        lines += ["Ordering, ours (ipc 1): " + " > ".join(name for name, _ in sorted(done, key=lambda t: -t[1])),
                  "Ordering, paper (SVHN): "
                  + " > ".join(name for name, _, _p in sorted(TABLE2, key=lambda t: -t[2])), ""]
    return lines + against_paper(
        results.stats, TABLE2_PAIRS, {m: p for _, m, p in TABLE2},
        "The paper's two findings, pair by pair (its differences are SVHN's): adding a magnitude "
        "term to the angle (d1) helps, and the angle alone beats magnitude-aware distances alone.")


def table3_section(results: Results) -> list[str]:
    """Table 3 (the ablation), the whole-training-set reference, and the indicative cells' budget."""
    lines = ["## Table 3: ablation", ""] + results.table_head()
    lines += [results.table_row(*r, paper_sd=TABLE3_STD.get(r[1])) for r in TABLE3]
    whole_txt = "; ".join(f"ours {100 * np.mean(r['accuracies']):.1f} after {r['epochs']} epochs"
                          for r in whole_set_records(results.out)) or "ours not run"
    lines += [f"| Whole training set | {whole_txt} | paper {PAPER_WHOLE_SET} |", ""]
    indicative = sorted({(c.ipc, c.iterations) for c in results.budget.cells if c.indicative and not is_dm(c)})
    if indicative:
        lines += ["Indicative cells (" + ", ".join(f"ipc {i}: K={k}" for i, k in indicative)
                  + f", against the paper's K={PAPER_ITERATIONS}) run a small fraction of the paper's "
                  "iterations with few sets and networks.", ""]
    return lines


def dsa_section(results: Results) -> list[str]:
    """The DSA table beside the published DC+DSA figures, and its pairs at ipc 1 and 10."""
    lines = ["## Beyond the paper: with DSA (Zhao and Bilen, ICML 2021)", "",
             "Sets made with DSA are evaluated as DSA does (augmented batches, "
             f"{DSA_EVAL_EPOCHS} epochs); the published DSA figure is DC+DSA's. "
             "The 'evaluated with DSA' rows train on MD's or MDA's own sets (made "
             "without DSA) with that protocol.", ""] + results.table_head()
    lines += [results.table_row(*r) for r in TABLE_DSA] + [""]
    lines += pair_table(results.stats, DSA_PAIRS)
    return lines + ipc10_pair_table(results.budget, results.stats, DSA_PAIRS_IPC10)


def precision_section(results: Results) -> list[str]:
    """MD with the real-gradient pass in bfloat16 beside float32, at ipc 1 and 10."""
    lines = ["## Precision: the real-gradient pass in bfloat16", "",
             "Ours-MD with `precision=\"bf16\"` beside float32 (the paper's setting); the same "
             "seeds, so the sets differ only by the arithmetic. At ipc 10, 'bf16, network steps too' "
             "adds `network_precision=\"bf16\"` (one set, the seed of the others' first).", ""]
    lines += results.table_head()
    lines += [results.table_row("Ours-MD, float32", "md", {}), results.table_row("Ours-MD, bf16", "md-bf16", {})]
    if "ipc10-md-bf16-net" in results.cells:
        lines.append(results.table_row("Ours-MD, bf16, network steps too", "md-bf16-net", {}))
    lines += [""] + pair_table(results.stats, [("md-bf16", "md")])
    pairs = [("md-bf16", "md")] + ([("md-bf16-net", "md"), ("md-bf16-net", "md-bf16")]
                                   if "ipc10-md-bf16-net" in results.cells else [])
    return lines + ipc10_pair_table(results.budget, results.stats, pairs)


def is_dm(cell: Cell) -> bool:
    """Whether ``cell``'s sets are made by distribution matching."""
    return cell.maker in DISTRIBUTION_MATCHING


def _evaluation(cell: Cell) -> str:
    """How a cell's sets are evaluated, in a few words."""
    if cell.eval_recipe == "idc":
        return f"IDC's recipe (DSA + CutMix, batch 64), {cell.epochs} epochs"
    return f"{'DSA' if cell.eval_augment == 'dsa' else 'no augmentation'}, {cell.epochs} epochs"


def dm_section(results: Results) -> list[str]:
    """Distribution matching's cells beside DM's published figures, then DM beside MD at ipc 10."""
    cells = [c for c in results.budget.cells if is_dm(c)]
    cifar = ", ".join(f"{v} at ipc {k}" for k, v in DM_PAPER_CIFAR10.items())
    lines = ["## Beyond the paper: distribution matching (Zhao and Bilen, WACV 2023)", "",
             "DM's published setting (real initialisation, DSA with the full strategy, image learning rate "
             "1.0 with momentum 0.5, 256 real images per class), K iterations per cell against the paper's "
             f"{DM_PAPER_ITERATIONS:,}. The DM paper reports no Fashion-MNIST figure (CIFAR-10: {cifar}), "
             "hence '-'.", "",
             "| method | ipc | K | sets x models | evaluation | ours | fit seconds per set | DM paper |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        stats = results.stats.get(c.key)
        seconds = ", ".join(f"{x:.0f}" for x in stats["set_fit_seconds"]) if stats else ""
        paper = DM_PAPER.get(c.ipc)
        lines.append(f"| {c.method} | {c.ipc} | {c.iterations} | {c.sets} x {c.models} | {_evaluation(c)} | "
                     f"{format_stats(stats, c)} | {seconds} | {'-' if paper is None else paper} |")
    lines.append("")
    for c in cells:
        beside = [(label, m) for label, m in DM_BESIDE if f"ipc{c.ipc}-{m}" in results.cells]
        if c.ipc == 10 and beside:
            lines += dm_beside_gradient_matching(results, c, beside)
    return lines


def dm_beside_gradient_matching(results: Results, dm: Cell, beside: list[tuple[str, str]]) -> list[str]:
    """DM's cell beside gradient matching's at the same ipc: accuracy, K and each fit's seconds."""
    lines = [f"Which reaches the higher accuracy for its fit time at ipc {dm.ipc}: DM beside gradient "
             "matching, each fit's seconds as its cell's record has them (per set, in the order of the set "
             "means; the first set of every cell has seed 0).", "",
             "| method | K | evaluation | ours | set means | fit seconds per set |", "|---|---|---|---|---|---|"]
    for label, method in [("DM", dm.method)] + beside:
        cell = results.cells[f"ipc{dm.ipc}-{method}"]
        stats = results.stats.get(cell.key)
        means = ", ".join(f"{m:.1f}" for m in stats["set_means"]) if stats else ""
        seconds = ", ".join(f"{x:.0f}" for x in stats["set_fit_seconds"]) if stats else ""
        lines.append(f"| {label} ({method}) | {cell.iterations} | {_evaluation(cell)} | {format_stats(stats, cell)} "
                     f"| {means} | {seconds} |")
    lines += ["", "The evaluations differ where the rows say so: DSA's evaluation alone moves a set's accuracy "
              "(see the DSA section's 'evaluated with DSA' rows).", ""]
    return lines + pair_table(results.stats, [(dm.method, m) for _, m in beside], ipc=dm.ipc, note=False)


#: Issue 22's methods: multi-formation, representative real batches, both.
BEYOND_METHODS = ("md-f2", "md-rep", "md-f2-rep")
#: IDC's published Fashion-MNIST figure at ipc 1 (factor 2, its own recipe) and DC's as IDC quotes it.
IDC_PAPER_FMNIST_IPC1 = 81.0
DC_AS_IDC_QUOTES = 70.5


def beyond_section(results: Results) -> list[str]:
    """MD beside multi-formation and representative batches: both recipes, seconds, time to accuracy."""
    lines = ["## Beyond the paper: multi-formation sets and representative real batches", "",
             "MD (Table 3's Ours-MD) with factor 2 (IDC's multi-formation, Kim et al. 2022: each stored image "
             "decodes into 4 training images; mix initialisation), with representative real batches (DREAM, "
             "Liu et al. 2023: the images nearest the centres of a k-means clustering of each class in the "
             "current network's embedding, re-clustered every 10 matching steps), and both. The storage is "
             "the same for all: ipc images per class. Each set is scored by DC's recipe (as every other "
             "table here) and by IDC's (the recipe behind IDC's published figures). IDC reports "
             f"{IDC_PAPER_FMNIST_IPC1} at ipc 1 on Fashion-MNIST with factor 2 and its recipe, after 2,000 "
             f"outer iterations of 100 inner steps; DC {DC_AS_IDC_QUOTES} as IDC quotes it.", "",
             "| method | ipc | K | DC's recipe | IDC's recipe | fit seconds per set | of which clustering |",
             "|---|---|---|---|---|---|---|"]
    made = [c for c in results.budget.cells if not c.reuse_sets and (
        (c.method == "md" and c.ipc == 1) or c.maker in BEYOND_METHODS or c.method == "md@k100")]
    for c in made:
        stats = results.stats.get(c.key)
        idc_key = f"ipc{c.ipc}-{c.method}@idc-eval"
        idc = format_stats(results.stats.get(idc_key), results.cells.get(idc_key)) if idc_key in results.cells \
            else "-"
        seconds = ", ".join(f"{x:.0f}" for x in stats["set_fit_seconds"]) if stats else ""
        clustering = ", ".join(f"{x:.0f}" for x in stats.get("set_sampling_seconds", [])) if stats else ""
        lines.append(f"| {c.method} | {c.ipc} | {c.iterations} | {format_stats(stats, c)} | {idc} | {seconds} | "
                     f"{clustering or '-'} |")
    lines += ["", "DC's recipe:", ""]
    lines += pair_table(results.stats, [(m, "md") for m in BEYOND_METHODS] + [("md-f2-rep", "md-f2")], note=False)
    lines += ["IDC's recipe:", ""]
    lines += pair_table(results.stats, [(f"{m}@idc-eval", "md@idc-eval") for m in BEYOND_METHODS], note=False)
    return lines + time_to_accuracy(results) + [PAIR_TABLE_NOTE, ""]


def time_to_accuracy(results: Results) -> list[str]:
    """For representative batches (alone, and with factor 2): accuracy by K against the K = 100
    accuracy without them, and the fit time as a ratio of that run's."""
    lines = []
    for rep, base in (("md-rep", "md"), ("md-f2-rep", "md-f2")):
        target = results.stats.get(f"ipc1-{base}")
        # DC's recipe only: the IDC-recipe cells share a maker and K, and score another way.
        cells = [c for c in results.budget.cells if c.maker == rep and c.ipc == 1
                 and c.eval_recipe is None and c.eval_augment is None]
        runs = [(c.iterations, results.stats.get(c.key)) for c in sorted(cells, key=lambda c: c.iterations)]
        if not runs:
            continue
        if target is None:
            lines += [f"Time to {base}'s K = 100 accuracy with representative batches ({rep}): not measured "
                      f"yet (needs ipc1-{base}).", ""]
            continue
        lines += [f"Time to {base}'s K = 100 accuracy ({target['mean']:.1f}, fit {target['fit_seconds']:.0f} s "
                  f"per set on {' and '.join(machines_of(target))}) with representative batches ({rep}):",
                  "", "| K | accuracy | reaches it? | fit seconds per set | time ratio |", "|---|---|---|---|---|"]
        across = set()
        for k, stats in runs:
            if stats is None:
                lines.append(f"| {k} | (not run) | | | |")
                continue
            reaches = "yes" if stats["mean"] >= target["mean"] else "no"
            mine, theirs = machines_of(stats), machines_of(target)
            same = mine == theirs and "a CPU not recorded" not in mine
            if not same:
                across.update(mine)
            lines.append(f"| {k} | {stats['mean']:.1f} | {reaches} | {stats['fit_seconds']:.0f} | "
                         f"{stats['fit_seconds'] / target['fit_seconds']:.2f}{'' if same else ' (*)'} |")
        if across:
            lines += ["", f"(*) made on {' and '.join(sorted(across))}: not the machine of {base}'s record, so "
                      "this time ratio mixes machines and allocators and says little."]
        lines.append("")
    return lines


def pair_table(stats: dict, pairs, ipc: int = 1, note: bool = True, paper: dict | None = None) -> list[str]:
    """Differences at one ipc against twice their pooled standard error.

    Parameters
    ----------
    stats : dict
        Cell key -> :func:`cell_stats` (or None).
    pairs : list of (str, str)
        Methods compared, first minus second.
    ipc : int
        The ipc of both cells.
    note : bool
        Follow the table with :data:`PAIR_TABLE_NOTE`.
    paper : dict, optional
        Method -> the paper's figure: two more columns say what the paper's
        difference is and whether ours points the same way.

    Returns
    -------
    list of str
        The table's lines, ending with an empty one.
    """
    extra = " paper difference | same way as the paper? |" if paper else ""
    lines = [f"| pair (ipc {ipc}) | difference (points) | 2 x standard error | beyond noise? | set means "
             "| sets apart? |" + extra, "|---|---|---|---|---|---|" + ("---|---|" if paper else "")]
    for a, b in pairs:
        sa, sb = stats.get(f"ipc{ipc}-{a}"), stats.get(f"ipc{ipc}-{b}")
        paper_diff = paper[a] - paper[b] if paper else None
        if sa and sb:
            row, diff, se = _pair_row(a, b, sa, sb)
            same = same_way(diff, se, paper_diff) if paper else ""
        else:
            row, same = f"| {a} vs {b} | (not run) | | | | |", ""
        if paper:
            row += f" {paper_diff:+.1f} | {same} |" if same else f" {paper_diff:+.1f} | |"
        lines.append(row)
    lines += [""]
    return lines + ([PAIR_TABLE_NOTE, ""] if note else [])


def _pair_row(a: str, b: str, sa: dict, sb: dict) -> tuple[str, float, float]:
    """The row comparing methods ``a`` and ``b`` (their stats ``sa``, ``sb``), the difference and its SE."""
    diff = sa["mean"] - sb["mean"]
    se = math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"])
    verdict = "yes" if diff > 2 * se else "no, reversed" if diff < -2 * se else "no, within noise"
    means = (f"{', '.join(f'{m:.1f}' for m in sa['set_means'])} vs "
             f"{', '.join(f'{m:.1f}' for m in sb['set_means'])}")
    apart = ("yes" if min(sa["set_means"]) > max(sb["set_means"]) else
             "reversed" if max(sa["set_means"]) < min(sb["set_means"]) else "no, they overlap")
    return f"| {a} vs {b} | {diff:+.1f} | {2 * se:.1f} | {verdict} | {means} | {apart} |", diff, se


def ipc10_pair_table(budget: Budget, stats: dict, pairs) -> list[str]:
    """The pair table at ipc 10 when the budget has the first pair's cell."""
    if not any(c.key == f"ipc10-{pairs[0][0]}" for c in budget.cells):
        return []
    counts = sorted({stats[k]["sets"] for a, b in pairs for k in (f"ipc10-{a}", f"ipc10-{b}") if stats.get(k)})
    if counts == [1]:
        head = "At ipc 10 (indicative: one set of each, so the spread between sets is not measured):"
    else:
        head = (f"At ipc 10 (indicative: K=10; {' or '.join(map(str, counts))} set(s) of each, "
                "so the spread between sets is measured at most roughly):")
    return [head, ""] + pair_table(stats, pairs, ipc=10, note=False)


def against_paper(stats: dict, pairs, paper: dict[str, float], intro: str) -> list[str]:
    """An ipc-1 pair table beside the paper's differences, then the rank agreement."""
    lines = [intro, ""] + pair_table(stats, pairs, paper=paper, note=False)
    tau = rank_agreement({m: stats[f"ipc1-{m}"]["mean"] for m in paper if stats.get(f"ipc1-{m}")}, paper)
    return lines + ([tau, ""] if tau else [])


def same_way(diff: float, se: float, paper_diff: float) -> str:
    """Whether our difference ``diff`` (standard error ``se``) agrees with the paper's ``paper_diff``.

    Returns
    -------
    str
        "yes", "no, reversed beyond noise", "same sign, within noise",
        "opposite sign, within noise", or, when the paper's figures are equal,
        "paper: a tie, ours too (within noise)" or "paper: a tie, ours not".
    """
    if abs(paper_diff) < 0.05:  # the paper prints one decimal: equal figures are a tie
        return "paper: a tie" + (", ours too (within noise)" if abs(diff) <= 2 * se else ", ours not")
    same = (diff > 0) == (paper_diff > 0)
    if abs(diff) <= 2 * se:
        return "same sign, within noise" if same else "opposite sign, within noise"
    return "yes" if same else "no, reversed beyond noise"


def rank_agreement(ours: dict[str, float], paper: dict[str, float]) -> str | None:
    """Kendall's tau between our ranking and the paper's over the methods both have.

    Returns
    -------
    str or None
        A sentence with tau, or None when fewer than three methods are in common.
    """
    common = [m for m in paper if m in ours]
    if len(common) < 3:
        return None
    from scipy.stats import kendalltau

    tau = kendalltau([ours[m] for m in common], [paper[m] for m in common]).statistic
    return (f"Kendall's tau between our ranking and the paper's over the {len(common)} finished "
            f"rows: {tau:+.2f} (+1: the same order, 0: unrelated, -1: reversed).")


def random_spread_section(stats: dict | None, cell: Cell) -> list[str]:
    """How far the Random baseline moves between selections, against the paper's figure."""
    paper = next(p for _, m, p in TABLE3 if m == "random")[cell.ipc]
    paper_sd = TABLE3_STD["random"][cell.ipc]
    lines = [f"## Investigation: the Random baseline across selections (ipc {cell.ipc})", "",
             f"{cell.sets} random selections (seeds 0, 1000, ...; the first two are Table 3's) x "
             f"{cell.models} ConvNets each, same protocol. Paper: {paper} +- {paper_sd}.", ""]
    if stats is None:
        return lines + ["(not run)", ""]
    means = np.asarray(stats["set_means"])
    sd = float(means.std(ddof=1)) if len(means) > 1 else float("nan")
    se = sd / math.sqrt(len(means))
    lines += [f"- selections done: {len(means)} of {cell.sets}"
              + ("" if len(means) == cell.sets else " (partial)"),
              f"- set means: {', '.join(f'{m:.1f}' for m in means)}",
              f"- mean of the set means {means.mean():.1f}; spread between selections (sd) {sd:.1f}; "
              f"standard error of the mean {se:.1f}; range {means.min():.1f} .. {means.max():.1f}",
              f"- pooled over every network: {stats['mean']:.1f} +- {stats['std']:.1f}",
              f"- paper {paper} minus ours: {paper - means.mean():+.1f} points = "
              f"{(paper - means.mean()) / se:.1f} standard errors", ""]
    return lines


def longer_runs_section(stats: dict, cells: dict[str, Cell], longer: dict[str, Cell]) -> list[str]:
    """Each matching rule's first set at the budget's K beside one set at ``LONGER_ITERATIONS``.

    Parameters
    ----------
    stats : dict
        Cell key -> :func:`cell_stats` (or None).
    cells : dict
        Cell key -> cell, the whole budget.
    longer : dict
        Method (``dc``, ``inter``) -> its cell at ``LONGER_ITERATIONS``.

    Returns
    -------
    list of str
        The section's lines.
    """
    labels = {m: label for label, m, _ in TABLE1}
    short_k = sorted({cells[f"ipc1-{m}"].iterations for m in longer if f"ipc1-{m}" in cells})
    k = "/".join(map(str, short_k))
    lines = ["## Investigation: inter-class matching and the number of iterations (ipc 1)", "",
             f"One more set of {' and '.join(labels.get(m, m) for m in longer)} matching at "
             f"K={LONGER_ITERATIONS}, each with the seed of its first set at K={k} (Table 1) and the same "
             "protocol.", "",
             f"| matching rule | K={k}, first set | K={k}, all sets | K={LONGER_ITERATIONS}, one set |",
             "|---|---|---|---|"]
    figures = {}
    for m, cell in longer.items():
        short, long_run = stats.get(f"ipc1-{m}"), stats.get(cell.key)
        figures[m] = (short and short["set_means"][0], short and short["mean"], long_run and long_run["mean"])
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(
            "(not run)" if v is None else f"{v:.1f}" for v in figures[m]) + " |")
    lines.append("")
    if {"dc", "inter"} <= figures.keys():
        lines += _gap_between_rules(stats, longer, figures, k) + [""]
    return lines


def _one_set_se(stats: dict, key_a: str, key_b: str) -> float | None:
    """Standard error of the difference of two first-set means, from their networks."""
    sa, sb = stats.get(key_a), stats.get(key_b)
    return None if not (sa and sb) else math.hypot(sa["set_ses"][0], sb["set_ses"][0])


def _gap_between_rules(stats: dict, longer: dict[str, Cell], figures: dict, k: str) -> list[str]:
    """Intra- minus inter-class at both K, their one-set standard errors, and the gap's move."""
    labels = {m: label for label, m, _ in TABLE1}
    paper = {m: p[1] for _, m, p in TABLE1}
    gaps = [None if a is None or b is None else a - b for a, b in zip(figures["dc"], figures["inter"])]
    names = (f"K={k}, first sets", f"K={k}, all sets", f"K={LONGER_ITERATIONS}")
    lines = ["Intra- minus inter-class: " + "; ".join(
        f"{name} {'(not run)' if g is None else f'{g:+.1f}'}" for name, g in zip(names, gaps))
        + f" (the paper, K={PAPER_ITERATIONS}: {paper['dc'] - paper['inter']:+.1f})."]
    se_short = _one_set_se(stats, "ipc1-dc", "ipc1-inter")
    se_long = _one_set_se(stats, longer["dc"].key, longer["inter"].key)
    if se_short is not None:
        lines[-1] += (f" Standard error of a one-set gap, from the spread between the networks of the "
                      f"two sets it compares (the spread between sets adds to it): K={k} {se_short:.1f}"
                      + ("" if se_long is None else f"; K={LONGER_ITERATIONS} {se_long:.1f}") + ".")
    if se_long is not None and se_short is not None:
        # Same seeds at both K, so only the networks' noise is independent between the two gaps.
        change, se_change = gaps[2] - gaps[0], math.hypot(se_short, se_long)
        gains = [f"{labels.get(m, m)} {figures[m][2] - figures[m][0]:+.1f} (standard error "
                 f"{_one_set_se(stats, f'ipc1-{m}', longer[m].key):.1f})" for m in ("dc", "inter")]
        verdict = "beyond" if abs(change) > 2 * se_change else "within"
        lines += ["", f"From K={k} to K={LONGER_ITERATIONS}, same seeds: " + ", ".join(gains)
                  + f"; the gap moves by {change:+.1f} points (standard error {se_change:.1f}, "
                  f"{verdict} twice its noise)."]
    return lines

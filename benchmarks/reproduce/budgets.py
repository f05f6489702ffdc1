"""Budgets: which cells a run makes, with how many iterations, sets, networks and epochs.

A cell is one method at one ipc. It condenses or selects ``sets`` training
sets with different seeds (0, 1000, 2000, ...) and trains ``models`` fresh
ConvNets on each with DC's evaluation recipe. Identical configurations are
one cell shared between tables (Table 1's "multi-level" is Table 3's "Ours-M"
and Table 2's "d1").

smoke   seconds, on scikit-learn digits (used by the test suite)
cpu     Fashion-MNIST; every ipc-1 cell at K = 100 with 2 sets x 5 models for
        Tables 1 and 3 and 1 set x 5 models for the extra Table 2 distances;
        ipc-10 cells for DC, MD and MDA only at K = 10 with 1 set x 3 models
        (indicative); beyond the paper, DC+DSA and MD+DSA at ipc 1 and MDA+DSA
        at ipc 10 (evaluated DSA's way), MD's sets re-evaluated DSA's way, and
        MD with precision="bf16" at ipc 1 and 10; about 10 hours on 2 CPU cores;
        then distribution matching (DM) at ipc 1, 10 and 50, 1 set each
        evaluated DSA's way, K set so that each fit takes about an hour;
        then multi-formation (factor 2) and representative real batches at
        ipc 1 (K = 100; representative also at K = 25 and 50), each with its
        sets also scored by IDC's evaluation recipe, and MD and MD with
        representative batches at ipc 10, K = 100 (hours each)
paper   the full protocol (K = 1000, 2 sets x 50 models), for a GPU
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .paper import DSA_EVAL_EPOCHS, IDC_EVAL_EPOCHS, PAPER_ITERATIONS, TABLE1, TABLE2, TABLE3

#: Random selections in the investigation of the Random baseline.
RANDOM_SPREAD_SETS = 10
#: Outer iterations of the investigation of inter-class matching (against the cpu budget's 100).
LONGER_ITERATIONS = 200
#: ``--cells`` name of the whole-training-set reference.
WHOLE_KEY = "whole"
#: Names of the budgets :func:`make_budget` knows.
BUDGET_NAMES = ("smoke", "cpu", "paper")
#: Iterations of the cpu budget's distribution-matching cells, one per cell,
#: each making its fit take about an hour on a 2-core CPU (DM's paper runs
#: 20,000): ``python benchmarks/speed.py --dm`` measured 3.3-3.6 s per DM
#: iteration at ipc 1, 10 and 50 on Fashion-MNIST (about 1,000 per hour; AMD
#: EPYC with AVX512-BF16, 2 cores, 2026-12-04; benchmarks/results/speed-dm.md).
DM_ITERATIONS_IPC1 = 1000
DM_ITERATIONS_IPC10 = 1000
DM_ITERATIONS_IPC50 = 1000


@dataclass
class Cell:
    """One method at one ipc, with its budget."""

    method: str
    ipc: int
    iterations: int
    sets: int
    models: int
    epochs: int
    indicative: bool = False
    #: Augmentation of the evaluation networks' batches ("dsa" for DSA's protocol).
    eval_augment: str | None = None
    #: Evaluate the saved sets of this cell's method instead of making new ones.
    reuse_sets: bool = False
    #: Key of a cell with the same sets and protocol whose finished sets this
    #: one starts from (the same seeds give the same sets and evaluations).
    extends: str | None = None
    #: The evaluation's training recipe: None for DC's (with ``eval_augment``),
    #: "idc" for the one behind IDC's published figures (DSA and CutMix, batch 64).
    eval_recipe: str | None = None

    @property
    def key(self) -> str:
        """The cell's name in ``--cells`` and in its record's file name, e.g. ``ipc1-md``."""
        return f"ipc{self.ipc}-{self.method}"

    @property
    def maker(self) -> str:
        """The method that makes the sets: ``md@dsa-eval`` re-evaluates ``md``'s."""
        return self.method.split("@")[0]

    @property
    def set_stem(self) -> str:
        """File stem of the cell's sets (``-set0`` etc. follow): the maker's own files
        when the cell re-evaluates or extends them, its own when it makes other sets
        with the same condenser (``inter@k200``: a longer run)."""
        name = self.maker if self.reuse_sets or self.extends else self.method
        return f"ipc{self.ipc}-{name}"

    def recorded_budget(self) -> dict:
        """The settings a saved record must match; fields at their defaults are left
        out, so records written before a field existed stay valid."""
        settings = asdict(self)
        for name, default in (("eval_augment", None), ("reuse_sets", False), ("extends", None),
                              ("eval_recipe", None)):
            if settings[name] == default:
                del settings[name]
        return settings


@dataclass
class Budget:
    """A named list of cells on one dataset, with the run-wide settings."""

    name: str
    dataset: str
    cells: list[Cell] = field(default_factory=list)
    #: Epochs of the whole-training-set reference (0: not run).
    whole_epochs: int = 0
    #: Evaluation networks trained in parallel.
    eval_jobs: int = 2
    #: Herding's ``feature_epochs``: its own rule everywhere but the smoke test,
    #: where the feature network's training would be most of the run.
    herding_feature_epochs: int | str = "auto"


def make_budget(name: str) -> Budget:
    """The budget called ``name``.

    Parameters
    ----------
    name : {"smoke", "cpu", "paper"}
        See the module's description.

    Returns
    -------
    Budget
        Its cells in run order.

    Raises
    ------
    SystemExit
        For any other name.
    """
    builders = {"smoke": smoke_budget, "cpu": cpu_budget, "paper": paper_budget}
    if name not in builders:
        raise SystemExit(f"unknown budget {name!r}: use smoke, cpu or paper")
    return builders[name]()


def _table_methods() -> tuple[list[str], list[str]]:
    """Tables 1 and 3's methods in run order, and those only Table 2 has."""
    # Run order: the pairs of the paper's headline ordering first, then the rest.
    t13 = ["random", "herding", "dc", "md", "m", "inter", "interleaved"]
    assert set(t13) == {m for _, m, _ in TABLE1} | {m for _, m, _ in TABLE3} - {"mdo", "mda"}
    return t13, [m for _, m, _ in TABLE2 if m not in t13]


def smoke_budget() -> Budget:
    """Seconds on digits: one set of each kind of cell, for the test suite."""
    cells = [Cell(m, 1, 2, 1, 1, 5) for m in ("random", "herding", "dc", "md")]
    cells += [Cell("md+dsa", 1, 2, 1, 1, 5, eval_augment="dsa"),
              Cell("md@dsa-eval", 1, 2, 1, 1, 5, eval_augment="dsa", reuse_sets=True),
              Cell("random@spread", 1, 2, 2, 1, 5, extends="ipc1-random"),
              Cell("dm", 1, 2, 1, 1, 5, eval_augment="dsa"),
              Cell("md-f2-rep", 1, 2, 1, 1, 5),
              Cell("md-f2-rep@idc-eval", 1, 2, 1, 1, 5, reuse_sets=True, eval_recipe="idc")]
    return Budget("smoke", "digits", cells, whole_epochs=1, eval_jobs=1, herding_feature_epochs=1)


def cpu_budget() -> Budget:
    """Fashion-MNIST on a 2-core CPU: ipc 1 at K = 100, indicative ipc-10 cells at K = 10, and DM."""
    t13, t2_only = _table_methods()
    # The headline cells first (Table 3's ordering, then DSA's question), so
    # that a run spread over sessions answers them earliest.
    cells = [Cell(m, 1, 100, 2, 5, 300) for m in t13[:4]]
    # DSA (issue 7): sets made with DSA are evaluated the DSA way; MD's own
    # sets are re-evaluated that way too, to separate the two effects.
    cells += [Cell(m, 1, 100, 2, 5, DSA_EVAL_EPOCHS, eval_augment="dsa") for m in ("dc+dsa", "md+dsa")]
    cells += [Cell("md@dsa-eval", 1, 100, 2, 5, DSA_EVAL_EPOCHS, eval_augment="dsa", reuse_sets=True)]
    # bf16 against float32 (issue 8): MD at ipc 1, and an indicative ipc-10 cell.
    cells += [Cell("md-bf16", 1, 100, 2, 5, 300)]
    # The indicative ipc-10 cells those two questions need, then DC's.
    ipc10 = dict(indicative=True)
    cells += [Cell("mda", 10, 10, 1, 3, 300, **ipc10)]
    cells += [Cell("mda+dsa", 10, 10, 1, 3, DSA_EVAL_EPOCHS, eval_augment="dsa", **ipc10)]
    # As at ipc 1, MDA's own set evaluated DSA's way separates the two effects.
    cells += [Cell("mda@dsa-eval", 10, 10, 1, 3, DSA_EVAL_EPOCHS, eval_augment="dsa",
                   reuse_sets=True, **ipc10)]
    # A second set of MD in float32 and in bf16 at ipc 10 (same seeds for
    # both) measures the spread between sets. They extend their own one-set
    # records, which are kept.
    cells += [Cell(m, 10, 10, 2, 3, 300, extends=f"ipc10-{m}", **ipc10) for m in ("md", "md-bf16")]
    cells += [Cell("dc", 10, 10, 1, 3, 300, **ipc10)]
    # Issue 24: the network steps in bf16 as well, one set beside those two.
    cells += [Cell("md-bf16-net", 10, 10, 1, 3, 300, **ipc10)]
    # Tables 1 and 2.
    cells += [Cell(m, 1, 100, 2, 5, 300) for m in t13[4:]]
    cells += [Cell(m, 1, 100, 1, 5, 300) for m in t2_only]
    # Investigation: how far the Random baseline moves between selections
    # (RANDOM_SPREAD_SETS of them, starting from Table 3's two).
    cells += [Cell("random@spread", 1, 100, RANDOM_SPREAD_SETS, 5, 300, extends="ipc1-random")]
    # Investigation: intra- against inter-class matching at twice the
    # iterations, one set of each with the seed of its first set.
    cells += [Cell(f"{m}@k{LONGER_ITERATIONS}", 1, LONGER_ITERATIONS, 1, 5, 300) for m in ("dc", "inter")]
    # Beyond the paper: distribution matching (DM), about an hour of fitting
    # per cell, one set each, evaluated DSA's way (DM's protocol) with as many
    # networks as the other cells at that ipc.
    dm = dict(indicative=True, eval_augment="dsa")
    cells += [Cell("dm", 1, DM_ITERATIONS_IPC1, 1, 5, DSA_EVAL_EPOCHS, **dm),
              Cell("dm", 10, DM_ITERATIONS_IPC10, 1, 3, DSA_EVAL_EPOCHS, **dm),
              Cell("dm", 50, DM_ITERATIONS_IPC50, 1, 3, DSA_EVAL_EPOCHS, **dm)]
    cells += beyond_gradient_matching_cells()
    return Budget("cpu", "fashion-mnist", cells, whole_epochs=2)


def beyond_gradient_matching_cells() -> list[Cell]:
    """Issue 22's cells: multi-formation and representative batches beside MD.

    At ipc 1 and K = 100 with Tables 1 and 3's protocol (2 sets x 5 ConvNets,
    DC's recipe), each set also scored by IDC's recipe (``@idc-eval``, the
    recipe behind IDC's published figures), MD's own sets too; representative
    sampling (alone and with factor 2) also at K = 25 and 50, to find the K
    at which it reaches the K = 100 accuracy without it. At ipc 10, MD and MD with representative batches at
    K = 100 (one set x 3 models; hours each, resumed from checkpoints).
    """
    made = ["md-f2", "md-rep", "md-f2-rep"]
    cells = [Cell(m, 1, 100, 2, 5, 300) for m in made]
    cells += [Cell(f"{m}@idc-eval", 1, 100, 2, 5, IDC_EVAL_EPOCHS, reuse_sets=True, eval_recipe="idc")
              for m in ["md"] + made]
    cells += [Cell(f"{m}@k{k}", 1, k, 2, 5, 300) for m in ("md-rep", "md-f2-rep") for k in (25, 50)]
    ipc10 = dict(indicative=True)
    cells += [Cell(f"{m}@k100", 10, 100, 1, 3, 300, **ipc10) for m in ("md", "md-rep")]
    return cells


def paper_budget() -> Budget:
    """The paper's protocol on Fashion-MNIST at ipc 1, 10 and 50, for a GPU."""
    t13, t2_only = _table_methods()
    cells = []
    for ipc in (1, 10, 50):
        methods = t13 + (["mdo", "mda"] if ipc > 1 else []) + (t2_only if ipc == 1 else [])
        cells += [Cell(m, ipc, PAPER_ITERATIONS, 2, 50, 300) for m in methods]
        dsa = ["dc+dsa", "md+dsa"] + (["mda+dsa"] if ipc > 1 else [])
        cells += [Cell(m, ipc, PAPER_ITERATIONS, 2, 50, DSA_EVAL_EPOCHS, eval_augment="dsa") for m in dsa]
        cells += [Cell(f"{m}@dsa-eval", ipc, PAPER_ITERATIONS, 2, 50, DSA_EVAL_EPOCHS, eval_augment="dsa",
                       reuse_sets=True) for m in ["md"] + (["mda"] if ipc > 1 else [])]
    return Budget("paper", "fashion-mnist", cells, whole_epochs=20)

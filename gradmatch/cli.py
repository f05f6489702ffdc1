"""The ``gradmatch`` command line: condense a dataset, score a saved set, draw it.

Commands (``gradmatch COMMAND --help`` lists every option and its default)::

    gradmatch condense --dataset fashion-mnist --ipc 10 --out syn.npz
    gradmatch condense --method dm --dataset fashion-mnist --ipc 10 --out dm.npz
    gradmatch evaluate syn.npz --dataset fashion-mnist --models 5 --epochs 300 --json acc.json
    gradmatch show syn.npz --out grid.png

``python -m gradmatch ...`` runs the same. :func:`main` keeps no state between
calls (everything lives in the parser and the parsed arguments it builds), so it
can be called in-process, by tests, or per process under a launcher.

The options that set an estimator's parameter read everything from the
estimator class: the default from a default instance's ``get_params()``, the
choices from its declared ``_parameter_constraints``, and each value is checked
against those constraints (:func:`_declared`). The options that both methods
that learn a set take (``condense``: gradient matching, ``dm``: distribution
matching; ``_PER_METHOD``), whose defaults mostly differ (``--iterations``:
1000 and 20000), default to None, "the chosen method's default": after
parsing, each is the chosen estimator's default or the given value checked by
that estimator's declared rule (:func:`_learned_params`). Reading them imports torch, so a
command's options are added only when that command is chosen
(:class:`_LazyCommands`): ``gradmatch --help`` stays quick.

Errors are one line on stderr, ``gradmatch: error: ...``, with exit status 2 for
a bad command line and 1 for anything else (a missing file, a missing dataset,
a set that does not match the dataset, a setting the estimator refuses). Set
``GRADMATCH_DEBUG=1`` to get the traceback too. Ctrl-C exits with status 130;
a condensation with ``--checkpoint`` has then saved its last whole iteration
there, and the same command resumes from it.

Under ``torchrun`` (``torchrun --nproc-per-node 2 -m gradmatch condense ...``)
``condense`` starts a process group (gloo on the CPU, nccl on GPUs, one per
local rank) and the condenser shards the classes over the processes; rank 0
writes the set and prints, checkpoints are per rank and resume together.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import numbers
import os
import re
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import memory
from ._version import __version__
from .atomic import write_text_atomic

__all__ = ["main", "build_parser", "METHODS"]

PROG = "gradmatch"

#: Values of ``gradmatch condense --method``.
METHODS = ("condense", "dm", "herding", "random")

#: The methods that learn a synthetic set, and the estimator (in :mod:`gradmatch`) each builds.
_LEARNED = {"condense": "GradientMatchingCondenser", "dm": "DistributionMatchingCondenser"}

#: Options of every method in ``_LEARNED`` whose default is the chosen method's
#: (argparse default None; see :func:`_learned_params`).
_PER_METHOD = ("iterations", "lr_syn", "batch_real", "init", "factor", "real_sampling", "recluster_every",
               "augment", "checkpoint", "checkpoint_every")

#: Values of ``gradmatch evaluate --recipe``: DC's training recipe or IDC's.
EVALUATION_RECIPES = ("dc", "idc")

#: Environment variable that makes errors print their traceback.
DEBUG_ENV = "GRADMATCH_DEBUG"

# Options of ``condense`` that only some methods use (dest -> methods).
_METHOD_OPTIONS = {
    "match": ("condense",), "distance": ("condense",), "schedule": ("condense",),
    "matching_steps": ("condense",), "network_steps": ("condense",), "lr_net": ("condense",),
    "precision": ("condense",), "network_precision": ("condense",), "n_threads": tuple(_LEARNED),
    **{dest: tuple(_LEARNED) for dest in _PER_METHOD},
    "features": ("herding",), "feature_epochs": ("herding",),
    "model": (*_LEARNED, "herding"), "device": (*_LEARNED, "herding"),
}


# Datasets that load_dataset finds without a data_dir.
_DEFAULT_LOCATION = ("digits", "fashion-mnist")


class _UsageError(Exception):
    """A bad command line: exit status 2."""


class _CommandError(Exception):
    """A clear, expected failure of a command: exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and raise instead of exiting."""

    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except None, whose meaning each option's help explains itself."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


class _LazyCommands(argparse._SubParsersAction):
    """Subcommands whose options are added when the subcommand is chosen.

    Adding them reads the estimators' declarations, which imports torch; the
    top-level ``--help`` lists only the commands and needs none of it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._builders = {}

    def add_command(self, name: str, build, **kwargs):
        """A subcommand whose options ``build(parser)`` adds on first use."""
        self._builders[name] = build
        return self.add_parser(name, formatter_class=_Formatter, **kwargs)

    def expand(self, name: str) -> None:
        """Add subcommand ``name``'s options now (once; unknown names are left to argparse)."""
        build = self._builders.pop(name, None)
        if build is not None:
            build(self._name_parser_map[name])

    def __call__(self, parser, namespace, values, option_string=None):
        self.expand(values[0])
        super().__call__(parser, namespace, values, option_string)


# ----------------------------------------------------------------------------- argument types
def _positive_int(text: str) -> int:
    """A CLI-only count (``--models``, ``--jobs``, evaluate's ``--epochs``): an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _dataset_name(text: str) -> str:
    # load_dataset ignores case and "_" vs "-"; so does the command line.
    return str(text).strip().lower().replace("_", "-")


def _from_text(text: str, constraints) -> object:
    """The value a command-line string stands for under declared ``constraints``.

    A declared string option stays a string; otherwise the string is read as a
    number where an ``Interval`` is declared (an int for integer intervals);
    anything else stays the string, for the constraints to accept or refuse.
    """
    from .parameters import Interval, StrOptions

    if any(isinstance(c, StrOptions) and text in c.options for c in constraints):
        return text
    for constraint in constraints:
        if isinstance(constraint, Interval):
            with contextlib.suppress(ValueError):
                return int(text) if constraint.type is numbers.Integral else float(text)
    return text


def _checked(cls, name: str, convert=None):
    """An argparse ``type``: the value of ``convert(text)``, checked by ``cls``'s declared rule for ``name``.

    A refused value is argparse's usage error, ``argument --OPTION: <the rule's message>``.
    """
    from .parameters import InvalidParameterError, validate_parameter_constraints

    constraints = cls._parameter_constraints[name]

    def parse(text: str):
        value = convert(text) if convert is not None else _from_text(text, constraints)
        try:
            validate_parameter_constraints({name: constraints}, {name: value}, caller_name=cls.__name__)
        except InvalidParameterError as err:
            raise argparse.ArgumentTypeError(_one_line(err)) from None
        return value

    parse.__name__ = name
    return parse


def _declared(cls, name: str, *, choices=False, convert=None) -> dict:
    """``add_argument`` keywords of an option that sets parameter ``name`` of estimator ``cls``.

    The default is a default instance's, values are checked by the declared
    constraints, and ``choices=True`` lists the declared string options
    (a sequence gives them explicitly, for rules that are not ``StrOptions``).
    """
    from .parameters import choices_of

    kwargs = {"default": cls().get_params()[name], "type": _checked(cls, name, convert)}
    if choices is True:
        kwargs["choices"] = choices_of(cls, name)
    elif choices:
        kwargs["choices"] = tuple(choices)
    return kwargs


def _model_choices() -> tuple[str, ...]:
    """``auto`` and the networks gradmatch builds (the ``ModelName`` rule's names)."""
    from .networks import list_models

    return ("auto", *list_models())


def _usable_device(cls) -> dict:
    """``--device``: the declared rule (a string), then a device this machine has."""
    from .runtime import resolve_device

    kwargs = _declared(cls, "device")
    check = kwargs["type"]

    def parse(text: str):
        value = check(text)
        try:
            resolve_device(value)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    parse.__name__ = "device"
    return {**kwargs, "type": parse}


def _augment(cls) -> dict:
    """``--augment``: the declared rule; ``none`` is passed on as None."""
    kwargs = _declared(cls, "augment")
    check = kwargs["type"]

    def parse(text: str):
        value = check(text)
        return None if value == "none" else value

    parse.__name__ = "augment"
    return {**kwargs, "type": parse}


def _learned_classes() -> dict:
    """``{method: estimator class}`` of the methods that learn a set (``_LEARNED``)."""
    import gradmatch

    return {method: getattr(gradmatch, name) for method, name in _LEARNED.items()}


def _per_method(name: str, *, choices: bool = False, convert=None) -> dict:
    """``add_argument`` keywords of an option that sets parameter ``name`` of every learned-set method.

    Its default is None: the chosen method's estimator's own default, since
    the methods' defaults differ. Here the text is only converted (under the
    union of the methods' declared rules); the chosen estimator's rule checks
    the value after parsing (:func:`_learned_params`). ``choices=True`` lists
    the declared string options of the methods in the metavar (not as argparse
    ``choices``, which would refuse a value before the rule could explain why).
    """
    from .parameters import choices_of

    classes = _learned_classes().values()
    constraints = [c for cls in classes for c in cls._parameter_constraints[name]]

    def parse(text: str):
        return convert(text) if convert is not None else _from_text(text, constraints)

    parse.__name__ = name
    kwargs = {"default": None, "type": parse}
    if choices:
        options = dict.fromkeys(option for cls in classes for option in choices_of(cls, name))
        kwargs["metavar"] = "{" + ",".join(options) + "}"
    return kwargs


def _defaults_text(name: str, show=repr) -> str:
    """``"default: A for condense, B for dm"``: each learned-set method's default of ``name``.

    ``show`` writes a default for the help (e.g. None as ``none``).
    """
    defaults = {method: cls().get_params()[name] for method, cls in _learned_classes().items()}
    if len({repr(value) for value in defaults.values()}) == 1:
        return f"default: {show(next(iter(defaults.values())))}"
    return "default: " + ", ".join(f"{show(value)} for {method}" for method, value in defaults.items())


def _plain(value) -> str:
    return "none" if value is None else str(value)


def _signature_default(function, name: str):
    """The default of ``function``'s parameter ``name`` (for options that are plain arguments)."""
    return inspect.signature(function).parameters[name].default


# ----------------------------------------------------------------------------- the parser
def add_keep_freed_memory_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    """Give ``parser`` the ``--keep-freed-memory/--no-keep-freed-memory`` switch (on by default).

    For commands that own their process (this CLI, the demo, the benchmarks), which
    pass ``args.keep_freed_memory`` on as :func:`gradmatch.memory.keep_freed_memory`'s
    ``enabled``. ``note`` is appended to the shared help text.
    """
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        help=memory.OPTION_HELP + (f"; {note}" if note else ""))


def build_parser(lazy: bool = True) -> argparse.ArgumentParser:
    """The ``gradmatch`` argument parser, with the subcommands condense, evaluate and show.

    A subcommand's options are added when it is parsed (they read the estimator
    classes, which imports torch); ``lazy=False`` adds them all now, e.g. for
    documentation tools.
    """
    parser = _Parser(
        prog=PROG, formatter_class=_Formatter,
        description="Dataset condensation by effective gradient matching: condense a labelled "
                    "dataset into a few synthetic images per class, score a saved set, draw it.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options. Errors print one line; set "
               f"{DEBUG_ENV}=1 for the traceback.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND",
                                     action=_LazyCommands)
    commands.add_command(
        "condense", _condense_options,
        help="condense (or select) a few images per class and save them to an .npz",
        description="Condense a dataset's training split into IPC synthetic images per class with "
                    "gradient matching (--method condense) or distribution matching (--method dm), "
                    "or select IPC real images per class (--method herding, random), and save the "
                    "set with gradmatch.save_set. Options shared by condense and dm default to the "
                    "chosen method's own settings (both are named in their help).")
    commands.add_command(
        "evaluate", _evaluate_options,
        help="train fresh networks on a saved set and score them on the dataset's test split",
        description="Train --models fresh networks from scratch on a saved set (DC's recipe) and "
                    "score them on the dataset's test split. The set is normalised with the real "
                    "training data's statistics stored in it, never with its own.")
    commands.add_command(
        "show", _show_options,
        help="draw a saved set as an image grid, one row per class",
        description="Draw a saved set as a grid of images, one row per class, each image scaled "
                    "to its own range, and save the picture.")
    if not lazy:
        for name in tuple(commands.choices):
            commands.expand(name)
    return parser


def _dataset_options(p, what: str, default: str | None = "digits") -> None:
    from .datasets import DATASET_NAMES, FASHION_MNIST_DIR

    p.add_argument("--dataset", type=_dataset_name, choices=DATASET_NAMES, default=default,
                   help=f"{what}; digits ships with scikit-learn, the others are read from "
                        "local files (nothing is downloaded)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder holding the dataset's files (default: fashion-mnist reads "
                        f"{FASHION_MNIST_DIR}; mnist, cifar10, cifar100 and svhn need it; "
                        "digits takes none)")


def _condense_options(p) -> None:
    """``gradmatch condense``: the options every method shares, then one group per method."""
    from .condenser import GradientMatchingCondenser as Condenser

    _dataset_options(p, "dataset whose training split is condensed")
    p.add_argument("--ipc", **_declared(Condenser, "ipc"), help="images per class")
    p.add_argument("--out", type=Path, required=True,
                   help="where to write the set (.npz; an existing file is replaced)")
    p.add_argument("--method", choices=METHODS, default="condense",
                   help="condense: GradientMatchingCondenser; dm: DistributionMatchingCondenser "
                        "(distribution matching, Zhao and Bilen); herding: Herding selection; "
                        "random: class-balanced RandomCoreset")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same set)")
    p.add_argument("--quiet", action="store_true",
                   help="show no progress bar (by default one is shown on stderr)")
    p.add_argument("--device", **_usable_device(Condenser),
                   help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N "
                        "(condense, dm and herding)")
    p.add_argument("--model", **_declared(Condenser, "model", choices=_model_choices()),
                   help="network: auto is DC's ConvNet for images (condense, dm and herding; herding "
                        "takes auto, convnet or mlp)")
    _learned_options(p.add_argument_group(
        "learned sets (--method condense and dm; each option's default is the chosen method's)"))
    _matching_options(p.add_argument_group("gradient matching only (--method condense)"), Condenser)
    _herding_options(p.add_argument_group("herding (--method herding)"))
    p.add_argument("--n-threads", **_declared(Condenser, "n_threads"),
                   help="torch threads for the fit (default: torch's, one per core); 1 on a CPU another "
                        "job shares (condense and dm)")
    add_keep_freed_memory_option(p)
    p.set_defaults(run=_condense,
                   method_option_defaults={dest: p.get_default(dest) for dest in _METHOD_OPTIONS})


def _learned_options(g) -> None:
    """Options of ``condense --method condense`` and ``--method dm`` (``_PER_METHOD``).

    Their defaults are each method's own, named in the help from the estimator classes.
    """
    g.add_argument("--iterations", **_per_method("iterations"),
                   help="outer iterations K, each with a fresh network "
                        f"({_defaults_text('iterations')})")
    g.add_argument("--lr-syn", **_per_method("lr_syn"),
                   help=f"learning rate of the synthetic images ({_defaults_text('lr_syn')})")
    g.add_argument("--batch-real", **_per_method("batch_real"),
                   help="real images per class per matching step (condense) or iteration (dm) "
                        f"({_defaults_text('batch_real')})")
    g.add_argument("--init", **_per_method("init", choices=True),
                   help="start from Gaussian noise, from random real images, or (mix) from "
                        "factor**2 real images shrunk into each stored one "
                        f"({_defaults_text('init', show=_plain)})")
    g.add_argument("--factor", **_per_method("factor"), metavar="F",
                   help="multi-formation: each stored image decodes into FxF parts, each resized to "
                        "a training image, so the set trains networks on ipc*F**2 images in the "
                        f"storage of ipc ({_defaults_text('factor')})")
    g.add_argument("--real-sampling", **_per_method("real_sampling", choices=True),
                   help="real batches: random, or representative (the images nearest the centres of a "
                        "k-means clustering of each class in the network's embedding, DREAM) "
                        f"({_defaults_text('real_sampling')})")
    g.add_argument("--recluster-every", **_per_method("recluster_every"), metavar="STEPS",
                   help="with --real-sampling representative: matching steps between clusterings "
                        f"({_defaults_text('recluster_every')})")
    g.add_argument("--augment", **_per_method("augment"), metavar="STRATEGY",
                   help="differentiable siamese augmentation: none, dsa (DSA's "
                        "color_crop_cutout_flip_scale_rotate) or '_'-joined names of color, crop, "
                        "cutout, flip, scale, rotate (leave flip out for digits) "
                        f"({_defaults_text('augment', show=_plain)})")
    g.add_argument("--checkpoint", **_per_method("checkpoint", convert=Path), metavar="DIR",
                   help="folder for checkpoints (created if needed); rerunning the same command "
                        "resumes from it (default: no checkpoints)")
    g.add_argument("--checkpoint-every", **_per_method("checkpoint_every"), metavar="N",
                   help=f"iterations between checkpoints ({_defaults_text('checkpoint_every')})")


def _matching_options(g, Condenser) -> None:
    """Options of ``condense --method condense`` only: GradientMatchingCondenser's own parameters."""
    g.add_argument("--match", **_declared(Condenser, "match", choices=True),
                   help="which gradients are matched: per class (intra), across classes (inter), "
                        "both (multilevel) or alternately (interleaved)")
    g.add_argument("--distance", **_declared(Condenser, "distance"),
                   help="gradient distance: '+'-joined weighted terms of cos, l2, sse, mse, "
                        "e.g. cos, cos+l2, cos+0.1*l2")
    g.add_argument("--schedule", **_declared(Condenser, "schedule", choices=True),
                   help="network steps after each matching step")
    g.add_argument("--matching-steps", **_declared(Condenser, "matching_steps"),
                   help="matching steps T per iteration (default: DC's value for --ipc)")
    g.add_argument("--network-steps", **_declared(Condenser, "network_steps"),
                   help="network steps of the fixed schedule (default: DC's value for --ipc)")
    g.add_argument("--lr-net", **_declared(Condenser, "lr_net"),
                   help="learning rate of the network steps")
    g.add_argument("--precision", **_declared(Condenser, "precision", choices=True),
                   help="arithmetic of the real-gradient pass (bf16 needs bf16 hardware; else float32 "
                        "with a warning)")
    g.add_argument("--network-precision", **_declared(Condenser, "network_precision", choices=True),
                   help="arithmetic of the network steps' forward passes (bf16: under autocast)")


def _herding_options(g) -> None:
    """Options of ``condense --method herding``: Herding's own parameters."""
    from .selectors import Herding

    g.add_argument("--features", **_declared(Herding, "features", choices=True),
                   help="herd in a trained network's feature space or on the pixels")
    g.add_argument("--feature-epochs", **_declared(Herding, "feature_epochs"),
                   help="epochs of training of the feature network (auto: at least 200 SGD steps)")


def _evaluate_options(p) -> None:
    """``gradmatch evaluate``: NetworkClassifier's parameters and evaluate_set's arguments."""
    from .classifier import NetworkClassifier as Classifier
    from .evaluation import evaluate_set

    p.add_argument("set", type=Path, metavar="SET",
                   help="a set written by 'gradmatch condense' (.npz), or a released set's name, e.g. "
                        "fashion-mnist/ipc1-md (gradmatch.datasets.list_condensed())")
    _dataset_options(p, "dataset whose test split scores the networks (default: the one the set "
                        "records, digits for sets that record none)", default=None)
    p.add_argument("--models", type=_positive_int, default=_signature_default(evaluate_set, "n_models"),
                   help="networks to train, seeds SEED, SEED+1, ...")
    # At least 1: zero epochs would score untrained networks, not the set.
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="training epochs per network (default: 300 with DC's recipe, 1000 with IDC's; "
                        "DSA evaluates with 1000 and --augment dsa)")
    p.add_argument("--recipe", choices=EVALUATION_RECIPES, default="dc",
                   help="training recipe: dc (DC's: batch 256, lr x0.1 at half the epochs) or idc (the "
                        "one behind IDC's published figures: batch 64, lr x0.2 at 2/3 and 5/6, DSA and "
                        "CutMix) (default: dc)")
    p.add_argument("--mix", **_declared(Classifier, "mix", choices=True),
                   help="mix training batches: cutmix, or none (default: none with DC's recipe; "
                        "IDC's recipe always uses cutmix)")
    p.add_argument("--augment", **_augment(Classifier), metavar="STRATEGY",
                   help="augment every training batch: none, dsa or '_'-joined names of color, "
                        "crop, cutout, flip, scale, rotate")
    p.add_argument("--model", **_declared(Classifier, "model", choices=_model_choices()),
                   help="evaluation network; auto is DC's ConvNet for images, its MLP for flat "
                        "features (another network gives a cross-architecture score)")
    p.add_argument("--jobs", type=_positive_int, default=_signature_default(evaluate_set, "n_jobs"),
                   help="parallel CPU processes, one torch thread each (on a GPU the networks "
                        "train one after another)")
    p.add_argument("--device", **_usable_device(Classifier),
                   help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of the first network")
    p.add_argument("--json", type=Path, default=None, metavar="OUT",
                   help="also write the accuracies and settings to this JSON file (default: none)")
    add_keep_freed_memory_option(p)
    p.set_defaults(run=_evaluate)


def _show_options(p) -> None:
    """``gradmatch show``: CLI-only options."""
    p.add_argument("set", type=Path, metavar="SET",
                   help="a set written by 'gradmatch condense' (.npz), or a released set's name, e.g. "
                        "fashion-mnist/ipc1-md (gradmatch.datasets.list_condensed())")
    p.add_argument("--out", type=Path, default=None,
                   help="picture to write; the extension picks the format (png, pdf, svg) "
                        "(default: SET with the suffix .png; for a released set's name, "
                        "./<dataset>-ipc<k>-<method>.png in the working directory)")
    p.add_argument("--title", default=None,
                   help="title of the picture (default: the method, images per class and the dataset "
                        "the set records)")
    p.set_defaults(run=_show)


# ----------------------------------------------------------------------------- helpers
def _one_line(text) -> str:
    return " ".join(str(text).split())


# Failures with messages written for the user: printed as they are. Anything else is
# unexpected and also named by its type. (DatasetError is an OSError; DivergenceError
# a FloatingPointError; ImportError: SVHN without scipy.)
_EXPECTED = (_CommandError, ValueError, TypeError, OSError, FloatingPointError, ImportError)


def _error_line(err: BaseException) -> str:
    message = _one_line(err)
    if isinstance(err, _EXPECTED) and message:
        return message
    name = type(err).__name__
    return f"{name}: {message}" if message else name


def _check_output(path: Path, option: str, inputs=()) -> None:
    """Fail before any long work when ``path`` cannot be written or is one of the command's inputs."""
    if path.is_dir():
        raise _CommandError(f"{option} {path} is a directory; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise _CommandError(f"cannot write {option} {path}: the folder {folder} does not exist")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise _CommandError(f"{option} {path} is the input {source} itself; a command never writes over "
                                f"its input: give another {option}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or one inode (links)."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _dataset_files(args) -> list[Path]:
    """The files of ``--data-dir`` (the command's inputs), for the overwrite check."""
    folder = getattr(args, "data_dir", None)
    return [p for p in Path(folder).iterdir() if p.is_file()] if folder is not None and Path(folder).is_dir() else []


def _load_dataset(args):
    from .datasets import load_dataset

    see = f"(see '{PROG} {args.command} --help')"
    if args.dataset == "digits" and args.data_dir is not None:
        raise _UsageError(f"--data-dir does not apply to --dataset digits, which ships with "
                          f"scikit-learn {see}")
    if args.data_dir is None and args.dataset not in _DEFAULT_LOCATION:
        raise _UsageError(f"--dataset {args.dataset} needs --data-dir, the folder holding its files; "
                          f"nothing is downloaded {see}")
    return load_dataset(args.dataset, None if args.data_dir is None else args.data_dir)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _shape_text(shape) -> str:
    return "x".join(str(s) for s in shape)


# ----------------------------------------------------------------------------- condense
def _check_method_options(args) -> None:
    """Options given for a method that does not use them are a usage error, not silently dropped."""
    unused = [dest for dest, methods in _METHOD_OPTIONS.items()
              if args.method not in methods and getattr(args, dest) != args.method_option_defaults[dest]]
    if args.method == "herding" and args.model not in ("auto", "convnet", "mlp"):
        raise _UsageError(f"--method herding takes --model auto, convnet or mlp, not {args.model!r}")
    if unused:
        names = ", ".join("--" + dest.replace("_", "-") for dest in unused)
        raise _UsageError(f"{names} {'does' if len(unused) == 1 else 'do'} not apply to "
                          f"--method {args.method} (see 'gradmatch condense --help')")
    if args.method in _LEARNED:
        _learned_params(args)  # a value the chosen estimator's rule refuses: a usage error now


def _learned_params(args) -> dict:
    """The ``_PER_METHOD`` parameters of the chosen learned-set method's estimator.

    An option not given (None) is that estimator's default; a given value is
    checked by its declared rule, and a refused one is a usage error worded as
    argparse words one (``argument --OPTION: <the rule's message>``).
    ``--augment none`` is passed on as None, ``--checkpoint`` as a string.
    """
    from .parameters import InvalidParameterError, validate_parameter_constraints

    cls = _learned_classes()[args.method]
    defaults = cls().get_params()
    params = {}
    for name in _PER_METHOD:
        value = getattr(args, name)
        if value is None:
            params[name] = defaults[name]
            continue
        try:
            validate_parameter_constraints({name: cls._parameter_constraints[name]}, {name: value},
                                           caller_name=cls.__name__)
        except InvalidParameterError as err:
            option = "--" + name.replace("_", "-")
            raise _UsageError(f"argument {option}: {_one_line(err)} (see '{PROG} condense --help')") from None
        if name == "augment" and value == "none":
            value = None
        elif name == "checkpoint":
            value = str(value)
        params[name] = value
    return params


def _make_estimator(args):
    """The estimator ``args`` (parsed ``condense`` options) ask for."""
    from . import GradientMatchingCondenser, Herding, RandomCoreset

    verbose = 0 if args.quiet else 1
    if args.method == "random":
        return RandomCoreset(ipc=args.ipc, random_state=args.seed)
    if args.method == "herding":
        return Herding(ipc=args.ipc, features=args.features, feature_epochs=args.feature_epochs,
                       model=args.model, device=args.device, random_state=args.seed, verbose=verbose)
    shared = dict(ipc=args.ipc, model=args.model, device=args.device, random_state=args.seed,
                  verbose=verbose, keep_freed_memory=args.keep_freed_memory, n_threads=args.n_threads,
                  **_learned_params(args))
    if args.method == "dm":
        return _learned_classes()["dm"](**shared)
    return GradientMatchingCondenser(
        match=args.match, distance=args.distance, schedule=args.schedule,
        matching_steps=args.matching_steps, network_steps=args.network_steps, lr_net=args.lr_net,
        precision=args.precision, network_precision=args.network_precision, **shared)


@contextlib.contextmanager
def _launched_group(args):
    """Under ``torchrun`` (WORLD_SIZE > 1): a process group for the run, and this rank.

    gloo on the CPU, nccl on CUDA with one GPU per local rank. The condenser
    then shards the classes over the ranks (its ``distributed="auto"``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield 0
        return
    import torch
    import torch.distributed as dist

    from .runtime import resolve_device

    device = resolve_device(args.device)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        args.device = f"cuda:{local}"
    if dist.is_initialized():
        yield dist.get_rank()
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    # An error propagates from here without tearing the group down: another
    # rank may be waiting in a collective, and destroying the group under it
    # can abort this process before the error is reported (torchrun then stops
    # the other ranks). On success the ranks leave together, since one rank
    # destroying its group while another still talks to it is a teardown race.
    yield dist.get_rank()
    dist.barrier()
    dist.destroy_process_group()


def _condense(args) -> int:
    _check_method_options(args)  # before a process group starts
    with _launched_group(args) as rank:
        return _condense_on_rank(args, rank)


def _condense_on_rank(args, rank: int) -> int:
    from .io import save_set

    _check_output(args.out, "--out", inputs=_dataset_files(args))
    (X, y), _ = _load_dataset(args)
    estimator = _make_estimator(args)
    if rank > 0 and hasattr(estimator, "verbose"):
        estimator.set_params(verbose=0)  # one progress bar: rank 0's
    start = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - start
    if rank > 0:
        return 0  # every rank holds the whole set; rank 0 writes it and reports
    path = save_set(args.out, estimator, dataset=args.dataset)
    X_syn = np.asarray(estimator.X_syn_)
    n_classes = len(estimator.classes_)
    if args.method == "condense":
        what = (f"condensed {args.dataset} ({len(X)} training images) to {len(X_syn)} synthetic "
                f"images with gradient matching ({_plural(estimator.n_iter_, 'iteration')}, {args.match}, "
                f"{args.distance}, {args.schedule})")
    elif args.method == "dm":
        what = (f"condensed {args.dataset} ({len(X)} training images) to {len(X_syn)} synthetic "
                f"images with distribution matching ({_plural(estimator.n_iter_, 'iteration')}, "
                f"augment {_plain(estimator.augment)})")
    else:
        what = (f"selected {len(X_syn)} of the {len(X)} {args.dataset} training images "
                f"by {'herding' if args.method == 'herding' else 'random choice'}")
    ranks = getattr(estimator, "n_ranks_", 1)
    sharded = f", classes sharded over {ranks} processes" if ranks > 1 else ""
    factor = getattr(estimator, "factor_", 1)
    stored = (f" (stored as {args.ipc} per class, each decoding into {factor}x{factor})"
              if factor > 1 else "")
    per_class = args.ipc * factor * factor
    print(f"{what}: {per_class} per class x {n_classes} classes of {_shape_text(X_syn.shape[1:])}{stored}, "
          f"in {seconds:.1f} s{sharded}; saved to {path}")
    return 0


# ----------------------------------------------------------------------------- evaluate
def _channel_means(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 4:
        return X.mean(axis=(0, 2, 3), dtype=np.float64)
    if X.ndim == 3:
        return np.array([X.mean(dtype=np.float64)])
    return X.mean(axis=0, dtype=np.float64)


def _match_set_to_dataset(syn, X_train, y_train, X_test, dataset: str):
    """The set's images in the test data's layout; a clear error when set and dataset differ."""
    X = np.asarray(syn.X)
    want = tuple(X_test.shape[1:])
    if X.ndim == 2 and syn.input_shape is not None:
        shape = tuple(syn.input_shape)
        if shape == want or (shape[0] == 1 and shape[1:] == want):
            X = X.reshape((len(X),) + want)
    if tuple(X.shape[1:]) != want:
        raise _CommandError(
            f"the set holds images of shape {_shape_text(X.shape[1:])} but {dataset} has "
            f"{_shape_text(want)}: {_made_from(syn, dataset)}")
    classes = np.unique(y_train)
    if syn.classes.tolist() != classes.tolist():
        raise _CommandError(
            f"the set's classes {_abbreviate(syn.classes)} are not {dataset}'s {_abbreviate(classes)}: "
            f"{_made_from(syn, dataset)}")
    return X


def _abbreviate(values, limit: int = 12) -> str:
    values = list(np.asarray(values).tolist())
    shown = ", ".join(map(repr, values[:limit]))
    return f"[{shown}{', ...' if len(values) > limit else ''}] ({len(values)})"


def _normalization_warning(syn, X_train, dataset: str) -> str | None:
    """A warning when the set's stored statistics are far from the dataset's training data."""
    norm = syn.normalization
    if norm is None:
        return None
    stored = np.asarray(norm["mean"], dtype=np.float64).reshape(-1)
    std = np.asarray(norm["std"], dtype=np.float64).reshape(-1)
    actual = _channel_means(X_train).reshape(-1)
    if stored.shape != actual.shape:
        return None
    if np.all(np.abs(stored - actual) <= 0.05 * std):
        return None
    return (f"the set's stored training-data mean {np.round(stored, 3).tolist()} differs from "
            f"{dataset}'s {np.round(actual, 3).tolist()}: was it made from another dataset or "
            "another scale?")


def _resolve_dataset(args, syn) -> None:
    """``--dataset`` defaults to the one the set records (digits where it records none)."""
    from .datasets import DATASET_NAMES

    if args.dataset is None:
        recorded = _dataset_name(syn.dataset) if syn.dataset else "digits"
        if recorded not in DATASET_NAMES:
            raise _UsageError(f"{args.set} was made from {syn.dataset!r}, which is not a dataset this "
                              f"command loads ({', '.join(DATASET_NAMES)}): give --dataset "
                              f"(see '{PROG} evaluate --help')")
        args.dataset = recorded


def _other_dataset(syn, dataset: str) -> str | None:
    """The dataset the set records when it is not ``dataset``, else None."""
    return syn.dataset if syn.dataset and _dataset_name(syn.dataset) != dataset else None


def _made_from(syn, dataset: str) -> str:
    other = _other_dataset(syn, dataset)
    return f"it was made from another dataset ({other})" if other else "was it made from another dataset?"


_RELEASED_NAME = re.compile(r"^(?P<dataset>[A-Za-z0-9_-]+)/ipc(?P<ipc>[0-9]+)-(?P<method>[A-Za-z0-9_+-]+)$")


def _set_argument(text: Path):
    """SET as given: ``(file, released)``, the file to load and, when SET names a released set
    (``<dataset>/ipc<k>-<method>``, see :func:`gradmatch.datasets.list_condensed`) rather than an
    existing path, its ``(dataset, ipc, method)`` as released, else None."""
    from .datasets import _released_name, list_condensed, load_condensed

    if text.exists():
        return text, None
    match = _RELEASED_NAME.match(text.as_posix())
    if match is None:
        try:
            shipped = ", ".join(_released_name(*t) for t in list_condensed())
        except OSError:  # an installation without the package data
            shipped = "none in this installation"
        raise _CommandError(f"no gradmatch set at {text}: the file does not exist, and it is not a released "
                            f"set's name (<dataset>/ipc<k>-<method>: {shipped})")
    _, _, info = load_condensed(match["dataset"], int(match["ipc"]), match["method"])
    return Path(info["path"]), (info["dataset"], info["ipc"], info["method"])


def _load_set_argument(file: Path, released):
    """Load what :func:`_set_argument` resolved; a released set always names its dataset."""
    import dataclasses

    from .io import load_set

    syn = load_set(file)
    if released is not None and syn.dataset is None:
        # Sets saved before save_set recorded the dataset: the release knows it.
        syn = dataclasses.replace(syn, dataset=released[0])
    return syn


def _evaluate(args) -> int:
    from .evaluation import evaluate_set
    from .runtime import resolve_device
    from .training import idc_recipe

    file, released = _set_argument(args.set)
    if args.json is not None:
        _check_output(args.json, "--json", inputs=[file])
    syn = _load_set_argument(file, released)
    _resolve_dataset(args, syn)
    (X_train, y_train), (X_test, y_test) = _load_dataset(args)
    X_set = _match_set_to_dataset(syn, X_train, y_train, X_test, args.dataset)
    normalization = syn.normalization
    if normalization is None:
        raise _CommandError(f"{args.set} stores no normalization statistics of its training data, "
                            "which evaluation needs")
    other = _other_dataset(syn, args.dataset)
    if other:
        print(f"{PROG}: warning: {args.set} was made from {other}; scoring it on {args.dataset}'s "
              "test split as asked", file=sys.stderr)
    warning = _normalization_warning(syn, X_train, args.dataset)
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    model = args.model if args.model != "auto" else ("convnet" if X_set.ndim > 2 else "mlp")
    epochs = args.epochs if args.epochs is not None else 1000 if args.recipe == "idc" else 300
    recipe = idc_recipe(epochs) if args.recipe == "idc" else None
    start = time.perf_counter()
    result = evaluate_set(X_set, syn.y, X_test, y_test, normalization=normalization, model=model,
                          n_models=args.models, epochs=epochs, recipe=recipe, augment=args.augment,
                          mix=args.mix, random_state=args.seed, device=args.device, n_jobs=args.jobs)
    seconds = time.perf_counter() - start
    ipc = len(syn.y) / max(1, len(syn.classes))
    ipc_text = f"{ipc:g}"
    print(f"{args.set} ({syn.method}, {len(syn.y)} images, {ipc_text} per class) on the {len(X_test)} "
          f"{args.dataset} test images: {result} [{model}, {_plural(epochs, 'epoch')}, {args.recipe.upper()}'s "
          f"recipe{' + ' + args.mix if args.mix else ''}, {seconds:.1f} s]")
    if args.json is not None:
        record = {
            "set": str(args.set), "method": syn.method, "set_version": syn.version,
            "set_dataset": syn.dataset, "dataset": args.dataset,
            "data_dir": None if args.data_dir is None else str(args.data_dir),
            "n_test": int(len(X_test)), "n_images": int(len(syn.y)), "n_classes": int(len(syn.classes)),
            "model": model, "epochs": epochs, "recipe": args.recipe, "mix": args.mix, "augment": args.augment,
            "n_models": args.models,
            "seed": args.seed,
            "device": str(resolve_device(args.device)), "accuracies": result.accuracies, "mean": result.mean,
            "std": result.std, "n": len(result.accuracies), "seconds": seconds, "version": __version__,
        }
        write_text_atomic(args.json, json.dumps(record, indent=2) + "\n")
    return 0


# ----------------------------------------------------------------------------- show
def _show(args) -> int:
    from .plotting import plot_image_grid

    file, released = _set_argument(args.set)
    if args.out is not None:
        out = args.out
    elif released is not None:
        # Never into the installed package: the working directory.
        dataset, ipc, method = released
        out = Path.cwd() / f"{dataset}-ipc{ipc}-{method}.png"
    else:
        out = args.set.with_suffix(".png")
    _check_output(out, "--out", inputs=[file])
    syn = _load_set_argument(file, released)
    X = np.asarray(syn.X)
    image_shape = tuple(syn.input_shape) if X.ndim == 2 and syn.input_shape is not None else None
    per_class = len(syn.y) / max(1, len(syn.classes))
    source = f" of {syn.dataset}" if syn.dataset else ""
    method = syn.method if released is None else f"{released[2]} ({syn.method})"
    title = args.title if args.title is not None else f"{method}: {per_class:g} per class{source}"
    fig = plot_image_grid(X, syn.y, image_shape=image_shape, classes=syn.classes, title=title, path=out)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"drew {len(syn.y)} images ({len(syn.classes)} classes) of {args.set} to {out}")
    return 0


# ----------------------------------------------------------------------------- main
def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        return _fail(_one_line(err), 2)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if args.command is None:
        return _fail(f"choose a command: condense, evaluate or show (see '{PROG} --help')", 2)
    try:
        with memory.keep_freed_memory(enabled=getattr(args, "keep_freed_memory", False)):
            return args.run(args)
    except KeyboardInterrupt:
        if _debug():
            traceback.print_exc()
        note = ""
        if args.command == "condense" and getattr(args, "checkpoint", None) is not None \
                and args.method in _LEARNED:
            note = (f"; the last whole iteration is checkpointed in {args.checkpoint}, and the same "
                    "command resumes from it")
        print(f"{PROG}: interrupted{note}", file=sys.stderr)
        return 130
    except _UsageError as err:
        return _fail(_one_line(err), 2)
    except Exception as err:
        if _debug():
            traceback.print_exc()
        line = _error_line(err)
        if not isinstance(err, _EXPECTED) and not _debug():
            line += f" (set {DEBUG_ENV}=1 for the traceback)"
        return _fail(line, 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

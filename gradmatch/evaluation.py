"""Scoring a small training set the way the literature does (docs/design.md section 3).

Fresh networks are trained from scratch on the (synthetic or selected) set
with DC's recipe (or another :class:`~gradmatch.training.TrainRecipe`, such
as IDC's: :func:`~gradmatch.training.idc_recipe`) and tested on a real test
set; the set is normalised with the statistics of the real training data that
travel with it, never recomputed from the small set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.base import clone

from .augment import make_augment
from .classifier import NetworkClassifier
from .data import Normalization
from .memory import freed_memory_is_kept, keep_freed_memory
from .networks import BUILTIN_MODELS, get_model_builder
from .runtime import resolve_device
from .training import MIXES, TrainRecipe
from .validation import check_positive_int, prepare_images

__all__ = ["EvaluationResult", "ProtocolResult", "evaluate_set", "evaluate_reducer"]


@dataclass
class EvaluationResult:
    """Accuracies of networks trained on one set; ``mean`` and ``std`` pool them all."""

    accuracies: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} +- {100 * self.std:.1f} % (n={len(self.accuracies)})"


def _labels(y) -> np.ndarray:
    return y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def _train_and_score(params: dict, X_set, y_set, X_test, y_test, threads: int | None,
                     keep_memory: bool = False) -> float:
    if threads is not None:
        torch.set_num_threads(threads)
    # A worker process follows the caller's keep_freed_memory block, if any.
    with keep_freed_memory(enabled=keep_memory):
        clf = NetworkClassifier(**params).fit(X_set, y_set)
        return float(np.mean(clf.predict(X_test) == _labels(y_test)))


def _portable_model(model):
    """``model`` as worker processes can rebuild it: a network registered in this process by
    :func:`gradmatch.networks.register_model` as its builder (a fresh process's registry
    has only the built-in names), anything else unchanged."""
    if isinstance(model, str) and model != "auto" and model not in BUILTIN_MODELS:
        return get_model_builder(model)
    return model


def evaluate_set(X_set, y_set, X_test, y_test, *, normalization: dict | Normalization,
                 model="auto", input_shape=None, n_models: int = 5, epochs: int = 300,
                 recipe: TrainRecipe | None = None, augment=None, mix: str | None = None,
                 random_state: int = 0, device="auto", n_jobs: int | None = 1) -> EvaluationResult:
    """Train ``n_models`` fresh networks on ``(X_set, y_set)`` and score them on the test set.

    Parameters
    ----------
    X_set, y_set : array-like
        The small training set, in the same layout and scale as ``X_test``.
    X_test, y_test : array-like
        Real test data.
    normalization : dict or Normalization
        ``{"mean": [...], "std": [...]}`` of the real training data, e.g. a
        condenser's ``normalization_``.
    model : {"auto", "convnet", "mlp"} or callable, default="auto"
    input_shape : tuple (C, H, W), default=None
        Treat flat inputs as images.
    n_models : int, default=5
        Networks to train, each from its own seed.
    epochs : int, default=300
        Training epochs, at least 1 (DC's recipe: lr 0.01, momentum 0.9, wd 5e-4, batch 256,
        lr x0.1 at half); ignored when ``recipe`` is given.
    recipe : TrainRecipe, optional
        A full training recipe instead of DC's with ``epochs``; IDC's published
        figures use :func:`gradmatch.training.idc_recipe` (batch 64, 1000
        epochs, lr x0.2 at 2/3 and 5/6, DSA without cutout, CutMix with
        probability 0.5).
    augment : None, "dsa", str or gradmatch.augment.DSA, default=None
        Augment every training batch (DSA's protocol: ``augment="dsa"`` with
        ``epochs=1000``); a ``recipe``'s own ``augment`` is used when this is None.
    mix : {"cutmix"} or None, default=None
        ``"cutmix"`` mixes the augmented batches by CutMix
        (:func:`gradmatch.training.cutmix`) with the recipe's ``mix_prob`` and
        ``mix_beta`` (0.5 and 1.0 unless ``recipe`` says otherwise), the rest
        of the recipe unchanged: with DC's recipe it is DC's numbers plus
        CutMix, not IDC's recipe (which also changes the batch, the epochs,
        the schedule and the augmentation). A ``recipe``'s own ``mix`` is used
        when this is None, so DC's recipe trains without mixing.
    random_state : int, default=0
        Seeds of the networks are ``random_state + i``.
    device : str, default="auto"
    n_jobs : int or None, default=1
        Parallel CPU processes (joblib); each uses one torch thread, and each
        keeps freed memory when the call runs inside
        :func:`gradmatch.memory.keep_freed_memory`. On a GPU models run one
        after another in this process.

    Returns
    -------
    EvaluationResult
    """
    if isinstance(normalization, Normalization):
        normalization = normalization.as_dict()
    # Fail before any training when the set and the test data do not match.
    set_layout = prepare_images(X_set, input_shape)[1]
    test_layout = prepare_images(X_test, input_shape)[1]
    if set_layout.sample_shape != test_layout.sample_shape:
        raise ValueError(
            f"the set has samples of shape {set_layout.sample_shape} but the test set "
            f"{test_layout.sample_shape}"
        )
    y_set_np, y_test_np = _labels(y_set), _labels(y_test)
    missing = np.setdiff1d(np.unique(y_test_np), np.unique(y_set_np))
    if len(missing):
        raise ValueError(f"test labels {missing.tolist()!r} do not occur in the training set")
    if mix is not None and mix not in MIXES:
        raise ValueError(f"mix must be None or one of {MIXES}, got {mix!r}")
    # Zero epochs would score untrained networks, not the set.
    recipe = recipe or TrainRecipe(epochs=check_positive_int(epochs, "epochs"))
    check_positive_int(recipe.epochs, "recipe.epochs")
    if mix is not None:
        recipe = replace(recipe, mix=mix)
    augment = make_augment(augment) if augment is not None else recipe.augment
    device = resolve_device(device)
    base = dict(model=model, epochs=recipe.epochs, lr=recipe.lr, momentum=recipe.momentum,
                weight_decay=recipe.weight_decay, batch_size=recipe.batch_size, augment=augment,
                lr_schedule=(recipe.lr_steps, recipe.lr_decay), mix=recipe.mix,
                mix_prob=recipe.mix_prob, mix_beta=recipe.mix_beta,
                normalization=normalization, input_shape=input_shape)
    seeds = [int(random_state) + i for i in range(check_positive_int(n_models, "n_models"))]
    if device.type == "cpu" and n_jobs not in (None, 1):
        base["model"] = _portable_model(model)
        # One torch thread per process: small networks do not gain from more.
        accs = Parallel(n_jobs=n_jobs)(
            delayed(_train_and_score)({**base, "device": "cpu", "random_state": seed},
                                      X_set, y_set, X_test, y_test, 1, freed_memory_is_kept())
            for seed in seeds
        )
    else:
        accs = [_train_and_score({**base, "device": str(device), "random_state": seed},
                                 X_set, y_set, X_test, y_test, None) for seed in seeds]
    return EvaluationResult([float(a) for a in accs])


@dataclass
class ProtocolResult(EvaluationResult):
    """Pooled accuracies of ``n_repeats`` sets x ``n_models`` networks.

    Attributes
    ----------
    per_set : list of list of float
        Accuracies of the networks trained on each set.
    fit_seconds : list of float
        Time to condense or select each set.
    """

    per_set: list[list[float]] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)


def evaluate_reducer(reducer, X, y, X_test, y_test, *, n_repeats: int = 2, n_models: int = 5,
                     epochs: int = 300, model="auto", augment=None, mix: str | None = None,
                     random_state: int = 0, device="auto", n_jobs: int | None = 1,
                     callback=None) -> ProtocolResult:
    """The evaluation protocol: ``n_repeats`` sets from ``reducer``, ``n_models`` networks on each.

    Each repeat fits a clone of ``reducer`` with ``random_state + 1000 * r`` (when
    it has a ``random_state``), then scores its set with :func:`evaluate_set`
    using the set's ``normalization_`` (the real data's statistics). The paper
    uses 2 sets x 50 networks.

    Parameters
    ----------
    reducer : GradientMatchingCondenser, Herding or RandomCoreset
        Unfitted; it is cloned.
    X, y : array-like
        Real training data.
    X_test, y_test : array-like
        Real test data.
    n_repeats : int, default=2
        Sets to condense or select, each with its own seed.
    n_models : int, default=5
        Networks trained on each set.
    epochs : int, default=300
        Training epochs of each network, at least 1 (DC's recipe).
    model : str or callable, default="auto"
        The evaluation network, which may differ from the one used to
        condense (cross-architecture evaluation).
    augment : None, "dsa", str or gradmatch.augment.DSA, default=None
        Augmentation of the evaluation networks' batches (see :func:`evaluate_set`).
    mix : {"cutmix"} or None, default=None
        CutMix of those batches (see :func:`evaluate_set`).
    random_state : int, default=0
        Base seed: repeat ``r`` uses ``random_state + 1000 * r``.
    device : str, default="auto"
    n_jobs : int or None, default=1
        Parallel CPU processes for the networks of a set.
    callback : callable, optional
        ``callback(r, accuracies, fit_seconds)`` after each set.

    Returns
    -------
    ProtocolResult

    Examples
    --------
    >>> from gradmatch import RandomCoreset
    >>> from gradmatch.datasets import load_digits_images
    >>> (X, y), (X_test, y_test) = load_digits_images()
    >>> res = evaluate_reducer(RandomCoreset(ipc=1), X, y, X_test, y_test,
    ...                        n_repeats=2, n_models=1, epochs=2)
    >>> len(res.per_set), len(res.accuracies)
    (2, 2)
    """
    # The evaluation's own arguments are checked before the first (long) fit.
    check_positive_int(n_models, "n_models")
    check_positive_int(epochs, "epochs")
    if mix is not None and mix not in MIXES:
        raise ValueError(f"mix must be None or one of {MIXES}, got {mix!r}")
    result = ProtocolResult()
    for r in range(check_positive_int(n_repeats, "n_repeats")):
        seed = int(random_state) + 1000 * r
        est = clone(reducer)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        start = time.perf_counter()
        X_set, y_set = est.fit_resample(X, y)
        seconds = time.perf_counter() - start
        res = evaluate_set(X_set, y_set, X_test, y_test, normalization=est.normalization_,
                           model=model, input_shape=getattr(est, "input_shape", None),
                           n_models=n_models, epochs=epochs, augment=augment, mix=mix,
                           random_state=seed, device=device, n_jobs=n_jobs)
        result.per_set.append(res.accuracies)
        result.accuracies.extend(res.accuracies)
        result.fit_seconds.append(seconds)
        if callback is not None:
            callback(r, res.accuracies, seconds)
    return result

"""Scoring a small training set the way the literature does (DESIGN.md section 3).

Fresh networks are trained from scratch on the (synthetic or selected) set
with DC's recipe and tested on a real test set; the set is normalised with the
statistics of the real training data that travel with it, never recomputed
from the small set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from joblib import Parallel, delayed

from ._runtime import isolated_rng, make_generator, resolve_device
from .data import Normalization
from .networks import build_model
from .training import TrainRecipe, predict_logits, train_network
from .validation import prepare_training_data

__all__ = ["EvaluationResult", "evaluate_set"]


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


def _train_and_score(model, shape, n_classes, X_train, y_train, X_test, y_test, norm, recipe,
                     seed, device, threads):
    if threads is not None:
        torch.set_num_threads(threads)
    device = torch.device(device)
    mean, std = norm.tensors(device, X_train.dim())
    with isolated_rng(seed, device):
        generator = make_generator(seed, device)
        net = build_model(model, shape, n_classes).to(device)
        train_network(net, X_train.to(device), y_train.to(device), recipe, generator, mean, std)
        correct = 0
        for start in range(0, X_test.shape[0], 2048):
            xb = X_test[start : start + 2048].to(device)
            pred = predict_logits(net, xb, mean, std).argmax(dim=1).cpu()
            correct += int((pred == y_test[start : start + 2048]).sum())
    return correct / X_test.shape[0]


def evaluate_set(X_set, y_set, X_test, y_test, *, normalization: dict | Normalization,
                 model="auto", input_shape=None, n_models: int = 5, epochs: int = 300,
                 recipe: TrainRecipe | None = None, random_state: int = 0, device="auto",
                 n_jobs: int | None = 1) -> EvaluationResult:
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
        Training epochs (DC's recipe: lr 0.01, momentum 0.9, wd 5e-4, batch 256,
        lr x0.1 at half); ignored when ``recipe`` is given.
    random_state : int, default=0
        Seeds of the networks are ``random_state + i``.
    device : str, default="auto"
    n_jobs : int or None, default=1
        Parallel CPU processes (joblib); each uses one torch thread. On a GPU
        models run one after another in this process.

    Returns
    -------
    EvaluationResult
    """
    from .condenser import resolve_model

    train = prepare_training_data(X_set, y_set, input_shape)
    test = prepare_training_data(X_test, y_test, input_shape)
    if train.layout.sample_shape != test.layout.sample_shape:
        raise ValueError(
            f"the set has samples of shape {train.layout.sample_shape} but the test set "
            f"{test.layout.sample_shape}"
        )
    classes = train.classes
    missing = np.setdiff1d(test.classes, classes)
    if len(missing):
        raise ValueError(f"test labels {missing.tolist()!r} do not occur in the training set")
    test_codes = torch.from_numpy(np.searchsorted(classes, test.classes)[test.labels.numpy()])
    if isinstance(normalization, dict):
        normalization = Normalization(tuple(normalization["mean"]), tuple(normalization["std"]))
    recipe = recipe or TrainRecipe(epochs=int(epochs))
    device = resolve_device(device)
    model = resolve_model(model, train.layout.image_shape)
    shape = train.layout.internal_shape
    args = (model, shape, len(classes), train.images, train.labels, test.images, test_codes,
            normalization, recipe)
    seeds = [int(random_state) + i for i in range(int(n_models))]
    if device.type == "cpu" and n_jobs not in (None, 1):
        accs = Parallel(n_jobs=n_jobs)(
            delayed(_train_and_score)(*args, seed, "cpu", 1) for seed in seeds
        )
    else:
        accs = [_train_and_score(*args, seed, str(device), None) for seed in seeds]
    return EvaluationResult([float(a) for a in accs])

"""Coreset selectors: RandomCoreset and Herding, with the condenser's interface."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._base import BaseReducer
from .herding import herding_order
from .networks import build_model, check_network_fits
from .parameters import Count, MeanStd, ModelName, StrOptions
from .resolve import resolve_model, resolve_normalization
from .runtime import isolated_rng, make_generator, resolve_device, seed_from
from .training import TrainRecipe, embed, predict_logits, train_network
from .validation import PreparedData

__all__ = ["RandomCoreset", "Herding", "HERDING_FEATURES", "AUTO_FEATURE_STEPS", "feature_epochs"]

#: Valid string values of Herding's ``features`` parameter.
HERDING_FEATURES = ("network", "pixels")

#: SGD steps that ``feature_epochs="auto"`` trains Herding's feature network for, at least.
AUTO_FEATURE_STEPS = 200


def feature_epochs(setting, n_samples: int, batch_size: int = 256) -> int:
    """Epochs for Herding's feature network: ``setting``, or the ``"auto"`` rule.

    Examples
    --------
    >>> feature_epochs("auto", 1797)     # digits: 8 batches per epoch
    25
    >>> feature_epochs("auto", 60000)    # Fashion-MNIST: 235 batches per epoch
    1
    >>> feature_epochs(3, 60000)
    3
    """
    if setting != "auto":
        return int(setting)
    batches = math.ceil(n_samples / batch_size)
    return max(1, math.ceil(AUTO_FEATURE_STEPS / batches))


def _random_pick(rng: np.random.Generator, ipc: np.ndarray, rows: np.ndarray, c: int) -> np.ndarray:
    """``ipc[c]`` distinct positions among a class's rows, drawn from ``rng``."""
    return rng.choice(len(rows), size=ipc[c], replace=False)


def _herding_pick(feats: torch.Tensor, ipc: np.ndarray, rows: np.ndarray, c: int) -> np.ndarray:
    """The first ``ipc[c]`` positions of a class's rows in herding order of their features."""
    return herding_order(feats[torch.from_numpy(rows)], int(ipc[c])).numpy()


class _Selector(BaseReducer):
    """A reducer whose output rows are rows of X, given by ``sample_indices_``."""

    def _select(self, data: PreparedData, plan: dict) -> tuple[np.ndarray, dict]:  # pragma: no cover
        """The selected rows, class by class, and any fitted attributes of the selection."""
        raise NotImplementedError

    def _check_params_vs_input(self, data: PreparedData, plan: dict) -> dict:
        plan = super()._check_params_vs_input(data, plan)
        # The real data's statistics travel with the selected set, as with a condensed one.
        return {**plan, "normalization": resolve_normalization(getattr(self, "normalization", "auto"), data)}

    def _fit_resample(self, data: PreparedData, plan: dict) -> dict:
        indices, extra = self._select(data, plan)
        indices = np.asarray(indices, dtype=np.int64)
        source = data.source_X
        if isinstance(source, torch.Tensor):
            rows = source[torch.from_numpy(indices).to(source.device)].cpu()
            rows = (rows.float() if rows.dtype == torch.bfloat16 else rows).numpy()
        else:
            rows = np.asarray(source)[indices]
        # numpy has no bfloat16: such (torch) input is cast back in transform().
        dtype = "float32" if data.layout.dtype == "bfloat16" else data.layout.dtype
        return {"normalization_": plan["normalization"].as_dict(), "sample_indices_": indices,
                "_syn_codes": data.labels.numpy()[indices], "X_syn_": rows.astype(dtype, copy=False),
                **extra}

    def _per_class(self, data: PreparedData, pick) -> np.ndarray:
        """Concatenate ``pick(class_rows, class_index)`` over classes, in class order.

        ``pick`` returns positions within ``class_rows``.
        """
        labels = data.labels.numpy()
        chosen = []
        for c in range(data.n_classes):
            rows = np.flatnonzero(labels == c)
            chosen.append(rows[np.asarray(pick(rows, c), dtype=np.int64)])
        return np.concatenate(chosen)


class RandomCoreset(_Selector):
    """Class-balanced random selection of ``ipc`` real samples per class.

    Parameters
    ----------
    ipc : int or dict, default=1
        Samples per class, or ``{class: count}`` for every class; every class
        must have at least that many.
    input_shape : tuple (C, H, W), default=None
        Treat flat X as images (only recorded; selection does not depend on it).
    random_state : int, RandomState or None, default=None
        Seeds the selection.

    Attributes
    ----------
    sample_indices_ : ndarray of int
        Rows of X selected, class by class (in ``classes_`` order).
    X_syn_, y_syn_ : ndarray
        The selected samples (integer input as float32) and their labels.
    normalization_ : dict
        Per-channel ``{"mean", "std"}`` of the real data, for evaluating the set.
    classes_ : ndarray
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import RandomCoreset
    >>> X, y = load_digits(return_X_y=True)
    >>> X_sel, y_sel = RandomCoreset(ipc=3, random_state=0).fit_resample(X, y)
    >>> X_sel.shape
    (30, 64)
    """

    _parameter_constraints: dict = {
        **BaseReducer._parameter_constraints,
        "random_state": ["random_state"],
    }

    def __init__(self, ipc=1, *, input_shape=None, random_state=None):
        self.ipc = ipc
        self.input_shape = input_shape
        self.random_state = random_state

    def _select(self, data: PreparedData, plan: dict) -> tuple[np.ndarray, dict]:
        pick = functools.partial(_random_pick, np.random.default_rng(seed_from(self.random_state)), plan["ipc"])
        return self._per_class(data, pick), {}


class Herding(_Selector):
    """Greedy herding: per class, samples whose running mean tracks the class mean.

    At each step the sample that brings the mean of the selected set closest
    to the class mean is added. By default this happens in the feature space
    of a network (DC's ConvNet for images, its MLP for flat features) trained
    on the data for ``feature_epochs`` epochs with DC's recipe, as the
    literature reports herding; ``features="pixels"`` herds on the normalised
    inputs themselves.

    Parameters
    ----------
    ipc : int or dict, default=1
        Samples per class, or ``{class: count}`` for every class; every class
        must have at least that many.
    features : {"network", "pixels"} or callable, default="network"
        Where to herd. A callable gets normalised float32 images
        ``(n, C, H, W)`` (or ``(n, d)``) and returns ``(n, k)`` features.
    feature_epochs : int or "auto", default="auto"
        Epochs of training of the feature network (DC's recipe: SGD, lr 0.01,
        momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half).
        ``"auto"`` trains for at least :data:`AUTO_FEATURE_STEPS` (200) SGD
        steps and at least one epoch: 25 epochs on scikit-learn digits (the
        ConvNet reaches about 99% training accuracy), one epoch on
        Fashion-MNIST (88% training accuracy, measured with seed 0; about 10
        minutes on 2 CPU cores). ``feature_train_accuracy_`` reports the
        figure reached.
    model : {"auto", "convnet", "mlp"} or callable, default="auto"
        The feature network; it must have an ``embed`` method.
    input_shape : tuple (C, H, W), default=None
        Treat flat X as images.
    normalization : "auto", None or (mean, std), default="auto"
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
        Seeds the feature network's initialisation and batches.
    verbose : int, default=0
        ``> 0`` shows a progress bar while the feature network trains.

    Attributes
    ----------
    sample_indices_ : ndarray of int
        Rows of X selected, class by class, each class in herding order.
    X_syn_, y_syn_ : ndarray
        The selected samples (integer input as float32) and their labels.
    feature_train_accuracy_ : float or None
        Training accuracy of the feature network (None for pixel herding).
    feature_epochs_ : int
        Epochs the feature network was trained for (network features only).
    normalization_ : dict
        Per-channel ``{"mean", "std"}`` of the real data, for evaluating the set.
    classes_ : ndarray
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import Herding
    >>> X, y = load_digits(return_X_y=True)
    >>> herd = Herding(ipc=2, features="pixels").fit(X, y)
    >>> herd.sample_indices_.shape
    (20,)
    """

    def __init__(self, ipc=1, *, features="network", feature_epochs="auto", model="auto",
                 input_shape=None, normalization="auto", device="auto", random_state=None,
                 verbose=0):
        self.ipc = ipc
        self.features = features
        self.feature_epochs = feature_epochs
        self.model = model
        self.input_shape = input_shape
        self.normalization = normalization
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    _parameter_constraints: dict = {
        **BaseReducer._parameter_constraints,
        "features": [StrOptions(set(HERDING_FEATURES)), callable],
        "feature_epochs": [Count(0), StrOptions({"auto"})],
        "model": [ModelName(), callable],
        "normalization": [StrOptions({"auto"}), None, MeanStd()],
        "device": [str, torch.device, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def _resolve_settings(self) -> dict:
        return {"device": resolve_device(self.device)}

    def _feature_matrix(self, data: PreparedData, plan: dict) -> tuple[torch.Tensor, dict]:
        """Features to herd on, and the fitted attributes that describe them."""
        device = plan["device"]
        mean, std = plan["normalization"].tensors(device, data.images.dim())
        images = data.images.to(device)
        if callable(self.features):
            feats = torch.as_tensor(self.features((images.to(torch.float32) - mean) / std))
            if feats.dim() != 2 or feats.shape[0] != images.shape[0]:
                raise ValueError(
                    f"features callable returned shape {tuple(feats.shape)}, expected ({images.shape[0]}, k)"
                )
            return feats.reshape(feats.shape[0], -1), {"feature_train_accuracy_": None}
        if self.features == "pixels":
            return (((images.to(torch.float32) - mean) / std).reshape(images.shape[0], -1),
                    {"feature_train_accuracy_": None})
        return self._network_features(data, images, mean, std, device)

    def _network_features(self, data: PreparedData, images, mean, std, device) -> tuple[torch.Tensor, dict]:
        model = resolve_model(self.model, data.layout.image_shape)
        labels = data.labels.to(device)
        seed = seed_from(self.random_state)
        with isolated_rng(seed, device):
            generator = make_generator(seed, device)
            net = build_model(model, data.layout.internal_shape, data.n_classes).to(device)
            check_network_fits(net, (images[:2].to(torch.float32) - mean) / std, data.n_classes)
            recipe = TrainRecipe(epochs=feature_epochs(self.feature_epochs, images.shape[0]))
            train_network(net, images, labels, recipe, generator, mean, std,
                          progress=self.verbose > 0, desc="herding features")
            pred = predict_logits(net, images, mean, std).argmax(dim=1)
            accuracy = float((pred == labels).float().mean())
            return (embed(net, images, mean, std),
                    {"feature_train_accuracy_": accuracy, "feature_epochs_": recipe.epochs})

    def _select(self, data: PreparedData, plan: dict) -> tuple[np.ndarray, dict]:
        ipc = plan["ipc"]
        feats, extra = self._feature_matrix(data, plan)
        feats = feats.detach().cpu()
        if not bool(torch.isfinite(feats).all()):
            raise ValueError("the herding features contain NaN or infinity")
        return self._per_class(data, functools.partial(_herding_pick, feats, ipc)), extra

"""NetworkClassifier: train one of the package's networks from scratch, scikit-learn style.

This is the building block of the evaluation protocol: "condense, then train"
is a condenser followed by a ``NetworkClassifier`` fitted on its output with
the real data's normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .augment import check_augment_input, make_augment
from .data import Normalization
from .networks import build_model, check_network_fits
from .parameters import (
    NON_NEGATIVE,
    POSITIVE,
    AugmentSpec,
    Count,
    ImageShape,
    MeanStd,
    ModelName,
    Number,
    StrOptions,
    _Rule,
)
from .resolve import resolve_model, resolve_normalization
from .runtime import isolated_rng, make_generator, resolve_device, seed_from
from .training import LR_SCHEDULES, MIXES, TrainRecipe, predict_logits, train_network
from .validation import prepare_images, prepare_training_data

__all__ = ["NetworkClassifier"]


class LrSchedule(_Rule):
    """A pair ``(fractions, factor)``: fractions of the epochs in ``[0, 1]`` and a positive decay factor."""

    def is_satisfied_by(self, val) -> bool:
        if not isinstance(val, (tuple, list)) or len(val) != 2 or not isinstance(val[0], (tuple, list)):
            return False
        steps, factor = val
        return all(Number(0, 1, closed="both").is_satisfied_by(f) for f in steps) and POSITIVE.is_satisfied_by(factor)

    def __str__(self) -> str:
        return "a pair (fractions of the epochs in [0, 1], positive decay factor), e.g. ((0.5,), 0.1)"


class NetworkClassifier(ClassifierMixin, BaseEstimator):
    """A network trained from scratch with DC's evaluation recipe, or IDC's.

    The defaults are DC's recipe (:class:`gradmatch.training.TrainRecipe`).
    IDC's (Kim et al., ICML 2022; :func:`gradmatch.training.idc_recipe`) is
    ``epochs=1000, batch_size=64, lr_schedule="idc",
    augment="color_crop_flip_scale_rotate", mix="cutmix"`` (no ``flip`` for
    MNIST or SVHN).

    Parameters
    ----------
    model : str or callable, default="auto"
        ``"auto"`` (ConvNet for images, MLP for flat features), any name of
        :data:`gradmatch.networks.MODELS`, or a factory
        ``(input_shape, n_classes) -> nn.Module``.
    epochs : int, default=300
        Training epochs.
    lr : float, default=0.01
    momentum : float, default=0.9
    weight_decay : float, default=5e-4
    batch_size : int, default=256
    augment : None, "dsa", str or gradmatch.augment.DSA, default=None
        Differentiable augmentation of every training batch, with fresh
        random parameters per image (DSA evaluates its sets this way, for
        1000 epochs). Accepts what the condenser's ``augment`` accepts.
        With ``mix="cutmix"`` leave ``cutout`` out of the strategy, as IDC does.
    lr_schedule : {"dc", "idc"} or (fractions, factor), default="dc"
        When the learning rate decays: ``"dc"`` multiplies it by 0.1 at half
        the epochs, ``"idc"`` by 0.2 at ``2 * epochs // 3`` and again at
        ``5 * epochs // 6``; a pair ``(fractions, factor)`` multiplies it by
        ``factor`` at ``floor(f * epochs)`` for each fraction ``f`` in
        ``[0, 1]`` (:func:`gradmatch.training.lr_milestones`).
    mix : {"cutmix"} or None, default=None
        ``"cutmix"`` mixes every augmented batch with probability ``mix_prob``
        by CutMix (:func:`gradmatch.training.cutmix`: a box of the image is
        pasted from another image of the batch and the loss weighs both
        labels by their pixel shares), as IDC trains its evaluation networks.
        Needs images.
    mix_prob : float, default=0.5
        Probability that a batch is mixed (IDC: 0.5 on MNIST, Fashion-MNIST,
        SVHN and CIFAR).
    mix_beta : float, default=1.0
        CutMix's box size: ``lam ~ Beta(mix_beta, mix_beta)`` and the box
        covers about ``1 - lam`` of the image.
    normalization : "auto", None, dict or (mean, std), default="auto"
        ``"auto"`` uses the statistics of the data given to ``fit``. To train on
        a synthetic or selected set, pass the real data's statistics, e.g. a
        condenser's ``normalization_`` dict.
    input_shape : tuple (C, H, W), default=None
        Treat flat X as images.
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
        Seeds the initialisation and the batches; the global RNG is untouched.
    verbose : int, default=0
        ``> 0`` shows a progress bar over epochs.

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    network_state_ : dict of ndarray
        The trained weights (numpy, so a fitted classifier pickles without torch modules).
    normalization_ : dict
        The statistics used.

    Examples
    --------
    >>> from gradmatch.datasets import load_digits_images
    >>> from gradmatch.classifier import NetworkClassifier
    >>> (X, y), (X_test, y_test) = load_digits_images()
    >>> clf = NetworkClassifier(epochs=3, random_state=0).fit(X, y)
    >>> clf.predict(X_test[:4]).shape
    (4,)
    """

    _parameter_constraints: dict = {
        "model": [ModelName(), callable],
        "epochs": [Count(0)],
        "lr": [POSITIVE],
        "momentum": [Number(0, 1, closed="left")],
        "weight_decay": [NON_NEGATIVE],
        "batch_size": [Count(1)],
        "augment": [AugmentSpec()],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES)), LrSchedule()],
        "mix": [StrOptions(set(MIXES)), None],
        "mix_prob": [Number(0, 1, closed="both")],
        "mix_beta": [POSITIVE],
        "normalization": [StrOptions({"auto"}), None, MeanStd(), Normalization],
        "input_shape": [ImageShape(), None],
        "device": [str, torch.device, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, model="auto", *, epochs=300, lr=0.01, momentum=0.9, weight_decay=5e-4,
                 batch_size=256, augment=None, lr_schedule="dc", mix=None, mix_prob=0.5, mix_beta=1.0,
                 normalization="auto", input_shape=None, device="auto", random_state=None, verbose=0):
        self.model = model
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.augment = augment
        self.lr_schedule = lr_schedule
        self.mix = mix
        self.mix_prob = mix_prob
        self.mix_beta = mix_beta
        self.normalization = normalization
        self.input_shape = input_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _recipe(self) -> TrainRecipe:
        steps, decay = (LR_SCHEDULES[self.lr_schedule] if isinstance(self.lr_schedule, str)
                        else self.lr_schedule)
        return TrainRecipe(epochs=self.epochs, lr=float(self.lr), momentum=float(self.momentum),
                           weight_decay=float(self.weight_decay), batch_size=self.batch_size,
                           augment=make_augment(self.augment), lr_steps=tuple(float(f) for f in steps),
                           lr_decay=float(decay), mix=self.mix, mix_prob=float(self.mix_prob),
                           mix_beta=float(self.mix_beta))

    def fit(self, X, y=None):
        """Train a fresh network on ``(X, y)``. Returns self."""
        self._validate_params()  # the declared constraints, before anything else
        recipe = self._recipe()
        device = resolve_device(self.device)
        _check_class_labels(y)
        data = prepare_training_data(X, y, self.input_shape)
        check_augment_input(recipe.augment, data.layout.image_shape is not None)
        if recipe.mix is not None and data.layout.image_shape is None:
            raise ValueError(f"mix={recipe.mix!r} needs images, but X is flat features: pass "
                             "input_shape=(C, H, W) or image-shaped X, or set mix=None")
        norm = resolve_normalization(self.normalization, data)
        model = resolve_model(self.model, data.layout.image_shape)
        shape = data.layout.internal_shape
        seed = seed_from(self.random_state)
        mean, std = norm.tensors(device, data.images.dim())
        with isolated_rng(seed, device):
            generator = make_generator(seed, device)
            net = build_model(model, shape, data.n_classes).to(device)
            images = data.images.to(device)
            check_network_fits(net, (images[:2].to(torch.float32) - mean) / std, data.n_classes)
            train_network(net, images, data.labels.to(device), recipe, generator, mean, std,
                          progress=self.verbose > 0, desc="training")
        self.classes_ = data.classes
        self.n_features_in_ = int(np.prod(data.layout.sample_shape))
        self.normalization_ = norm.as_dict()
        self.network_state_ = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        self._fit_layout = data.layout
        self._model_resolved = model
        self._net = net.eval()
        return self

    # ----------------------------------------------------------------- inference
    def _network(self, device: torch.device):
        net = getattr(self, "_net", None)
        if net is None:
            layout = self._fit_layout
            net = build_model(self._model_resolved, layout.internal_shape, len(self.classes_))
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.network_state_.items()})
            self._net = net
        return net.to(device).eval()

    def _images(self, X) -> torch.Tensor:
        images, layout = prepare_images(X, self.input_shape)
        if layout.sample_shape != self._fit_layout.sample_shape:
            raise ValueError(
                f"X has samples of shape {layout.sample_shape}; the classifier was fitted on "
                f"{self._fit_layout.sample_shape}"
            )
        return images

    def decision_function(self, X) -> np.ndarray:
        """Logits, ``(n, n_classes)``."""
        check_is_fitted(self, "network_state_")
        device = resolve_device(self.device)
        images = self._images(X).to(device)
        norm = Normalization(tuple(self.normalization_["mean"]), tuple(self.normalization_["std"]))
        mean, std = norm.tensors(device, images.dim())
        return predict_logits(self._network(device), images, mean, std).cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the logits), ``(n, n_classes)`` in ``classes_`` order."""
        logits = torch.from_numpy(self.decision_function(X))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """The most likely class of each sample, in the labels' own type."""
        scores = self.decision_function(X)  # checks that the classifier is fitted first
        return self.classes_[scores.argmax(axis=1)]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_net", None)  # weights travel as numpy in network_state_
        return state


def _check_class_labels(y) -> None:
    """Refuse a label matrix: a classifier predicts one class per sample, so it takes ``(n,)`` labels.

    (The reducers accept a one-vs-all matrix and give one back, as
    imbalanced-learn's samplers do; a classifier fitted on one would predict
    column numbers, silently not the caller's labels.)
    """
    shape = getattr(y, "shape", None)
    if shape is None and isinstance(y, (list, tuple)):
        try:
            shape = np.shape(y)
        except ValueError:  # ragged: left to the labels' own check
            return
    if shape is not None and len(shape) == 2 and shape[1] > 1:
        raise ValueError(f"NetworkClassifier takes y as class labels of shape (n_samples,), got a matrix "
                         f"with {shape[1]} columns; for a one-vs-all (one-hot) matrix pass "
                         "y.argmax(axis=1), or the labels it encodes")

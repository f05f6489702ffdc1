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
from .parameters import NON_NEGATIVE, POSITIVE, AugmentSpec, Count, ImageShape, MeanStd, ModelName, Number, StrOptions
from .resolve import resolve_model, resolve_normalization
from .runtime import isolated_rng, make_generator, resolve_device, seed_from
from .training import TrainRecipe, predict_logits, train_network
from .validation import prepare_images, prepare_training_data

__all__ = ["NetworkClassifier"]


class NetworkClassifier(ClassifierMixin, BaseEstimator):
    """A network trained from scratch with DC's evaluation recipe.

    Parameters
    ----------
    model : str or callable, default="auto"
        ``"auto"`` (ConvNet for images, MLP for flat features), any name of
        :data:`gradmatch.networks.MODELS`, or a factory
        ``(input_shape, n_classes) -> nn.Module``.
    epochs : int, default=300
        Training epochs; the learning rate drops x0.1 at half.
    lr : float, default=0.01
    momentum : float, default=0.9
    weight_decay : float, default=5e-4
    batch_size : int, default=256
    augment : None, "dsa", str or gradmatch.augment.DSA, default=None
        Differentiable augmentation of every training batch, with fresh
        random parameters per image (DSA evaluates its sets this way, for
        1000 epochs). Accepts what the condenser's ``augment`` accepts.
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
        "normalization": [StrOptions({"auto"}), None, MeanStd(), Normalization],
        "input_shape": [ImageShape(), None],
        "device": [str, torch.device, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, model="auto", *, epochs=300, lr=0.01, momentum=0.9, weight_decay=5e-4,
                 batch_size=256, augment=None, normalization="auto", input_shape=None, device="auto",
                 random_state=None, verbose=0):
        self.model = model
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.augment = augment
        self.normalization = normalization
        self.input_shape = input_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _recipe(self) -> TrainRecipe:
        return TrainRecipe(epochs=self.epochs, lr=float(self.lr), momentum=float(self.momentum),
                           weight_decay=float(self.weight_decay), batch_size=self.batch_size,
                           augment=make_augment(self.augment))

    def fit(self, X, y=None):
        """Train a fresh network on ``(X, y)``. Returns self."""
        self._validate_params()  # the declared constraints, before anything else
        recipe = self._recipe()
        device = resolve_device(self.device)
        data = prepare_training_data(X, y, self.input_shape)
        check_augment_input(recipe.augment, data.layout.image_shape is not None)
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
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_net", None)  # weights travel as numpy in network_state_
        return state

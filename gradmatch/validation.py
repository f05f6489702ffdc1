"""Input validation and output conversion shared by the estimators.

Everything a user can get wrong is caught here with a message that says what
was expected, before any tensor reaches a network.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import check_classification_targets, is_multilabel

__all__ = [
    "InputLayout",
    "PreparedData",
    "check_ipc",
    "ipc_per_class",
    "plain_label",
    "check_positive_int",
    "check_input_shape",
    "prepare_images",
    "prepare_training_data",
    "to_output_images",
    "to_output_labels",
    "warn_user",
]

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn, pointing at the first caller outside gradmatch (whatever the call depth).

    A fixed ``stacklevel`` is right for one entry point only (``fit`` but not
    ``fit_resample``, nor a pipeline); counting the package's own frames is
    right for all of them.
    """
    level = 1
    frame = inspect.currentframe()
    try:
        while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE_DIR):
            frame = frame.f_back
            level += 1
    finally:
        del frame
    warnings.warn(message, category, stacklevel=level)


@dataclass(frozen=True)
class InputLayout:
    """How the caller's X and y looked, so results come back the same way.

    Containers follow imbalanced-learn's samplers (its ``ArraysTransformer``):
    what came in as a Python list goes out as one (``.tolist()``), a pandas
    DataFrame or Series goes out as one with the same columns or name, numpy
    gives numpy and torch gives CPU torch. A one-vs-all y (an ``(n, k)``
    indicator matrix with one 1 per row) goes out as an ``(m, k)`` indicator
    matrix of its dtype.

    Attributes
    ----------
    sample_shape : tuple of int
        Shape of one row of X as given (``(d,)``, ``(H, W)`` or ``(C, H, W)``).
    image_shape : tuple of int or None
        ``(C, H, W)`` when X is treated as images, None for flat features.
    dtype : numpy dtype name
        Output dtype: the input's float dtype, or float32 for integer input.
    kind : {"numpy", "torch", "list", "dataframe"}
        X's container.
    label_kind : {"numpy", "torch", "list", "series", "dataframe"}
        y's container.
    label_columns : int or None
        ``k`` when y was a one-vs-all ``(n, k)`` indicator matrix (its classes
        are then the column indices), else None.
    label_dtype : numpy dtype name or None
        The one-vs-all matrix's dtype, for the matrix that goes out.
    frame : tuple or None
        X as a DataFrame: ``(columns, dtypes)``, both tuples.
    label_frame : tuple or None
        y as a Series: ``(name, dtype)``; as a DataFrame: ``(columns, dtypes)``.
    """

    sample_shape: tuple[int, ...]
    image_shape: tuple[int, int, int] | None
    dtype: str
    kind: str
    label_kind: str = "numpy"
    label_columns: int | None = None
    label_dtype: str | None = None
    frame: tuple | None = None
    label_frame: tuple | None = None

    @property
    def internal_shape(self) -> tuple[int, ...]:
        return self.image_shape if self.image_shape is not None else self.sample_shape


@dataclass
class PreparedData:
    """Validated training data: images as a tensor, labels encoded 0..C-1."""

    images: torch.Tensor  # (n, C, H, W) or (n, d), caller's dtype, a view where possible
    labels: torch.Tensor  # (n,) int64
    classes: np.ndarray
    layout: InputLayout
    source_X: object = None  # the validated array, for selectors that index it
    #: A streamed Dataset: then ``images`` holds only a seeded sample of it.
    dataset: object = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels.cpu().numpy(), minlength=self.n_classes)


# ----------------------------------------------------------------- parameters
def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_ipc(ipc) -> int | dict:
    """``ipc`` (images per class): an integer >= 1, or a non-empty ``{class: integer >= 1}``.

    Checks what can be checked without the data; :func:`ipc_per_class` matches
    a dict against the classes of ``y``.
    """
    if isinstance(ipc, Mapping):
        if len(ipc) == 0:
            raise ValueError("ipc is an empty dict: give {class: count} for every class of y, or an integer")
        return {label: check_positive_int(count, f"ipc[{plain_label(label)!r}]", 1)
                for label, count in ipc.items()}
    if not isinstance(ipc, numbers.Integral) or isinstance(ipc, bool):
        raise TypeError(f"ipc must be an integer >= 1, got {ipc!r} ({type(ipc).__name__}); "
                        "or a dict {class: count} naming every class")
    return check_positive_int(ipc, "ipc", 1)


def plain_label(label):
    """A numpy scalar as the Python value it holds, for readable messages and dict keys."""
    return label.item() if isinstance(label, np.generic) else label


def ipc_per_class(ipc, classes: np.ndarray) -> np.ndarray:
    """Images per class as an int64 array in ``classes`` order.

    A dict must name every class of ``y`` and no other label.

    Examples
    --------
    >>> ipc_per_class(2, np.array([0, 1, 2]))
    array([2, 2, 2])
    >>> ipc_per_class({"cat": 1, "dog": 3}, np.array(["cat", "dog"]))
    array([1, 3])
    """
    ipc = check_ipc(ipc)
    if not isinstance(ipc, dict):
        return np.full(len(classes), ipc, dtype=np.int64)
    known = {plain_label(c) for c in classes}
    given = {plain_label(k): v for k, v in ipc.items()}
    missing = [plain_label(c) for c in classes if plain_label(c) not in given]
    unknown = [k for k in given if k not in known]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"no count for class(es) {missing[:10]!r}")
        if unknown:
            parts.append(f"{unknown[:10]!r} are not classes of y")
        raise ValueError(
            f"ipc as a dict must give a count for every class of y and only those: {'; '.join(parts)}. "
            f"The classes are {[plain_label(c) for c in classes][:20]!r}."
        )
    return np.array([given[plain_label(c)] for c in classes], dtype=np.int64)


def check_input_shape(input_shape) -> tuple[int, int, int] | None:
    if input_shape is None:
        return None
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple (C, H, W), got {input_shape!r}") from None
    if len(shape) != 3 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in shape
    ):
        raise ValueError(f"input_shape must be three positive integers (C, H, W), got {input_shape!r}")
    return tuple(int(v) for v in shape)


# ----------------------------------------------------------------- labels
def _label_category(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (numbers.Number, np.number)):
        return "number"
    if isinstance(value, (str, np.str_, bytes)):
        return "string"
    return type(value).__name__


def _check_label_types(y) -> None:
    """Refuse labels that mix kinds (numbers and strings), which numpy would silently coerce."""
    if isinstance(y, np.ndarray) and y.dtype != object:
        return
    if isinstance(y, torch.Tensor):
        return
    values = y.ravel().tolist() if isinstance(y, np.ndarray) else list(y)
    kinds = {_label_category(v) for v in values}
    if len(kinds) > 1:
        raise TypeError(
            f"y mixes label types ({', '.join(sorted(kinds))}); use a single type for all labels"
        )


def pandas_kind(obj) -> str | None:
    """``"dataframe"`` or ``"series"`` for a pandas object, else None.

    pandas is optional: it is imported only for an object that comes from it.
    """
    if not type(obj).__module__.startswith("pandas"):
        return None
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - an object of pandas without pandas
        return None
    if isinstance(obj, pd.DataFrame):
        return "dataframe"
    if isinstance(obj, pd.Series):
        return "series"
    return None


def _container(obj) -> str:
    """The container kind of X or y, as imbalanced-learn tells them apart (a list is exactly ``list``)."""
    if isinstance(obj, torch.Tensor):
        return "torch"
    if type(obj) is list:
        return "list"
    return pandas_kind(obj) or "numpy"


def _frame_of(obj, kind: str) -> tuple | None:
    """What a DataFrame or Series needs to be rebuilt: ``(columns, dtypes)`` or ``(name, dtype)``."""
    if kind == "dataframe":
        return tuple(obj.columns), tuple(obj.dtypes)
    if kind == "series":
        return obj.name, obj.dtype
    return None


def _one_vs_all(y: np.ndarray) -> np.ndarray | None:
    """Labels ``argmax(axis=1)`` of a one-vs-all indicator matrix; None when y is not an indicator matrix.

    An indicator matrix whose rows do not all hold exactly one 1 is multilabel,
    which a sampler cannot read as classes: refused.
    """
    if y.ndim != 2 or y.shape[1] < 2 or y.dtype == object or not is_multilabel(y):
        return None
    ones = np.asarray(y != 0).sum(axis=1)
    bad = np.flatnonzero(ones != 1)
    if len(bad):
        raise ValueError(
            f"y is a label-indicator matrix of shape {y.shape} but row {int(bad[0])} holds "
            f"{int(ones[bad[0]])} ones ({len(bad)} of {len(y)} rows do not hold exactly one): multilabel "
            "and multioutput targets are not supported. Pass y as a 1d array of class labels, or as a "
            "one-vs-all matrix with exactly one 1 in every row"
        )
    return np.asarray(y).argmax(axis=1)


def _encode_labels(y, n_samples: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Classes, labels encoded 0..C-1, and how y looked (``InputLayout``'s label fields)."""
    label_kind = _container(y)
    info = {"label_kind": label_kind, "label_frame": _frame_of(y, label_kind)}
    if isinstance(y, torch.Tensor):
        if y.is_meta:
            raise ValueError("y lives on the meta device and holds no values")
        y = y.detach().cpu().numpy()
    elif label_kind in ("dataframe", "series"):
        y = y.to_numpy()
    elif not isinstance(y, np.ndarray):
        if hasattr(y, "__array__") and not hasattr(y, "__len__"):
            y = np.asarray(y)
        else:
            try:
                len(y)
            except TypeError:
                raise TypeError(f"y must be an array-like of labels, got {type(y).__name__}") from None
    _check_label_types(y)
    if isinstance(y, (list, tuple)) and len(y) and all(isinstance(v, (list, tuple, np.ndarray)) for v in y):
        y = np.asarray(y)  # rows of a matrix: one-vs-all, or refused below
    if isinstance(y, np.ndarray) and y.ndim == 2:
        labels = _one_vs_all(y)
        if labels is not None:
            info.update(label_columns=int(y.shape[1]), label_dtype=y.dtype.str)
            y = labels
    y = column_or_1d(np.asarray(y) if not isinstance(y, np.ndarray) else y, warn=True)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity")
    if y.dtype == object and any(v is None for v in y):
        raise ValueError("y contains None")
    check_classification_targets(y)
    classes, encoded = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"at least 2 classes are needed; y has {len(classes)} class ({classes.tolist()!r})"
        )
    return classes, encoded.astype(np.int64), info


# ----------------------------------------------------------------- images
def _dataset_length(dataset) -> int:
    try:
        n = len(dataset)
    except TypeError:
        raise TypeError("a Dataset passed as X must define __len__") from None
    if n == 0:
        raise ValueError("the Dataset passed as X is empty")
    return n


def read_item(dataset, i: int, n: int):
    """Item ``i`` of a Dataset of ``(image, label)`` pairs, checked: ``(image tensor, label)``."""
    try:
        item = dataset[i]
    except (IndexError, KeyError) as err:
        raise ValueError(
            f"the Dataset passed as X says it has {n} items but item {i} cannot be read: {err!r}"
        ) from None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(
            f"a Dataset passed as X must return (image, label) pairs; item {i} is "
            f"{type(item).__name__}"
            + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
        )
    image, label = item
    if any(isinstance(v, torch.Tensor) and v.is_meta for v in (image, label)):
        raise ValueError(f"Dataset item {i} holds a tensor on the meta device, which has no values")
    image = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if isinstance(label, torch.Tensor):
        if label.numel() != 1:
            raise ValueError(f"label of Dataset item {i} has shape {tuple(label.shape)}, expected a scalar")
        label = label.item()
    return image, label


def stack_items(dataset, indices, n: int) -> tuple[torch.Tensor, list]:
    """Read the given items and stack their images (which must share one shape)."""
    images, labels = [], []
    for i in indices:
        image, label = read_item(dataset, int(i), n)
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"Dataset item {i} has image shape {tuple(image.shape)}, another item has "
                f"{tuple(images[0].shape)}: all images must share one shape"
            )
        images.append(image)
        labels.append(label)
    return torch.stack(images), labels


def _materialise_dataset(dataset) -> tuple[torch.Tensor, list]:
    """Stack a torch Dataset of ``(image, label)`` pairs into memory."""
    n = _dataset_length(dataset)
    return stack_items(dataset, range(n), n)


#: ``in_memory="auto"`` materialises a Dataset up to this many bytes of images.
IN_MEMORY_BYTES = 4 * 2**30
#: Items read from a streamed Dataset to validate it and estimate its normalisation.
STREAM_SAMPLE = 10_000


def _dataset_labels(dataset, n: int) -> list:
    """All labels: from ``dataset.targets`` when it has them (torchvision), else one pass."""
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == n:
        values = targets.tolist() if hasattr(targets, "tolist") else list(targets)
        return values
    return [read_item(dataset, i, n)[1] for i in range(n)]


def _stream_dataset(dataset, input_shape) -> PreparedData:
    """Labels of every item and a seeded sample of images, leaving the images where they are."""
    n = _dataset_length(dataset)
    labels = _dataset_labels(dataset, n)
    rng = np.random.default_rng(0)
    rows = np.arange(n) if n <= STREAM_SAMPLE else np.sort(rng.choice(n, STREAM_SAMPLE, replace=False))
    sample, _ = stack_items(dataset, rows, n)
    tensor, _, _ = _as_tensor_images(sample)
    classes, encoded, info = _encode_labels(labels, n)
    # The labels were gathered here, not given: numbers come back as a tensor, others as numpy.
    info.update(label_kind="torch" if classes.dtype.kind in "iub" else "numpy", label_frame=None)
    tensor, sample_shape, image_shape = _shape_images(tensor, input_shape)
    dtype = str(tensor.dtype).replace("torch.", "") if tensor.is_floating_point() else "float32"
    layout = InputLayout(sample_shape, image_shape, dtype, "torch", **info)
    return PreparedData(tensor, torch.from_numpy(encoded), classes, layout, None, dataset=dataset)


def _wants_memory(dataset, in_memory) -> bool:
    if in_memory == "auto":
        n = _dataset_length(dataset)
        first = read_item(dataset, 0, n)[0]
        return n * first.element_size() * first.numel() <= IN_MEMORY_BYTES
    if isinstance(in_memory, (bool, np.bool_)):
        return bool(in_memory)
    raise ValueError(f"in_memory must be True, False or 'auto', got {in_memory!r}")


def _as_tensor_images(X) -> tuple[torch.Tensor, str, object]:
    """Validate X and return it as a tensor (a view where possible) and its kind."""
    if isinstance(X, torch.Tensor):
        if X.is_meta:
            raise ValueError("X lives on the meta device and holds no values")
        if X.is_sparse:
            raise TypeError("sparse tensors are not supported: pass a dense tensor")
        if X.is_complex() or not (X.is_floating_point() or X.dtype in _INT_DTYPES or X.dtype == torch.bool):
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        X = X.detach()
        if X.dtype == torch.bool:
            X = X.to(torch.uint8)
        if X.dim() < 2:
            raise ValueError("X must have 2 to 4 dimensions (n, d), (n, H, W) or (n, C, H, W); "
                             f"got shape {tuple(X.shape)}")
        if X.shape[0] == 0:
            raise ValueError("X is empty (0 samples)")
        if X.is_floating_point() and not bool(torch.isfinite(X).all()):
            raise ValueError("X contains NaN or infinity")
        _check_sample_size(tuple(X.shape))
        if X.is_floating_point() and X.numel() and float(X.abs().max()) > _FLOAT32_MAX:
            raise ValueError(_TOO_LARGE)
        if X.dtype == torch.float16 and X.numel():
            _check_float16_headroom(float(X.abs().max()))
        return X, "torch", X
    arr = check_array(
        X,
        accept_sparse=False,
        dtype="numeric",
        allow_nd=True,
        ensure_all_finite=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        input_name="X",
    )
    if arr.ndim > 4:
        raise ValueError(
            f"X must have 2 to 4 dimensions (n, d), (n, H, W) or (n, C, H, W); got shape {arr.shape}"
        )
    _check_sample_size(arr.shape)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f" and arr.size and float(np.abs(arr).max()) > _FLOAT32_MAX:
        raise ValueError(_TOO_LARGE)
    if arr.dtype == np.float16 and arr.size:
        _check_float16_headroom(float(np.abs(arr).max()))
    tensor = torch.from_numpy(np.ascontiguousarray(arr)) if arr.flags.writeable else torch.from_numpy(arr.copy())
    return tensor, "numpy", arr


#: float16 input may use at most this share of float16's range: the synthetic set
#: can leave the data's range, and it comes back in the input's dtype.
FLOAT16_HEADROOM = 8
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _check_float16_headroom(largest: float) -> None:
    if largest > _FLOAT16_MAX / FLOAT16_HEADROOM:
        raise ValueError(
            f"X is float16 with values up to {largest:g}, too close to float16's largest value "
            f"({_FLOAT16_MAX:g}) for the set, which can leave the data's range, to come back in float16 "
            f"(at most {_FLOAT16_MAX / FLOAT16_HEADROOM:g} is accepted): pass X as float32 "
            "(X.astype(np.float32)) or rescale it")


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_TOO_LARGE = ("X holds values beyond float32's range (|x| > 3.4e38), which the networks compute in; "
              "rescale the data")


def _check_sample_size(shape: tuple) -> None:
    if len(shape) >= 2 and int(np.prod(shape[1:])) == 0:
        raise ValueError(f"the samples of X hold no values (shape {shape}); each sample needs at least one")


#: Channel counts of channels-last images as PIL, TensorFlow and Keras give them.
_IMAGE_CHANNELS = (1, 3, 4)
#: A first axis at most this large can be a channel axis (grey, RGB, RGBA).
_MAX_CHANNELS = 4


def looks_channels_last(sample_shape: tuple) -> bool:
    """Whether one sample of 4-D X, ``sample_shape``, looks like ``(H, W, C)`` rather than ``(C, H, W)``.

    Its last axis holds 1, 3 or 4 values (grey, RGB, RGBA) while its first
    axis is too large for a channel axis. Channel-first images such as
    ``(3, 32, 32)`` or ``(1, 28, 28)`` never match.

    Examples
    --------
    >>> looks_channels_last((32, 32, 3)), looks_channels_last((8, 8, 1))
    (True, True)
    >>> looks_channels_last((3, 32, 32)), looks_channels_last((1, 28, 28)), looks_channels_last((4, 4, 4))
    (False, False, False)
    """
    return len(sample_shape) == 3 and sample_shape[-1] in _IMAGE_CHANNELS and sample_shape[0] > _MAX_CHANNELS


def channels_last_message(sample_shape: tuple) -> str:
    """What to do with X whose samples look channels-last (see :func:`looks_channels_last`)."""
    h, w, c = sample_shape
    return (
        f"X has samples of shape {sample_shape}, which looks channels-last (height, width, channels) "
        f"as PIL, TensorFlow and Keras give images: gradmatch reads 4-D X as channel-first "
        f"(n, C, H, W), so it would take these as {h}-channel {w}x{c} images. Pass "
        f"X.transpose(0, 3, 1, 2) (or np.moveaxis(X, -1, 1); for a torch tensor X.permute(0, 3, 1, 2)) "
        f"to give images of shape ({c}, {h}, {w}). If the samples really are {h}-channel {w}x{c} "
        f"images, say so with input_shape={sample_shape} (X as it is, or flat as X.reshape(len(X), -1))"
    )


def _shape_images(tensor: torch.Tensor, input_shape) -> tuple[torch.Tensor, tuple, tuple | None]:
    """Bring a validated X tensor to ``(n, C, H, W)`` (images) or ``(n, d)`` (flat)."""
    n = tensor.shape[0]
    sample_shape = tuple(int(v) for v in tensor.shape[1:])
    image_shape = None
    if tensor.dim() == 2:
        if input_shape is not None:
            if int(np.prod(input_shape)) != sample_shape[0]:
                raise ValueError(
                    f"input_shape={input_shape} holds {int(np.prod(input_shape))} values but X has "
                    f"{sample_shape[0]} features per row"
                )
            image_shape = input_shape
            tensor = tensor.reshape((n,) + input_shape)
    elif tensor.dim() == 3:
        image_shape = (1,) + sample_shape
        if input_shape is not None and input_shape != image_shape:
            raise ValueError(f"input_shape={input_shape} does not match grey images of shape {sample_shape} "
                             f"(expected {image_shape})")
        tensor = tensor.unsqueeze(1)
    elif tensor.dim() == 4:
        image_shape = sample_shape
        if input_shape is not None and input_shape != image_shape:
            raise ValueError(f"input_shape={input_shape} does not match images of shape {sample_shape}")
        if input_shape is None and looks_channels_last(sample_shape):
            raise ValueError(channels_last_message(sample_shape))
    else:
        raise ValueError(
            f"X must have 2 to 4 dimensions (n, d), (n, H, W) or (n, C, H, W); got shape {tuple(tensor.shape)}"
        )
    return tensor, sample_shape, image_shape


def prepare_images(X, input_shape=None) -> tuple[torch.Tensor, InputLayout]:
    """Validate X alone (for prediction) and bring it to the internal layout."""
    tensor, kind, _ = _as_tensor_images(X)
    tensor, sample_shape, image_shape = _shape_images(tensor, check_input_shape(input_shape))
    dtype = str(tensor.dtype).replace("torch.", "") if tensor.is_floating_point() else "float32"
    return tensor, InputLayout(sample_shape, image_shape, dtype, kind)


def prepare_training_data(X, y, input_shape=None, in_memory=True) -> PreparedData:
    """Validate ``(X, y)`` and bring X to ``(n, C, H, W)`` (images) or ``(n, d)`` (flat).

    Parameters
    ----------
    X : array-like, torch.Tensor or torch Dataset
        ``(n, d)`` flat features, ``(n, H, W)`` grey images or ``(n, C, H, W)``
        images; a Dataset yields ``(image, label)`` pairs and ``y`` must be None.
    y : array-like or None
        Class labels; or a one-vs-all ``(n, k)`` indicator matrix with exactly
        one 1 per row, read as the labels ``y.argmax(axis=1)`` (the classes
        are then column indices, and ``layout.label_columns`` is ``k``). An
        indicator matrix with other rows (multilabel) is refused.
    input_shape : tuple (C, H, W) or None
        Lets flat X be treated as images; must match X when X is not flat.
    in_memory : bool or "auto", default=True
        For a Dataset: stack it in memory (True), or leave it where it is and
        keep only its labels and a sample of images (False); "auto" stacks it
        when its images take at most :data:`IN_MEMORY_BYTES`.
    """
    input_shape = check_input_shape(input_shape)
    from_dataset = False
    if isinstance(X, torch.utils.data.Dataset) and not isinstance(X, torch.Tensor):
        if y is not None:
            raise ValueError("y must be None when X is a Dataset of (image, label) pairs")
        if not _wants_memory(X, in_memory):
            return _stream_dataset(X, input_shape)
        X, y = _materialise_dataset(X)
        from_dataset = True
    elif y is None:
        raise ValueError(
            "this estimator requires y to be passed, but the target y is None: pass labels, or a "
            "torch Dataset of (image, label) pairs as X"
        )
    x_kind = "torch" if from_dataset else _container(X)
    frame = _frame_of(X, x_kind)
    tensor, kind, source = _as_tensor_images(X)
    n = tensor.shape[0]
    classes, encoded, info = _encode_labels(y, n)
    if len(encoded) != n:
        raise ValueError(f"X and y have different lengths: X has {n} samples, y has {len(encoded)}")
    if from_dataset:
        # The labels were gathered here, not given: numbers come back as a tensor, others as numpy.
        info.update(label_kind="torch" if classes.dtype.kind in "iub" else "numpy", label_frame=None)
    tensor, sample_shape, image_shape = _shape_images(tensor, input_shape)
    # Float input keeps its dtype; integer (and bool) input gives float32.
    dtype = str(tensor.dtype).replace("torch.", "") if tensor.is_floating_point() else "float32"
    if kind == "numpy" and x_kind in ("list", "dataframe"):
        kind = x_kind
    layout = InputLayout(sample_shape, image_shape, dtype, kind, frame=frame, **info)
    return PreparedData(tensor, torch.from_numpy(encoded), classes, layout, source)


# ----------------------------------------------------------------- outputs
def to_output_images(normalized: torch.Tensor, layout: InputLayout, mean: np.ndarray,
                     std: np.ndarray) -> np.ndarray:
    """Undo normalisation and return images in the caller's layout and scale (numpy)."""
    x = normalized.detach().to("cpu", torch.float64).numpy()
    shape = (1, len(mean)) + (1,) * (x.ndim - 2)
    x = x * np.asarray(std).reshape(shape) + np.asarray(mean).reshape(shape)
    # numpy has no bfloat16: such (torch) input is cast back in wrap_output.
    dtype = "float32" if layout.dtype == "bfloat16" else layout.dtype
    with np.errstate(over="ignore"):
        out = x.reshape((x.shape[0],) + layout.sample_shape).astype(dtype)
    if not np.isfinite(out).all():
        raise ValueError(
            f"the synthetic set holds values up to {np.abs(x).max():g}, beyond what the input's dtype "
            f"({dtype}) holds: refit with X as float32")
    return out


def to_output_labels(encoded: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return classes[np.asarray(encoded, dtype=np.int64)]


def _indicator(labels: np.ndarray, columns: int, dtype: str) -> np.ndarray:
    """Column indices as an ``(m, columns)`` one-vs-all matrix of ``dtype``."""
    matrix = np.zeros((len(labels), columns), dtype=np.dtype(dtype))
    matrix[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)] = 1
    return matrix


def _as_frame(values: np.ndarray, frame: tuple, floats_only: bool):
    """A DataFrame with the input's columns; its dtypes where they fit the values.

    ``floats_only``: restore only float columns' dtypes, so that synthetic
    values of integer columns stay floats (integer input gives float32).
    """
    import pandas as pd

    columns, dtypes = frame
    out = pd.DataFrame(values.reshape(len(values), -1), columns=list(columns))
    wanted = [(i, d) for i, d in enumerate(dtypes)
              if not floats_only or getattr(getattr(d, "subtype", d), "kind", None) == "f"]
    for i, dtype in wanted:
        try:
            out.isetitem(i, out.iloc[:, i].astype(dtype))
        except (TypeError, ValueError):  # a dtype the values cannot take: keep the values' own
            pass
    return out


def _as_series(values: np.ndarray, frame: tuple):
    import pandas as pd

    name, dtype = frame
    try:
        return pd.Series(values, dtype=dtype, name=name)
    except (TypeError, ValueError):
        return pd.Series(values, name=name)


def wrap_output(X_out: np.ndarray, y_out: np.ndarray, layout: InputLayout):
    """The learned set in the caller's containers, as imbalanced-learn's samplers return theirs.

    numpy in gives numpy out; torch in gives CPU torch out; a list gives a list
    (``.tolist()``); a pandas DataFrame or Series gives one with the same
    columns or name (pandas is imported only then). A one-vs-all y gives an
    ``(m, k)`` indicator matrix of its dtype in its container.
    """
    if layout.label_columns is not None:
        y_out = _indicator(y_out, layout.label_columns, layout.label_dtype)
    if layout.kind == "torch":
        X_out = torch.from_numpy(np.ascontiguousarray(X_out)).to(getattr(torch, layout.dtype))
    elif layout.kind == "list":
        X_out = X_out.tolist()
    elif layout.kind == "dataframe":
        X_out = _as_frame(X_out, layout.frame, floats_only=True)
    if layout.label_kind == "torch" and y_out.dtype.kind in "iufb":
        y_out = torch.from_numpy(np.ascontiguousarray(y_out))
    elif layout.label_kind == "list":
        y_out = y_out.tolist()
    elif layout.label_kind == "series":
        y_out = _as_series(y_out, layout.label_frame)
    elif layout.label_kind == "dataframe":
        y_out = _as_frame(y_out, layout.label_frame, floats_only=False)
    if layout.kind == "dataframe" and layout.label_kind in ("series", "dataframe"):
        y_out.index = X_out.index
    return X_out, y_out

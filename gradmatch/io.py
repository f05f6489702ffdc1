"""Save a fitted estimator's synthetic (or selected) set to a portable ``.npz``, and load it back.

The file is a plain numpy ``.npz`` archive: every entry is a numeric or
unicode array, so it loads with ``np.load(path, allow_pickle=False)`` and
loading it never runs code. Metadata (the estimator's class name and
settings, the gradmatch version) travel as a JSON string.

Entries of format version 1 (and of version 2, which adds ``formation.factor``):

============================  ==================================================
``format``                    ``"gradmatch.synthetic-set"``
``format_version``            ``1``
``X``                         the set, as ``X_syn_`` (the input's layout and scale)
``y``                         its labels, as ``y_syn_`` (ints, strings, ...)
``classes``                   ``classes_``
``input_shape``               ``(C, H, W)``, or an empty array for flat features
``normalization.mean/.std``   the real data's per-channel statistics
``sample_indices``            selectors only: rows of the training data
``history.<key>``             the condenser only: per-iteration records
``meta``                      JSON: method, settings, version, label details,
                              the dataset's name where the caller gave it
``formation.factor``          version 2 only: the multi-formation factor f >= 2;
                              ``X`` and ``y`` then hold the *stored* set, which
                              :func:`load_set` decodes into f**2 images each
============================  ==================================================

A set without multi-formation is written as version 1, so older gradmatch
versions read it; a version-2 file is refused by them, never misread.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._version import __version__
from .atomic import write_npz_atomic

__all__ = ["SyntheticSet", "save_set", "load_set", "settings_as_saved", "FORMAT", "FORMAT_VERSION"]

#: Value of the ``format`` entry of every file written by :func:`save_set`.
FORMAT = "gradmatch.synthetic-set"

#: Version of the file layout written by :func:`save_set` (and the newest one read).
FORMAT_VERSION = 2

_REQUIRED = ("format", "format_version", "meta", "X", "y", "classes", "input_shape")
_HISTORY_PREFIX = "history."


@dataclass(frozen=True, eq=False)
class SyntheticSet:
    """A synthetic or selected set loaded by :func:`load_set`.

    Attributes
    ----------
    X : ndarray
        The set in the layout and value scale of the data it was fitted on
        (``(n, d)``, ``(n, H, W)`` or ``(n, C, H, W)``); not normalised.
    y : ndarray of shape (n,)
        Labels, in the type the estimator was fitted with (ints, strings, ...).
    classes : ndarray
        All class labels, sorted; ``y`` holds values of ``classes``.
    input_shape : tuple (C, H, W) or None
        The image shape the estimator worked with, None for flat features.
    normalization : dict or None
        ``{"mean": [...], "std": [...]}``: the *real* training data's
        per-channel (flat features: per-feature) statistics, in ``X``'s scale.
        Use them, not statistics of this small set, whenever it is evaluated.
    method : str
        Class name of the estimator that made the set.
    settings : dict
        Its ``get_params()``; callables and other objects appear as their repr.
    version : str
        The gradmatch version that wrote the file.
    sample_indices : ndarray of int or None
        Rows of the training data (selectors); None for a condensed set.
    history : dict of lists or None
        Per-iteration records of the condenser (``loss``, ``seconds``,
        ``network_steps``); None for selectors.
    dataset : str or None
        Name of the data the set was made from, as given to :func:`save_set`
        (``gradmatch condense`` records its ``--dataset``); None when not given.
    factor : int
        Multi-formation factor: ``X`` is decoded from ``X_stored``, each
        stored image giving ``factor**2`` images (1: ``X`` is ``X_stored``).
    X_stored, y_stored : ndarray
        The set as stored in the file, and its labels.
    """

    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    input_shape: tuple | None
    normalization: dict | None
    method: str
    settings: dict
    version: str
    sample_indices: np.ndarray | None = None
    history: dict | None = None
    dataset: str | None = None
    factor: int = 1
    X_stored: np.ndarray | None = None
    y_stored: np.ndarray | None = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of ``(X, y)``, as :meth:`transform` of the estimator gave them.

        Returns
        -------
        X : ndarray
        y : ndarray
        """
        return self.X.copy(), self.y.copy()

    def label_codes(self) -> np.ndarray:
        """Position of each label of ``y`` in ``classes`` (int64), as networks are trained on."""
        return _label_codes(self.y, self.classes)

    def as_tensor_dataset(self, normalize: bool = False):
        """Return the set as a ``torch.utils.data.TensorDataset`` of ``(image, label code)``.

        Parameters
        ----------
        normalize : bool, default=False
            Apply ``normalization`` (the real data's statistics), as an
            evaluation network expects; by default the values keep ``X``'s scale.

        Returns
        -------
        torch.utils.data.TensorDataset
            float32 samples shaped ``(n, C, H, W)`` when ``input_shape`` is set
            (flat ``(n, d)`` otherwise) and int64 codes into ``classes``.
        """
        import torch

        X = np.asarray(self.X, dtype=np.float32).reshape(
            (len(self.X),) + (tuple(self.input_shape) if self.input_shape is not None else (-1,)))
        if normalize:
            if self.normalization is None:
                raise ValueError("this set carries no normalization statistics; use normalize=False")
            mean = np.asarray(self.normalization["mean"], dtype=np.float32)
            std = np.asarray(self.normalization["std"], dtype=np.float32)
            shape = (1, len(mean)) + (1,) * (X.ndim - 2)
            X = (X - mean.reshape(shape)) / std.reshape(shape)
        images = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        labels = torch.from_numpy(self.label_codes())
        return torch.utils.data.TensorDataset(images, labels)

    def __repr__(self) -> str:
        dataset = "" if self.dataset is None else f", dataset={self.dataset!r}"
        return (f"SyntheticSet(method={self.method!r}, X={self.X.dtype}{list(self.X.shape)}, "
                f"classes={len(self.classes)}{dataset}, version={self.version!r})")


# ---------------------------------------------------------------------- helpers
def _jsonable(value):
    """``value`` as JSON-ready builtins; objects that JSON cannot hold become their repr."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray) and not value.dtype.hasobject and value.ndim <= 2:
        return _jsonable(value.tolist())
    return repr(value)


def settings_as_saved(estimator) -> dict:
    """An estimator's parameters as :func:`save_set` records them in ``settings``.

    Comparing this with :attr:`SyntheticSet.settings` tells whether a saved
    file was made with the configuration at hand: tuples become lists, numpy
    scalars become Python numbers, and objects JSON cannot hold (a
    ``RandomState``, a network class) become their ``repr``, exactly as in
    the file.

    Parameters
    ----------
    estimator : object
        Any estimator; one without ``get_params`` has no settings (``{}``).

    Returns
    -------
    settings : dict
        ``estimator.get_params(deep=False)`` as JSON-ready builtins.

    Examples
    --------
    >>> import numpy as np
    >>> from gradmatch import RandomCoreset
    >>> from gradmatch.io import settings_as_saved
    >>> settings_as_saved(RandomCoreset(ipc=np.int64(2), random_state=0))["ipc"]
    2
    """
    try:
        params = estimator.get_params(deep=False)
    except AttributeError:
        return {}
    return _jsonable(params)


def _portable_labels(labels: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """Labels as an array numpy saves without pickle, and whether they were an object array."""
    labels = np.asarray(labels)
    if not labels.dtype.hasobject:
        return labels, False
    values = labels.tolist()
    try:
        converted = np.array(values) if values else np.array([], dtype=str)
    except (TypeError, ValueError):  # ragged sequences and the like
        converted = labels
    if converted.dtype.hasobject or converted.shape != labels.shape or converted.tolist() != values:
        kinds = sorted({type(v).__name__ for v in values})
        raise TypeError(
            f"cannot store {name} of type {', '.join(kinds)} without pickle: save_set writes "
            "labels that are numbers, strings or booleans")
    return converted, True


def _label_codes(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    lookup = {value: i for i, value in enumerate(classes.tolist())}
    try:
        return np.fromiter((lookup[v] for v in y.tolist()), dtype=np.int64, count=len(y))
    except KeyError as err:
        raise ValueError(f"label {err.args[0]!r} of y is not one of the classes") from None


def _estimator_arrays(estimator, dataset: str | None = None) -> dict[str, np.ndarray]:
    """The arrays and metadata that :func:`save_set` writes for a fitted ``estimator``."""
    check_is_fitted(estimator, ["X_syn_", "y_syn_", "classes_"])
    if dataset is not None and (not isinstance(dataset, str) or not dataset.strip()):
        raise TypeError(f"dataset should be a non-empty string naming the data, or None; got {dataset!r}")
    X = np.asarray(estimator.X_syn_)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X_syn_ must hold real numbers, got dtype {X.dtype}")
    y, y_object = _portable_labels(estimator.y_syn_, "labels")
    classes, classes_object = _portable_labels(estimator.classes_, "classes")
    input_shape = getattr(estimator, "input_shape_", None)
    factor = int(getattr(estimator, "factor_", 1))
    if factor > 1:  # the stored form is what the file keeps; loading decodes it
        X = np.asarray(estimator.X_stored_)
        y, y_object = _portable_labels(estimator.y_stored_, "labels")
    meta = {
        "method": type(estimator).__name__,
        "settings": settings_as_saved(estimator),
        "version": __version__,
        "labels_object": bool(y_object or classes_object),
    }
    if dataset is not None:
        meta["dataset"] = dataset
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(1 if factor == 1 else 2, dtype=np.int64),
        "meta": np.array(json.dumps(meta, allow_nan=False, sort_keys=True)),
        "X": X,
        "y": y,
        "classes": classes,
        "input_shape": np.asarray(() if input_shape is None else tuple(input_shape), dtype=np.int64),
    }
    norm = getattr(estimator, "normalization_", None)
    if norm is not None:
        arrays["normalization.mean"] = np.asarray(norm["mean"], dtype=np.float64).reshape(-1)
        arrays["normalization.std"] = np.asarray(norm["std"], dtype=np.float64).reshape(-1)
    if factor > 1:
        arrays["formation.factor"] = np.array(factor, dtype=np.int64)
    indices = getattr(estimator, "sample_indices_", None)
    if indices is not None:
        arrays["sample_indices"] = np.asarray(indices, dtype=np.int64)
    history = getattr(estimator, "history_", None)
    if history is not None:
        for key, values in dict(history).items():
            column = np.asarray(values)
            if column.dtype.kind not in "biuf" or column.ndim != 1:
                raise TypeError(f"history_[{key!r}] must be a list of numbers to be saved")
            arrays[_HISTORY_PREFIX + str(key)] = column
    for key, value in arrays.items():
        if value.dtype.hasobject:  # np.load(allow_pickle=False) must read every entry back
            raise TypeError(f"cannot store {key} without pickle (dtype {value.dtype})")
    return arrays


# ---------------------------------------------------------------------- save
def save_set(path, estimator, *, dataset: str | None = None) -> Path:
    """Write a fitted estimator's synthetic or selected set to a portable ``.npz`` file.

    The file holds only numeric and unicode arrays (it loads with
    ``np.load(path, allow_pickle=False)``): ``X_syn_``, ``y_syn_``,
    ``classes_``, ``input_shape_``, ``normalization_``, ``sample_indices_``
    (selectors), ``history_`` (the condenser), the estimator's class name and
    ``get_params()`` and the gradmatch version. The write is atomic: the data
    go to a temporary file in the same folder, which then replaces ``path``,
    so a reader never sees a half-written file and a failed write leaves an
    existing file as it was.

    Parameters
    ----------
    path : str or path-like
        Where to write; used as given (no suffix is added). An existing file
        is replaced.
    estimator : GradientMatchingCondenser, Herding or RandomCoreset
        A fitted estimator.
    dataset : str, optional
        Name of the data the estimator was fitted on (e.g. ``"fashion-mnist"``),
        kept with the set as :attr:`SyntheticSet.dataset`. ``gradmatch
        evaluate`` scores a set on this dataset unless told another, and
        warns when told another.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``dataset`` is given but not a non-empty string.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import RandomCoreset
    >>> from gradmatch.io import load_set, save_set
    >>> X, y = load_digits(return_X_y=True)
    >>> coreset = RandomCoreset(ipc=2, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_set(os.path.join(folder, "digits-ipc2.npz"), coreset)
    ...     loaded = load_set(path)
    >>> loaded.method, loaded.X.shape, loaded.y[:4].tolist()
    ('RandomCoreset', (20, 64), [0, 0, 1, 1])
    """
    arrays = _estimator_arrays(estimator, dataset)
    path = Path(os.fspath(path))
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a directory")
    X = arrays["X"]
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise ValueError(
            f"cannot save to {path}: the set holds {int(np.size(X) - np.isfinite(X).sum())} NaN or "
            "infinite values (a diverged fit, or values beyond the input dtype's range); refit with a "
            "smaller learning rate or give float32 input")
    write_npz_atomic(path, arrays)
    return path


# ---------------------------------------------------------------------- load
class _Reader:
    """Reads entries of an open NpzFile, turning every failure into a ValueError naming the file."""

    def __init__(self, npz, path: Path):
        self.npz, self.path = npz, path

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.path}: {what}")

    def array(self, key: str) -> np.ndarray:
        try:
            value = self.npz[key]
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise self.fail(
                    f"entry {key!r} is a pickled object array; load_set refuses to unpickle "
                    "anything (the file was not written by save_set, and may be malicious)") from None
            raise self.fail(f"cannot read entry {key!r}: {err} (the file may be truncated or corrupt)") from None
        except Exception as err:  # zipfile.BadZipFile, zlib.error, EOFError, OSError, ...
            raise self.fail(f"cannot read entry {key!r}: {type(err).__name__}: {err} "
                            "(the file may be truncated or corrupt)") from None
        if not isinstance(value, np.ndarray):
            raise self.fail(f"entry {key!r} is not a numpy array (the file was not written by save_set)")
        return value

    def text(self, key: str) -> str:
        value = self.array(key)
        if value.shape != () or value.dtype.kind != "U":
            raise self.fail(f"entry {key!r} should be a string, found {value.dtype} {value.shape}")
        return str(value)


def load_set(path) -> SyntheticSet:
    """Load a set written by :func:`save_set`, without unpickling anything.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    SyntheticSet

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable ``.npz`` (truncated, corrupt, pickled
        data), is a foreign ``.npz`` (missing entries, another format) or was
        written by a newer format version; the message names the file and
        what is wrong.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import Herding
    >>> from gradmatch.io import load_set, save_set
    >>> X, y = load_digits(return_X_y=True)
    >>> herd = Herding(ipc=1, features="pixels").fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     loaded = load_set(save_set(os.path.join(folder, "herding.npz"), herd))
    >>> bool((loaded.sample_indices == herd.sample_indices_).all())
    True
    >>> images, codes = loaded.as_tensor_dataset()[0:3]
    >>> tuple(images.shape), images.dtype, codes.tolist()
    ((3, 64), torch.float32, [0, 1, 2])
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"no gradmatch set at {path}: the file does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a gradmatch set (.npz written by save_set)")
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err) or "pickled" in str(err):
            raise ValueError(
                f"{path} is neither an .npz archive nor a .npy file: it may be truncated or corrupt, "
                "or hold pickled data, which load_set never unpickles; load_set reads the .npz files "
                "save_set writes") from None
        raise ValueError(f"{path} cannot be read as an .npz archive: {err} "
                         "(the file may be truncated or corrupt)") from None
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ValueError(f"{path} cannot be read as an .npz archive: {type(err).__name__}: {err} "
                         "(the file may be truncated or corrupt)") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single .npy array, not a gradmatch set (.npz written by save_set)")
    with npz:
        return _read_set(_Reader(npz, path))


#: An entry may inflate to at most this many times its compressed size (and
#: this many bytes besides): save_set stores entries uncompressed, so a larger
#: ratio is a file made to exhaust memory, refused before it is read.
MAX_INFLATION = 100
INFLATION_SLACK_BYTES = 2**20


def _entry_headers(r: _Reader) -> dict[str, tuple[tuple, np.dtype]]:
    """Each entry's declared shape and dtype, read from its header alone (no data is read)."""
    headers = {}
    for member in r.npz.zip.namelist():
        if not member.endswith(".npy"):
            continue
        name = member[: -len(".npy")]
        info = r.npz.zip.getinfo(member)
        if info.file_size > MAX_INFLATION * info.compress_size + INFLATION_SLACK_BYTES:
            raise r.fail(f"entry {name!r} inflates from {info.compress_size} to {info.file_size} bytes; "
                         "save_set never compresses, so the file was not written by it")
        header = _read_header(r, member, name)
        if header is not None:
            headers[name] = header
    return headers


def _read_header(r: _Reader, member: str, name: str):
    try:
        with r.npz.zip.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                return None  # reading the entry reports it
    except ValueError as err:
        if "header" in str(err).lower() and ("large" in str(err) or "max_header_size" in str(err)):
            raise r.fail(f"entry {name!r} has a header larger than numpy reads safely; the file was not "
                         "written by save_set") from None
        return None  # a corrupt entry is reported when it is read
    except Exception:  # a corrupt entry is reported when it is read
        return None
    return tuple(shape), dtype


def _check_declared_entries(r: _Reader) -> None:
    """Refuse pickled entries and inconsistent declared sizes before any data is read."""
    headers = _entry_headers(r)
    pickled = sorted(name for name, (_, dtype) in headers.items() if dtype.hasobject)
    if pickled:
        raise r.fail(
            f"the entries {', '.join(map(repr, pickled))} are pickled object arrays; load_set "
            "never unpickles (the file was not written by save_set, and may be malicious)")
    shapes = {name: shape for name, (shape, dtype) in headers.items() if dtype.kind in "biuf"}
    if "X" in shapes and "y" in shapes and (len(shapes["X"]) < 1 or shapes["y"][:1] != shapes["X"][:1]):
        raise r.fail(f"X declares shape {shapes['X']} and y {shapes['y']}: one label per sample is expected")


def _read_set(r: _Reader) -> SyntheticSet:
    """Read and check every part of an open set file, each part by its own reader."""
    _check_header(r)
    meta = _read_meta(r)
    X, y, classes = _read_labelled_samples(r, meta)
    input_shape = _read_input_shape(r, X)
    factor = _read_factor(r, input_shape)
    if factor > 1:
        from .formation import decode_array  # torch, only for multi-formation sets
    return SyntheticSet(
        X=decode_array(X, factor, input_shape) if factor > 1 else X,
        y=np.repeat(y, factor * factor) if factor > 1 else y, classes=classes, input_shape=input_shape,
        normalization=_read_normalization(r, X, input_shape), method=meta["method"],
        settings=meta["settings"], version=meta["version"], sample_indices=_read_indices(r, len(X)),
        history=_read_history(r), dataset=meta.get("dataset"), factor=factor, X_stored=X, y_stored=y,
    )


def _read_factor(r: _Reader, input_shape) -> int:
    """The multi-formation factor (1 for files without one), checked against the images."""
    if "formation.factor" not in r.npz.files:
        return 1
    value = r.array("formation.factor")
    if value.shape != () or value.dtype.kind not in "iu" or int(value) < 2:
        raise r.fail(f"formation.factor should be an integer >= 2, found {value!r}")
    factor = int(value)
    if input_shape is None or factor > min(input_shape[1:]):
        raise r.fail(f"formation.factor {factor} needs images with both sides >= {factor}; the set's "
                     f"input_shape is {input_shape}")
    return factor


def _check_header(r: _Reader) -> None:
    """No pickled or oversized entries, every required entry, and a format this version reads."""
    _check_declared_entries(r)
    files = set(r.npz.files)
    missing = [key for key in _REQUIRED if key not in files]
    if missing:
        raise r.fail(
            f"not a gradmatch set: it lacks the entries {', '.join(missing)} (it has "
            f"{', '.join(sorted(files)) or 'none'}); load_set reads files written by save_set")
    fmt = r.array("format")
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise r.fail(f"not a gradmatch set: its format entry is {fmt!r}, expected {FORMAT!r}")
    version = r.array("format_version")
    if version.shape != () or version.dtype.kind not in "iu":
        raise r.fail(f"format_version should be an integer, found {version.dtype} {version.shape}")
    if int(version) > FORMAT_VERSION or int(version) < 1:
        raise r.fail(
            f"format version {int(version)} is not supported: this gradmatch ({__version__}) reads "
            f"format versions 1 to {FORMAT_VERSION}; a newer gradmatch may read it")


def _read_meta(r: _Reader) -> dict:
    try:
        meta = json.loads(r.text("meta"))
    except json.JSONDecodeError as err:
        raise r.fail(f"the meta entry is not valid JSON ({err})") from None
    except RecursionError:
        raise r.fail("the meta entry is nested too deeply to be a gradmatch set's (the file was not "
                     "written by save_set)") from None
    if not isinstance(meta, dict):
        raise r.fail("the meta entry should be a JSON object")
    for key, kind in (("method", str), ("settings", dict), ("version", str)):
        if not isinstance(meta.get(key), kind):
            raise r.fail(f"the meta entry lacks {key!r} (a {kind.__name__})")
    # Optional (files written before it existed, or without a name, have none).
    dataset = meta.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise r.fail(f"the meta entry's 'dataset' should be a string, found {dataset!r}")
    return meta


def _read_labelled_samples(r: _Reader, meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y, classes = r.array("X"), r.array("y"), r.array("classes")
    if X.dtype.kind not in "biuf" or X.ndim < 2:
        raise r.fail(f"X should be a numeric array of 2 to 4 dimensions, found {X.dtype} {X.shape}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise r.fail("X holds NaN or infinite values; a set must be finite (was it saved from a diverged "
                     "fit by another tool?)")
    if y.ndim != 1 or classes.ndim != 1 or len(y) != len(X):
        raise r.fail(f"y {y.shape} and classes {classes.shape} should be 1-D, with one label per "
                     f"sample of X {X.shape}")
    if y.dtype != classes.dtype:
        raise r.fail(f"y ({y.dtype}) and classes ({classes.dtype}) should share one dtype")
    if len(set(classes.tolist())) != len(classes):
        raise r.fail("classes holds duplicates")
    try:
        _label_codes(y, classes)
    except ValueError as err:
        raise r.fail(str(err)) from None
    if meta.get("labels_object"):
        y, classes = y.astype(object), classes.astype(object)
    return X, y, classes


def _read_input_shape(r: _Reader, X: np.ndarray) -> tuple[int, int, int] | None:
    shape = r.array("input_shape")
    if shape.dtype.kind not in "iu" or shape.shape not in ((0,), (3,)) or np.any(shape < 1):
        raise r.fail(f"input_shape should hold 3 positive integers or none, found {shape!r}")
    input_shape = tuple(int(v) for v in shape) if len(shape) else None
    if input_shape is not None and math.prod(input_shape) != math.prod(X.shape[1:]):
        raise r.fail(f"input_shape {input_shape} does not match samples of shape {X.shape[1:]}")
    return input_shape


def _read_normalization(r: _Reader, X: np.ndarray, input_shape) -> dict | None:
    files = set(r.npz.files)
    if "normalization.mean" not in files and "normalization.std" not in files:
        return None
    mean, std = r.array("normalization.mean"), r.array("normalization.std")
    channels = input_shape[0] if input_shape is not None else X.shape[1]
    if (mean.shape != (channels,) or std.shape != (channels,) or mean.dtype.kind != "f"
            or std.dtype.kind != "f"):
        raise r.fail(f"normalization mean {mean.shape} and std {std.shape} should be {channels} "
                     "floats each (one per channel)")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise r.fail("normalization needs finite means and finite, positive stds")
    return {"mean": mean.tolist(), "std": std.tolist()}


def _read_indices(r: _Reader, n_samples: int) -> np.ndarray | None:
    if "sample_indices" not in r.npz.files:
        return None
    indices = r.array("sample_indices")
    if indices.dtype.kind not in "iu" or indices.shape != (n_samples,) or np.any(indices < 0):
        raise r.fail(f"sample_indices should be {n_samples} non-negative integers, found "
                     f"{indices.dtype} {indices.shape}")
    return indices.astype(np.int64, copy=False)


def _read_history(r: _Reader) -> dict | None:
    history_keys = [key for key in r.npz.files if key.startswith(_HISTORY_PREFIX)]
    if not history_keys:
        return None
    history = {}
    for key in history_keys:
        column = r.array(key)
        if column.ndim != 1 or column.dtype.kind not in "biuf":
            raise r.fail(f"{key} should be a 1-D numeric array, found {column.dtype} {column.shape}")
        history[key[len(_HISTORY_PREFIX):]] = column.tolist()
    return history

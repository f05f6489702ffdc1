"""Dataset loaders that read local files and never download.

Nothing in this module touches the network: every loader reads files the user
already has, and a missing or corrupt file raises :class:`DatasetError` whose
message names every folder looked in and says how to get the data.

* :func:`load_digits_images`: scikit-learn's digits as ``(n, 8, 8)`` images.
* :func:`load_idx_dataset`: MNIST-style IDX files (``.gz`` or plain) from a
  folder, e.g. Fashion-MNIST from ``/usr/share/datasets/fashion-mnist/``
  (``apt-get install -y dataset-fashion-mnist``).
* :func:`load_mnist`, :func:`load_fashion_mnist`: the two IDX datasets; both
  also accept a torchvision root (``<root>/MNIST/raw/``,
  ``<root>/FashionMNIST/raw/``).
* :func:`load_cifar10`, :func:`load_cifar100`, :func:`load_svhn`: the files
  torchvision's dataset classes expect under a root, as uint8
  ``(n, 3, 32, 32)`` channel-first images and int64 labels.
* :func:`load_dataset`: one entry point by name (:data:`DATASET_NAMES`).
* :func:`load_condensed`, :func:`list_condensed`: the condensed Fashion-MNIST
  sets shipped inside the package (ipc 1 and 10, one per method the
  reproduction kept a set of), with their provenance.

Why not torchvision's classes with ``download=False``: they would work offline,
but ``CIFAR10``/``CIFAR100`` unpickle their files with plain :func:`pickle.load`,
which runs whatever code a crafted file asks for, and they also insist on the
``meta`` files and on the release's MD5 sums. The CIFAR batches are read here
with a restricted unpickler instead (:func:`_load_pickle`): it rebuilds numpy
arrays, dicts, lists, strings and numbers, and refuses every other global, so a
malicious "CIFAR" file raises :class:`DatasetError` instead of running code.
SVHN's ``.mat`` files need :func:`scipy.io.loadmat`, imported only when
:func:`load_svhn` runs; without scipy it raises :class:`ImportError` saying
``pip install scipy``.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import numbers
import os
import pickle
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["DatasetError", "read_idx", "load_idx_dataset", "load_mnist", "load_fashion_mnist",
           "load_cifar10", "load_cifar100", "load_svhn", "load_digits_images", "load_dataset",
           "load_condensed", "list_condensed", "DATASET_NAMES", "FASHION_MNIST_DIR"]

#: Where Debian's ``dataset-fashion-mnist`` package puts the files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_ELSEWHERE = "on a machine with internet access"

_MNIST_HOW_TO_GET = (
    "MNIST is not packaged for this machine and nothing here downloads it: "
    f"{_ELSEWHERE}, run `torchvision.datasets.MNIST(root, train=True, download=True)` "
    "(and train=False), or fetch the four IDX .gz files from an MNIST mirror, then copy them here. "
    "Pass as data_dir either the folder holding train-images-idx3-ubyte[.gz], "
    "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz], "
    "or the torchvision root that holds MNIST/raw/."
)

_FASHION_HOW_TO_GET = (
    "Install them with `apt-get install -y dataset-fashion-mnist` (files land in "
    f"{FASHION_MNIST_DIR}) or copy the four IDX files from the Fashion-MNIST release there; "
    "a torchvision root holding FashionMNIST/raw/ works too."
)

_CIFAR10_HOW_TO_GET = (
    f"Nothing here downloads CIFAR-10: {_ELSEWHERE}, run "
    "`torchvision.datasets.CIFAR10(root, download=True)` (or download and extract "
    "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), then copy the "
    "folder so that <root>/cifar-10-batches-py/ holds data_batch_1 ... data_batch_5 and test_batch."
)

_CIFAR100_HOW_TO_GET = (
    f"Nothing here downloads CIFAR-100: {_ELSEWHERE}, run "
    "`torchvision.datasets.CIFAR100(root, download=True)` (or download and extract "
    "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), then copy the "
    "folder so that <root>/cifar-100-python/ holds train and test."
)

_SVHN_HOW_TO_GET = (
    f"Nothing here downloads SVHN: {_ELSEWHERE}, run "
    "`torchvision.datasets.SVHN(root, split='train', download=True)` and split='test' "
    "(or download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/), "
    "then copy both files into <root>/."
)


class DatasetError(FileNotFoundError):
    """A dataset file is missing or unreadable; the message says where we looked and how to get it."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array.

    Raises
    ------
    DatasetError
        If the file is missing, truncated or not an IDX file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"cannot read {path}: {err} (the file may be truncated or corrupt)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated: its header is incomplete")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path} is truncated or corrupt: its header announces shape {shape} "
            f"({expected} bytes of data) but it holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def _with_hint(message: str, how_to_get: str) -> str:
    return f"{message} {how_to_get}" if how_to_get else message


def load_idx_dataset(data_dir: str | os.PathLike, name: str = "dataset", how_to_get: str = "",
                     subfolders: Sequence[str] = ()):
    """Load ``(X_train, y_train), (X_test, y_test)`` from the four MNIST-style IDX files in a folder.

    Images come back as ``(n, 28, 28)`` uint8 (whatever the files hold), labels as int64.

    Parameters
    ----------
    data_dir : path
        The folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each ``.gz`` or plain).
    name : str
        The dataset's name, for error messages.
    how_to_get : str
        Appended to every error message: how to get the files.
    subfolders : sequence of str
        Folders relative to ``data_dir`` to look in when ``data_dir`` itself lacks
        the files, e.g. ``("MNIST/raw",)`` for a torchvision root. The first folder
        holding all four files is read.

    Raises
    ------
    DatasetError
        If no folder holds all four files (the message lists every folder looked in and
        what each lacked), or a file is truncated, corrupt or disagrees with its partner.
    """
    base = Path(data_dir).expanduser()
    folders = [base] + [base / sub for sub in subfolders]
    looked = []
    for folder in folders:
        found = {key: _find(folder, stem) for key, stem in _IDX_STEMS.items()}
        missing = [_IDX_STEMS[k] + "[.gz]" for k, v in found.items() if v is None]
        if not missing:
            break
        state = "does not exist" if not folder.is_dir() else f"lacks {', '.join(missing)}"
        looked.append(f"{folder} ({state})")
    else:
        raise DatasetError(_with_hint(
            f"{name}: looked for the four IDX files in {'; '.join(looked)}.", how_to_get))
    try:
        arrays = {key: read_idx(path) for key, path in found.items()}
    except DatasetError as err:
        raise DatasetError(_with_hint(f"{name}: {err}.", how_to_get)) from None
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DatasetError(_with_hint(
                f"{name}: in {folder}, {split} images should be 3-D and labels 1-D, found shapes "
                f"{images.shape} and {labels.shape} (are the files swapped or corrupt?).", how_to_get))
        if len(images) != len(labels):
            raise DatasetError(_with_hint(
                f"{name}: {split} images ({len(images)}) and labels ({len(labels)}) differ in number "
                f"in {folder}.", how_to_get))
    return ((arrays["train_images"], arrays["train_labels"].astype(np.int64)),
            (arrays["test_images"], arrays["test_labels"].astype(np.int64)))


def load_mnist(data_dir: str | os.PathLike):
    """MNIST from IDX files: ``(X_train, y_train), (X_test, y_test)``, uint8 ``(n, 28, 28)``, int64 labels.

    ``data_dir`` is the folder holding the four IDX files (``.gz`` or plain) or a
    torchvision root holding ``MNIST/raw/``; ``data_dir`` itself is looked in first.
    Nothing is downloaded.
    """
    return load_idx_dataset(data_dir, "MNIST", _MNIST_HOW_TO_GET, subfolders=("MNIST/raw",))


def load_fashion_mnist(data_dir: str | os.PathLike = FASHION_MNIST_DIR):
    """Fashion-MNIST from IDX files: ``(X_train, y_train), (X_test, y_test)``, uint8 ``(n, 28, 28)``.

    ``data_dir`` is the folder holding the four IDX files (default: where
    ``apt-get install -y dataset-fashion-mnist`` puts them) or a torchvision root
    holding ``FashionMNIST/raw/``; ``data_dir`` itself is looked in first.
    """
    return load_idx_dataset(data_dir, "Fashion-MNIST", _FASHION_HOW_TO_GET, subfolders=("FashionMNIST/raw",))


# --------------------------------------------------------------------------- CIFAR

def _numpy_global(submodule: str, name: str):
    """``numpy._core.<submodule>.<name>`` (numpy 2) or ``numpy.core.<submodule>.<name>`` (numpy 1)."""
    import importlib

    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"this numpy has no {submodule}.{name}")


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(text, "latin1"); allow only that.
    if encoding not in ("latin1", "latin-1") or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return obj.encode("latin1", errors)


#: The only globals a CIFAR pickle may name: numpy array / dtype / scalar reconstruction
#: (under numpy 1's and numpy 2's module names), latin-1 bytes, and plain builtin types.
_ALLOWED_GLOBALS = {
    **{(f"{pkg}.multiarray", "_reconstruct"): ("multiarray", "_reconstruct") for pkg in ("numpy.core", "numpy._core")},
    **{(f"{pkg}.multiarray", "scalar"): ("multiarray", "scalar") for pkg in ("numpy.core", "numpy._core")},
    **{(f"{pkg}.numeric", "_frombuffer"): ("numeric", "_frombuffer") for pkg in ("numpy.core", "numpy._core")},
}
_SAFE_BUILTINS = {"bool", "int", "float", "complex", "str", "bytes", "bytearray",
                  "list", "tuple", "dict", "set", "frozenset", "slice", "range"}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and builtin data, and refuses every other global."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _numpy_global(*_ALLOWED_GLOBALS[(module, name)])
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if module == "builtins" and name in _SAFE_BUILTINS:
            import builtins

            return getattr(builtins, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays, lists, "
            "strings and numbers, so this file is not one (it may be corrupt or malicious)")


def _load_pickle(path: Path, name: str, how_to_get: str):
    """Unpickle ``path`` with :class:`_RestrictedUnpickler`; any failure is a :class:`DatasetError`."""
    try:
        with open(path, "rb") as fh:
            # encoding="bytes": the CIFAR files were written by Python 2; their str keys
            # come back as bytes (b"data"), as in the dataset authors' own loading snippet.
            return _RestrictedUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise DatasetError(_with_hint(f"{name}: cannot load {path}: {err}.", how_to_get)) from None
    except Exception as err:  # truncated or garbage files raise EOFError, ValueError, KeyError, ...
        raise DatasetError(_with_hint(
            f"{name}: cannot load {path}: {type(err).__name__}: {err} (the file may be truncated or corrupt).",
            how_to_get)) from None


def _get(batch: dict, key: str):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    return None


def _cifar_batch(path: Path, label_key: str, n_classes: int, name: str, how_to_get: str):
    batch = _load_pickle(path, name, how_to_get)
    if not isinstance(batch, dict):
        raise DatasetError(_with_hint(
            f"{name}: {path} holds a {type(batch).__name__}, not a CIFAR batch dict.", how_to_get))
    data, labels = _get(batch, "data"), _get(batch, label_key)
    if data is None or labels is None:
        raise DatasetError(_with_hint(
            f"{name}: {path} lacks the keys 'data' and {label_key!r} of a CIFAR batch "
            f"(it has {sorted(map(str, batch))}).", how_to_get))
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(_with_hint(
            f"{name}: {path}: 'data' should be uint8 of shape (n, 3072), found {data.dtype} {data.shape}.",
            how_to_get))
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DatasetError(_with_hint(f"{name}: {path}: {label_key!r} are not integers.", how_to_get)) from None
    if len(labels) != len(data):
        raise DatasetError(_with_hint(
            f"{name}: {path} holds {len(data)} images but {len(labels)} labels.", how_to_get))
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DatasetError(_with_hint(
            f"{name}: {path}: labels should lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}.",
            how_to_get))
    # CIFAR rows are the red plane, then green, then blue, each 32x32 row-major: channel-first as is.
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar(root, subfolder: str, train_files, test_files, label_key: str, n_classes: int,
                name: str, how_to_get: str):
    base = Path(root).expanduser()
    wanted = list(train_files) + list(test_files)
    looked = []
    for folder in (base / subfolder, base):
        missing = [f for f in wanted if not (folder / f).is_file()]
        if not missing:
            break
        state = "does not exist" if not folder.is_dir() else f"lacks {', '.join(missing)}"
        looked.append(f"{folder} ({state})")
    else:
        raise DatasetError(_with_hint(f"{name}: looked for the python-version batches in {'; '.join(looked)}.",
                                      how_to_get))
    splits = []
    for files in (train_files, test_files):
        parts = [_cifar_batch(folder / f, label_key, n_classes, name, how_to_get) for f in files]
        splits.append((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
    return tuple(splits)


def load_cifar10(root: str | os.PathLike):
    """CIFAR-10 from torchvision's layout: ``(X_train, y_train), (X_test, y_test)``.

    Reads ``<root>/cifar-10-batches-py/data_batch_1`` ... ``data_batch_5`` (train, 50,000
    images) and ``test_batch`` (10,000), the python version of the release that
    ``torchvision.datasets.CIFAR10(root, download=True)`` leaves; ``root`` may also be
    the ``cifar-10-batches-py`` folder itself. Images are uint8 ``(n, 3, 32, 32)``
    channel-first, labels int64 in 0..9. Nothing is downloaded, and the pickles are
    read with a restricted unpickler that refuses anything but numpy arrays and
    builtin data, so a crafted file cannot run code.
    """
    return _load_cifar(root, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                       "labels", 10, "CIFAR-10", _CIFAR10_HOW_TO_GET)


def load_cifar100(root: str | os.PathLike):
    """CIFAR-100 (fine labels) from torchvision's layout: ``(X_train, y_train), (X_test, y_test)``.

    Reads ``<root>/cifar-100-python/train`` (50,000 images) and ``test`` (10,000), as
    ``torchvision.datasets.CIFAR100(root, download=True)`` leaves them; ``root`` may also
    be the ``cifar-100-python`` folder itself. Images are uint8 ``(n, 3, 32, 32)``
    channel-first, labels the 100 fine classes as int64. Nothing is downloaded; the
    pickles are read with the same restricted unpickler as :func:`load_cifar10`.
    """
    return _load_cifar(root, "cifar-100-python", ["train"], ["test"], "fine_labels", 100,
                       "CIFAR-100", _CIFAR100_HOW_TO_GET)


# --------------------------------------------------------------------------- SVHN

def load_svhn(root: str | os.PathLike):
    """SVHN (cropped digits) from torchvision's layout: ``(X_train, y_train), (X_test, y_test)``.

    Reads ``<root>/train_32x32.mat`` (73,257 images) and ``<root>/test_32x32.mat``
    (26,032), as ``torchvision.datasets.SVHN(root, split=..., download=True)`` leaves
    them. Images are uint8 ``(n, 3, 32, 32)`` channel-first; labels int64 in 0..9, the
    files' label 10 (digit zero) mapped to 0 as torchvision does. Needs scipy to read
    the ``.mat`` files (an :class:`ImportError` says ``pip install scipy`` if it is
    missing). Nothing is downloaded.
    """
    base = Path(root).expanduser()
    paths = {split: base / f"{split}_32x32.mat" for split in ("train", "test")}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        state = "does not exist" if not base.is_dir() else f"lacks {', '.join(missing)}"
        raise DatasetError(_with_hint(f"SVHN: looked in {base} ({state}).", _SVHN_HOW_TO_GET))
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("load_svhn needs scipy to read SVHN's .mat files: pip install scipy") from None
    out = []
    for path in paths.values():
        try:
            mat = loadmat(path)
        except Exception as err:  # scipy raises ValueError, TypeError, OSError, ... on bad files
            raise DatasetError(_with_hint(
                f"SVHN: cannot read {path}: {type(err).__name__}: {err} (the file may be truncated or corrupt).",
                _SVHN_HOW_TO_GET)) from None
        X, y = mat.get("X"), mat.get("y")
        if X is None or y is None:
            raise DatasetError(_with_hint(f"SVHN: {path} lacks the variables 'X' and 'y'.", _SVHN_HOW_TO_GET))
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or y.size != X.shape[3]:
            raise DatasetError(_with_hint(
                f"SVHN: {path}: expected X of shape (32, 32, 3, n) and n labels y, found X {X.shape} "
                f"and y {y.shape}.", _SVHN_HOW_TO_GET))
        labels = y.astype(np.int64).reshape(-1)
        labels[labels == 10] = 0
        if len(labels) and (labels.min() < 0 or labels.max() > 9):
            raise DatasetError(_with_hint(
                f"SVHN: {path}: labels should lie in 1..10, found {y.min()}..{y.max()}.", _SVHN_HOW_TO_GET))
        # (height, width, channel, n) -> (n, channel, height, width), as torchvision's SVHN.
        images = np.ascontiguousarray(np.transpose(X, (3, 2, 0, 1)).astype(np.uint8, copy=False))
        out.append((images, labels))
    return tuple(out)


# --------------------------------------------------------------------------- digits, by name

def load_digits_images(test_size: float = 0.25, random_state: int = 0):
    """scikit-learn's digits as ``(n, 8, 8)`` float64 images, split stratified into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.reshape(-1, 8, 8), y, test_size=test_size, stratify=y, random_state=random_state)
    return (X_train, y_train), (X_test, y_test)


_LOADERS = {
    "mnist": (load_mnist, _MNIST_HOW_TO_GET),
    "fashion-mnist": (load_fashion_mnist, _FASHION_HOW_TO_GET),
    "cifar10": (load_cifar10, _CIFAR10_HOW_TO_GET),
    "cifar100": (load_cifar100, _CIFAR100_HOW_TO_GET),
    "svhn": (load_svhn, _SVHN_HOW_TO_GET),
}

#: The names :func:`load_dataset` knows.
DATASET_NAMES = ("digits",) + tuple(_LOADERS)

_DEFAULT_DIRS = {"fashion-mnist": FASHION_MNIST_DIR}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None):
    """Load a dataset by name: ``(X_train, y_train), (X_test, y_test)``. Nothing is downloaded.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES` (case and ``_``/``-`` do not matter):

        * ``"digits"``: scikit-learn's bundled digits, float64 ``(n, 8, 8)``, split 75/25
          stratified (:func:`load_digits_images`); takes no ``data_dir``.
        * ``"mnist"``, ``"fashion-mnist"``: uint8 ``(n, 28, 28)`` from IDX files
          (:func:`load_mnist`, :func:`load_fashion_mnist`).
        * ``"cifar10"``, ``"cifar100"``, ``"svhn"``: uint8 ``(n, 3, 32, 32)`` from a
          torchvision root (:func:`load_cifar10`, :func:`load_cifar100`, :func:`load_svhn`).
    data_dir : path, optional
        Where the files are. Defaults: ``fashion-mnist`` reads :data:`FASHION_MNIST_DIR`;
        ``mnist``, ``cifar10``, ``cifar100`` and ``svhn`` have no standard location and
        need it.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), or a ``data_dir`` for digits.
    DatasetError
        If the files are missing or corrupt, or no ``data_dir`` was given for a dataset
        without a default location.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key == "digits":
        if data_dir is not None:
            raise ValueError("digits ships with scikit-learn and takes no data_dir; pass data_dir=None")
        return load_digits_images()
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    loader, how_to_get = _LOADERS[key]
    if data_dir is None:
        data_dir = _DEFAULT_DIRS.get(key)
        if data_dir is None:
            raise DatasetError(f"{key} has no default location: pass data_dir, the folder holding its files. "
                               f"{how_to_get}")
    return loader(data_dir)


# --------------------------------------------------------------------------- released condensed sets

#: Folder of the released sets inside the package: ``<dataset>/ipc<k>-<method>.npz`` and ``manifest.json``.
_CONDENSED_DIR = Path(__file__).resolve().parent / "condensed"


@functools.lru_cache(maxsize=1)
def _condensed_manifest() -> dict:
    path = _CONDENSED_DIR / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"the released sets' manifest {path} is missing: this installation of gradmatch "
                           "was built without its package data") from None


def _released_name(dataset: str, ipc: int, method: str) -> str:
    return f"{dataset}/ipc{ipc}-{method}"


def list_condensed() -> list[tuple[str, int, str]]:
    """The released condensed sets shipped with gradmatch, as ``(name, ipc, method)`` triples.

    Returns
    -------
    list of tuple (str, int, str)
        Sorted by dataset, ipc and method; each triple is a valid
        :func:`load_condensed` call.

    Examples
    --------
    >>> from gradmatch.datasets import list_condensed
    >>> ("fashion-mnist", 1, "md") in list_condensed()
    True
    """
    return sorted((e["dataset"], int(e["ipc"]), e["method"]) for e in _condensed_manifest()["sets"].values())


def load_condensed(name: str, ipc: int, method: str):
    """Load a condensed set released with gradmatch: ``(X, y, info)``. Nothing is downloaded.

    The reproduction of the paper on a 2-core CPU (``benchmarks/reproduce``,
    budget ``cpu``) saved the Fashion-MNIST sets it made; one set per method at
    ipc 1 and 10 ships inside the package, a byte-for-byte copy of the saved
    file. :func:`list_condensed` lists them; ``gradmatch show`` and
    ``gradmatch evaluate`` take them by name (``fashion-mnist/ipc1-md``).
    Their budget is smaller than the paper's (K = 100 iterations at ipc 1,
    K = 10 at ipc 10; the paper runs 1000): ``info`` says so for each.

    Parameters
    ----------
    name : str
        The dataset, e.g. ``"fashion-mnist"`` (case and ``_``/``-`` do not
        matter, as in :func:`load_dataset`).
    ipc : int
        Images per class: 1 or 10.
    method : str
        The reproduction's method name: ``"random"``, ``"dc"``, ``"md"``,
        ``"mda"``, ``"dc+dsa"``, ``"md+dsa"``, ``"mda+dsa"``, ``"md-bf16"``,
        ... (case and ``_``/``-`` do not matter); see :func:`list_condensed`.

    Returns
    -------
    X : ndarray
        The set a network trains on, in its saved layout and scale: float32
        ``(ipc * 10, 28, 28)`` in Fashion-MNIST's 0-255 pixel scale
        (condensed values lie outside it), not normalised. A multi-formation
        set (``"md-f2"``: factor 2) stores ``ipc`` images per class and gives
        their ``ipc * factor**2`` decoded images per class, as the condenser's
        ``transform()`` does.
    y : ndarray of shape (n_images,)
        Integer labels 0-9.
    info : dict
        The set's provenance from the package's manifest: ``method``,
        ``estimator`` and its ``settings``, ``seed``, ``K`` (outer
        iterations), ``cell`` (the reproduction cell that scored it) and
        ``set_index``; ``accuracy`` (mean, std and each of that set's
        evaluation networks, in %) and ``cell_accuracy`` (the cell's pooled
        figure) with their ``recipe`` (network, epochs, DSA or plain
        evaluation); ``also_evaluated`` (other cells that scored the same
        set); ``fit_seconds``, ``machine``, ``source`` (the file in the
        repository), ``made_with`` (the gradmatch version that wrote it);
        plus ``name``, ``path`` (the installed file, readable by
        :func:`gradmatch.load_set`), ``factor`` and ``stored_shape`` (the
        stored form's), ``classes`` and ``normalization`` (the
        real training data's per-channel mean and std, which evaluating the
        set needs, e.g. ``evaluate_set(X, y, X_test, y_test,
        normalization=info["normalization"])``).

    Raises
    ------
    ValueError
        When no released set has that name, ipc and method; the message lists those that exist.
    DatasetError
        When the installation lacks the package data.

    Examples
    --------
    >>> from gradmatch.datasets import load_condensed
    >>> X, y, info = load_condensed("fashion-mnist", ipc=1, method="md")
    >>> X.shape, y.tolist()
    ((10, 28, 28), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    >>> info["cell"], info["seed"], info["K"], info["recipe"]["epochs"]
    ('ipc1-md', 0, 100, 300)
    >>> info["accuracy"]["text"]
    '70.3 +- 0.5 (5 networks)'
    """
    from .io import load_set

    dataset = str(name).strip().lower().replace("_", "-")
    method_key = str(method).strip().lower().replace("_", "-")
    if isinstance(ipc, bool) or not isinstance(ipc, numbers.Integral):
        raise TypeError(f"ipc must be an integer, got {ipc!r}")
    manifest = _condensed_manifest()
    entry = manifest["sets"].get(_released_name(dataset, int(ipc), method_key))
    if entry is None:
        shipped = ", ".join(_released_name(*t) for t in list_condensed())
        raise ValueError(f"no released set {_released_name(dataset, int(ipc), method_key)!r} "
                         f"(from name={name!r}, ipc={ipc!r}, method={method!r}); released: {shipped}")
    path = _CONDENSED_DIR / entry["file"]
    if not path.is_file():
        raise DatasetError(f"the released set {entry['name']} is listed in the manifest but {path} is missing: "
                           "this installation of gradmatch was built without its package data")
    syn = load_set(path)
    info = copy.deepcopy(entry)
    info.update(path=str(path), classes=syn.classes, normalization=syn.normalization, factor=syn.factor,
                stored_shape=tuple(np.shape(syn.X_stored)))
    return np.asarray(syn.X), np.asarray(syn.y), info

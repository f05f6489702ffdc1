"""Dataset loaders that read local files and never download.

* :func:`load_digits_images`: scikit-learn's digits as ``(n, 8, 8)`` images.
* :func:`load_idx_dataset`: MNIST-style IDX files (``.gz`` or plain) from a
  folder, e.g. Fashion-MNIST from ``/usr/share/datasets/fashion-mnist/``
  (``apt-get install -y dataset-fashion-mnist``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["DatasetError", "read_idx", "load_idx_dataset", "load_fashion_mnist", "load_digits_images",
           "FASHION_MNIST_DIR"]

#: Where Debian's ``dataset-fashion-mnist`` package puts the files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
    except (OSError, EOFError) as err:
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


def load_idx_dataset(data_dir: str | os.PathLike, name: str = "dataset", how_to_get: str = ""):
    """Load ``(X_train, y_train), (X_test, y_test)`` from the four MNIST-style IDX files in a folder.

    Images come back as ``(n, 28, 28)`` uint8, labels as int64.
    """
    folder = Path(data_dir).expanduser()
    stems = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    found = {key: _find(folder, stem) for key, stem in stems.items()}
    missing = [stems[k] + "[.gz]" for k, v in found.items() if v is None]
    if missing:
        hint = f" {how_to_get}" if how_to_get else ""
        raise DatasetError(f"{name}: looked in {folder} for {', '.join(missing)} and did not find them.{hint}")
    arrays = {key: read_idx(path) for key, path in found.items()}
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DatasetError(f"{name}: {split} images ({n_img}) and labels ({n_lab}) differ in number in {folder}")
    return ((arrays["train_images"], arrays["train_labels"].astype(np.int64)),
            (arrays["test_images"], arrays["test_labels"].astype(np.int64)))


def load_fashion_mnist(data_dir: str | os.PathLike = FASHION_MNIST_DIR):
    """Fashion-MNIST from IDX files: ``(X_train, y_train), (X_test, y_test)``, uint8 ``(n, 28, 28)``."""
    return load_idx_dataset(
        data_dir, "Fashion-MNIST",
        "Install them with `apt-get install -y dataset-fashion-mnist` (files land in "
        f"{FASHION_MNIST_DIR}) or copy the four IDX files from the Fashion-MNIST release there.",
    )


def load_digits_images(test_size: float = 0.25, random_state: int = 0):
    """scikit-learn's digits as ``(n, 8, 8)`` float64 images, split stratified into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.reshape(-1, 8, 8), y, test_size=test_size, stratify=y, random_state=random_state)
    return (X_train, y_train), (X_test, y_test)

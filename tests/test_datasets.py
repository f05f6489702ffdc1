"""Dataset loaders: IDX parsing, torchvision layouts, CIFAR pickles (safely), SVHN .mat, by-name loading.

Every test writes its own tiny files in ``tmp_path``; nothing is downloaded. Only
``test_real_fashion_mnist`` reads a real dataset, and it is skipped where the
``dataset-fashion-mnist`` package is not installed.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradmatch import datasets
from gradmatch.datasets import (
    DATASET_NAMES,
    FASHION_MNIST_DIR,
    DatasetError,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_digits_images,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
    load_svhn,
    read_idx,
)

# --------------------------------------------------------------------------- IDX helpers

IDX_UBYTE = 0x08
STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, type_code: int = IDX_UBYTE, big_endian_dtype=None) -> bytes:
    """An IDX file's bytes: magic 0x00 0x00 <type> <ndim> (0x0803 for 3-D uint8 images,
    0x0801 for 1-D uint8 labels), the dims as big-endian uint32, then the data."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = array.astype(big_endian_dtype).tobytes() if big_endian_dtype else array.astype(np.uint8).tobytes()
    return header + data


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    raw = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def small_idx_arrays(n_train=6, n_test=4, side=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx_folder(folder: Path, gz: bool = True, arrays=None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays or small_idx_arrays()
    for key, stem in STEMS.items():
        write_idx(folder / stem, arrays[key], gz)
    return arrays


def check_idx_result(result, arrays):
    (X_train, y_train), (X_test, y_test) = result
    for got, key in ((X_train, "train_images"), (y_train, "train_labels"),
                     (X_test, "test_images"), (y_test, "test_labels")):
        np.testing.assert_array_equal(got, arrays[key])
    assert X_train.dtype == np.uint8 and X_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert X_train.shape == arrays["train_images"].shape and y_test.shape == arrays["test_labels"].shape


# --------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_read_idx_images_and_labels(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 0, 255], dtype=np.uint8)
    img_path = write_idx(tmp_path / "img", images, gz)
    lab_path = write_idx(tmp_path / "lab", labels, gz)
    assert (img_path.read_bytes() if not gz else gzip.decompress(img_path.read_bytes()))[:4] == b"\x00\x00\x08\x03"
    assert (lab_path.read_bytes() if not gz else gzip.decompress(lab_path.read_bytes()))[:4] == b"\x00\x00\x08\x01"
    got_images, got_labels = read_idx(img_path), read_idx(lab_path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.shape == (2, 3, 4)
    assert got_labels.dtype == np.uint8 and got_labels.shape == (3,)


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2], [70000, -70000]], dtype=np.int32)
    path = tmp_path / "ints"
    path.write_bytes(idx_bytes(values, type_code=0x0C, big_endian_dtype=">i4"))
    got = read_idx(path)
    np.testing.assert_array_equal(got, values)
    assert got.dtype == np.int32 and got.dtype.isnative


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=3), gz=st.booleans(), seed=st.integers(0, 2**16))
def test_read_idx_round_trip(tmp_path_factory, shape, gz, seed):
    array = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path_factory.mktemp("idx") / "a", array, gz)
    got = read_idx(path)
    assert got.shape == tuple(shape) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, array)


# --------------------------------------------------------------------------- load_idx_dataset

@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_load_idx_dataset_parses_all_four_files(tmp_path, gz):
    arrays = write_idx_folder(tmp_path, gz=gz)
    check_idx_result(load_idx_dataset(tmp_path), arrays)
    check_idx_result(load_mnist(tmp_path), arrays)
    check_idx_result(load_fashion_mnist(tmp_path), arrays)


def test_load_idx_dataset_accepts_dot_idx_names(tmp_path):
    arrays = small_idx_arrays()
    for key, stem in STEMS.items():
        write_idx(tmp_path / stem.replace("-idx", ".idx"), arrays[key], gz=False)
    check_idx_result(load_mnist(tmp_path), arrays)


@pytest.mark.parametrize("loader, sub", [(load_mnist, "MNIST/raw"), (load_fashion_mnist, "FashionMNIST/raw")])
def test_torchvision_root_layout_is_found(tmp_path, loader, sub):
    arrays = write_idx_folder(tmp_path / sub, gz=False)
    check_idx_result(loader(tmp_path), arrays)


def test_data_dir_itself_is_looked_in_before_the_torchvision_subfolder(tmp_path):
    direct = write_idx_folder(tmp_path, gz=True, arrays=small_idx_arrays(seed=1))
    write_idx_folder(tmp_path / "MNIST" / "raw", gz=True, arrays=small_idx_arrays(seed=2))
    check_idx_result(load_mnist(tmp_path), direct)


def test_missing_files_name_every_folder_looked_in(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    write_idx(tmp_path / STEMS["train_images"], small_idx_arrays()["train_images"], gz=True)
    with pytest.raises(DatasetError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and str(tmp_path / "MNIST" / "raw") in message
    assert "t10k-labels-idx1-ubyte" in message
    assert "download=True" in message and "MNIST/raw" in message  # how to get it
    assert isinstance(info.value, FileNotFoundError)


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install -y dataset-fashion-mnist") as info:
        load_fashion_mnist(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert str(tmp_path / "nowhere" / "FashionMNIST" / "raw") in str(info.value)


def _corrupt(folder: Path, how: str):
    arrays = small_idx_arrays()
    if how == "mismatch":
        arrays["test_labels"] = arrays["test_labels"][:-1]
        write_idx_folder(folder, gz=False, arrays=arrays)
        return
    gz = how in ("truncated-gz", "garbage-gz")
    paths = {key: write_idx(folder / stem, arrays[key], gz) for key, stem in STEMS.items()}
    target = paths["train_images"]
    raw = target.read_bytes()
    if how in ("truncated-data", "truncated-gz"):
        target.write_bytes(raw[: len(raw) - 7])
    elif how == "truncated-header":
        target.write_bytes(raw[:10])
    elif how == "wrong-magic":
        target.write_bytes(b"\x00\x00\x07\x03" + raw[4:])
    elif how == "not-idx":
        target.write_bytes(b"PK\x03\x04" + raw[4:])
    elif how == "garbage-gz":
        target.write_bytes(b"this is not gzip data at all")
    elif how == "swapped":
        paths["train_images"].write_bytes(paths["train_labels"].read_bytes())


@pytest.mark.parametrize("how", ["truncated-data", "truncated-gz", "truncated-header", "wrong-magic",
                                 "not-idx", "garbage-gz", "mismatch", "swapped"])
def test_corrupt_idx_files_raise_dataset_error_naming_the_folder(tmp_path, how):
    _corrupt(tmp_path, how)
    with pytest.raises(DatasetError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "download=True" in message  # the how-to-get hint rides along on corrupt files too


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "absent")


# --------------------------------------------------------------------------- CIFAR helpers

def cifar_rows(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def dump(path: Path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar10(root: Path, per_batch=(3, 2, 4, 1, 2), n_test=3, protocol=pickle.DEFAULT_PROTOCOL,
                  str_keys=False):
    folder = root / "cifar-10-batches-py"
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    batches = []
    for i, n in enumerate(list(per_batch) + [n_test]):
        data = cifar_rows(n, seed=i)
        labels = [int(v) for v in np.random.default_rng(100 + i).integers(0, 10, n)]
        name = f"data_batch_{i + 1}" if i < len(per_batch) else "test_batch"
        dump(folder / name, {key("batch_label"): key(name), key("labels"): labels, key("data"): data,
                             key("filenames"): [key(f"img{j}.png") for j in range(n)]}, protocol)
        batches.append((data, labels))
    return batches


def write_cifar100(root: Path, n_train=5, n_test=3):
    folder = root / "cifar-100-python"
    out = []
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        data = cifar_rows(n, seed)
        fine = [int(v) for v in np.random.default_rng(seed + 50).integers(0, 100, n)]
        coarse = [f // 5 for f in fine]
        dump(folder / split, {b"filenames": [b"x.png"] * n, b"batch_label": split.encode(),
                              b"fine_labels": fine, b"coarse_labels": coarse, b"data": data})
        out.append((data, fine))
    return out


def check_channel_first(X, rows):
    """X[i, c, h, w] must be row i's byte c*1024 + h*32 + w (CIFAR's red, green, blue planes)."""
    assert X.dtype == np.uint8 and X.shape == (len(rows), 3, 32, 32)
    for i, c, h, w in [(0, 0, 0, 0), (0, 1, 0, 0), (0, 2, 31, 31), (len(rows) - 1, 1, 5, 17), (0, 0, 1, 0)]:
        assert X[i, c, h, w] == rows[i, c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(X[:, 2].reshape(len(rows), -1), rows[:, 2048:])


def py2_cifar_pickle(data: np.ndarray, labels) -> bytes:
    """A batch pickled the way Python 2's cPickle wrote the real CIFAR files (protocol 2,
    ``numpy.core.multiarray._reconstruct``, str keys and array bytes as BINSTRINGs)."""

    def s(b):
        return b"U" + bytes([len(b)]) + b

    n, d = data.shape
    raw = data.tobytes()
    out = b"\x80\x02}q\x00(" + s(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
    out += b"(K\x01M" + struct.pack("<H", n) + b"M" + struct.pack("<H", d) + b"\x86"
    out += b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R(K\x03" + s(b"|")
    out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb"
    out += s(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    out += s(b"batch_label") + s(b"training batch 1 of 5") + b"u."
    return out


# --------------------------------------------------------------------------- CIFAR

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_loads_and_reshapes_channel_first(tmp_path, protocol):
    batches = write_cifar10(tmp_path, protocol=protocol)
    (X_train, y_train), (X_test, y_test) = load_cifar10(tmp_path)
    train_rows = np.concatenate([b[0] for b in batches[:5]])
    check_channel_first(X_train, train_rows)
    check_channel_first(X_test, batches[5][0])
    np.testing.assert_array_equal(X_train, train_rows.reshape(-1, 3, 32, 32))
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(y_train, sum((b[1] for b in batches[:5]), []))  # batch order 1..5
    np.testing.assert_array_equal(y_test, batches[5][1])


def test_cifar10_str_keys_and_batches_folder_as_root(tmp_path):
    batches = write_cifar10(tmp_path, str_keys=True)
    (X_train, _), (X_test, y_test) = load_cifar10(tmp_path / "cifar-10-batches-py")
    assert len(X_train) == sum(len(b[1]) for b in batches[:5])
    check_channel_first(X_test, batches[5][0])
    np.testing.assert_array_equal(y_test, batches[5][1])


def test_cifar10_python2_pickle_as_in_the_real_release(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(tmp_path)
    data = cifar_rows(4, seed=9)
    (folder / "test_batch").write_bytes(py2_cifar_pickle(data, [9, 0, 3, 3]))
    (_, _), (X_test, y_test) = load_cifar10(tmp_path)
    check_channel_first(X_test, data)
    np.testing.assert_array_equal(y_test, [9, 0, 3, 3])


def test_cifar100_fine_labels(tmp_path):
    (train_rows, train_fine), (test_rows, test_fine) = write_cifar100(tmp_path)
    (X_train, y_train), (X_test, y_test) = load_cifar100(tmp_path)
    check_channel_first(X_train, train_rows)
    check_channel_first(X_test, test_rows)
    np.testing.assert_array_equal(y_train, train_fine)
    np.testing.assert_array_equal(y_test, test_fine)
    assert y_train.dtype == np.int64


class _Evil:
    def __init__(self, call):
        self.call = call

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize("call", ["os.system", "eval", "getattr", "codecs"])
def test_malicious_cifar_pickle_is_refused(tmp_path, call):
    marker = tmp_path / "pwned"
    write_cifar10(tmp_path)
    payload = {
        "os.system": (os.system, (f"touch {marker}",)),
        "eval": (eval, (f"open({str(marker)!r}, 'w')",)),
        "getattr": (getattr, ("text", "upper")),
        "codecs": (__import__("codecs").encode, ("x", "rot13")),
    }[call]
    data = {b"data": cifar_rows(2, 0), b"labels": [0, 1], b"evil": _Evil(payload)}
    dump(tmp_path / "cifar-10-batches-py" / "data_batch_3", data, protocol=2)
    with pytest.raises(DatasetError, match="refus") as info:
        load_cifar10(tmp_path)
    assert "data_batch_3" in str(info.value)
    assert not marker.exists()


def test_refused_global_is_named(tmp_path):
    dump(tmp_path / "cifar-100-python" / "train", {b"data": _Evil((os.system, ("true",)))})
    dump(tmp_path / "cifar-100-python" / "test", {})
    with pytest.raises(DatasetError, match=r"(posix|nt|os)\.system"):
        load_cifar100(tmp_path)


def test_missing_cifar_files_say_where_and_how(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_4" in message
    assert "download=True" in message and "cifar-10-batches-py/" in message
    with pytest.raises(DatasetError, match="cifar-100-python") as info:
        load_cifar100(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value) and "CIFAR100(root, download=True)" in str(info.value)


@pytest.mark.parametrize("how", ["truncated", "garbage", "not-a-dict", "no-labels", "bad-shape", "bad-dtype",
                                 "count-mismatch", "label-range", "labels-not-int"])
def test_corrupt_cifar_batches_raise_dataset_error(tmp_path, how):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    rows = cifar_rows(3, 0)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif how == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:
        batch = {
            "not-a-dict": [rows],
            "no-labels": {b"data": rows},
            "bad-shape": {b"data": rows[:, :3000], b"labels": [0, 1, 2]},
            "bad-dtype": {b"data": rows.astype(np.float32), b"labels": [0, 1, 2]},
            "count-mismatch": {b"data": rows, b"labels": [0, 1]},
            "label-range": {b"data": rows, b"labels": [0, 1, 10]},
            "labels-not-int": {b"data": rows, b"labels": [b"a", b"b", b"c"]},
        }[how]
        dump(path, batch)
    with pytest.raises(DatasetError) as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value) and "download=True" in str(info.value)


# --------------------------------------------------------------------------- SVHN

def write_svhn(root: Path, n_train=5, n_test=3):
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        rng = np.random.default_rng(seed)
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0, 0] = 10  # digit zero
        savemat(root / f"{split}_32x32.mat", {"X": X, "y": y})
        out.append((X, y))
    return out


def test_svhn_loads_channel_first_and_maps_10_to_0(tmp_path):
    pytest.importorskip("scipy.io")
    (Xtr, ytr), (Xte, yte) = write_svhn(tmp_path)
    (X_train, y_train), (X_test, y_test) = load_svhn(tmp_path)
    for X, raw_X, y, raw_y in ((X_train, Xtr, y_train, ytr), (X_test, Xte, y_test, yte)):
        n = raw_X.shape[3]
        assert X.dtype == np.uint8 and X.shape == (n, 3, 32, 32)
        assert y.dtype == np.int64 and y.shape == (n,)
        np.testing.assert_array_equal(X, raw_X.transpose(3, 2, 0, 1))
        assert X[n - 1, 2, 7, 30] == raw_X[7, 30, 2, n - 1]  # X[i, c, h, w] == mat X[h, w, c, i]
        assert y[0] == 0 and y.min() >= 0 and y.max() <= 9
        np.testing.assert_array_equal(y, np.where(raw_y[:, 0] == 10, 0, raw_y[:, 0]))


def test_svhn_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_svhn(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "train_32x32.mat" in message and "download=True" in message
    pytest.importorskip("scipy.io")
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB garbage" * 10)
    with pytest.raises(DatasetError, match="test_32x32.mat"):
        load_svhn(tmp_path)
    from scipy.io import savemat

    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DatasetError, match=r"\(32, 32, 3, n\)"):
        load_svhn(tmp_path)


def test_svhn_without_scipy_says_pip_install_scipy(tmp_path, monkeypatch):
    for split in ("train", "test"):
        (tmp_path / f"{split}_32x32.mat").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match="pip install scipy"):
        load_svhn(tmp_path)


# --------------------------------------------------------------------------- load_dataset

def test_dataset_names():
    assert set(DATASET_NAMES) == {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn"}


def test_load_dataset_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in DATASET_NAMES:
        assert name in str(info.value)


def test_load_dataset_digits():
    (X_train, y_train), (X_test, y_test) = load_dataset("digits")
    assert X_train.shape == (1347, 8, 8) and X_test.shape == (450, 8, 8)
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("digits", "/somewhere")


@pytest.mark.parametrize("name", ["mnist", "MNIST", "fashion-mnist", "fashion_mnist", "Fashion-MNIST"])
def test_load_dataset_idx_names(tmp_path, name):
    arrays = write_idx_folder(tmp_path, gz=True)
    check_idx_result(load_dataset(name, tmp_path), arrays)


def test_load_dataset_32x32_names(tmp_path):
    write_cifar10(tmp_path)
    write_cifar100(tmp_path)
    assert load_dataset("cifar10", tmp_path)[1][0].shape == (3, 3, 32, 32)
    assert load_dataset("cifar100", str(tmp_path))[0][0].shape == (5, 3, 32, 32)
    if _has_scipy():
        write_svhn(tmp_path)
        assert load_dataset("svhn", tmp_path)[1][0].shape == (3, 3, 32, 32)


def _has_scipy():
    try:
        import scipy.io  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar100", "svhn"])
def test_load_dataset_missing_files_name_the_folder(tmp_path, name):
    with pytest.raises(DatasetError) as info:
        load_dataset(name, tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn"])
def test_load_dataset_without_default_location_needs_data_dir(name):
    with pytest.raises(DatasetError, match="pass data_dir") as info:
        load_dataset(name)
    assert "download=True" in str(info.value)


def test_load_dataset_fashion_mnist_default_dir(tmp_path, monkeypatch):
    assert datasets._DEFAULT_DIRS["fashion-mnist"] == FASHION_MNIST_DIR
    arrays = write_idx_folder(tmp_path, gz=True)
    monkeypatch.setitem(datasets._DEFAULT_DIRS, "fashion-mnist", str(tmp_path))
    check_idx_result(load_dataset("fashion-mnist"), arrays)


# --------------------------------------------------------------------------- digits

@pytest.mark.parametrize("test_size, n_test", [(0.25, 450), (0.5, 899), (0.1, 180)])
def test_digits_split_sizes_and_stratification(test_size, n_test):
    (X_train, y_train), (X_test, y_test) = load_digits_images(test_size=test_size, random_state=0)
    assert len(X_test) == len(y_test) == n_test and len(X_train) + len(X_test) == 1797
    assert X_train.shape[1:] == (8, 8) and X_train.dtype == np.float64
    full = np.bincount(np.concatenate([y_train, y_test]), minlength=10)
    test_counts = np.bincount(y_test, minlength=10)
    # stratified: every class's test share is its full count times test_size, give or take one
    assert np.all(np.abs(test_counts - full * test_size) <= 1)
    assert set(np.unique(y_train)) == set(range(10))


def test_digits_split_is_reproducible():
    (a, _), _ = load_digits_images(random_state=3)
    (b, _), _ = load_digits_images(random_state=3)
    (c, _), _ = load_digits_images(random_state=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --------------------------------------------------------------------------- the real thing

@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(),
                    reason=f"{FASHION_MNIST_DIR} absent (apt-get install -y dataset-fashion-mnist)")
def test_real_fashion_mnist():
    (X_train, y_train), (X_test, y_test) = load_fashion_mnist()
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert X_train.dtype == np.uint8 and y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)

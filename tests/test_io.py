"""Saving and loading sets (gradmatch.io), and pickles that load in a fresh CPU-only process.

``save_set`` writes a plain ``.npz`` that ``np.load(..., allow_pickle=False)`` reads;
``load_set`` reads it back without ever unpickling, and turns every foreign, corrupt or
malicious file into a ValueError that names the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

import gradmatch
from gradmatch import GradientMatchingCondenser, Herding, RandomCoreset
from gradmatch.io import FORMAT, FORMAT_VERSION, SyntheticSet, load_set, save_set, settings_as_saved

pytestmark = pytest.mark.usefixtures("torch_single_thread")

REPO = Path(__file__).resolve().parents[1]
KINDS = ("condenser", "herding", "random")
LETTERS = np.array(list("abcdefghij"))


def make(kind, fast, **params):
    if kind == "condenser":
        return GradientMatchingCondenser(ipc=1, **{**fast, **params})
    if kind == "herding":
        return Herding(**{"ipc": 1, "features": "pixels", **params})
    if kind == "random":
        return RandomCoreset(**{"ipc": 1, "random_state": 0, **params})
    raise AssertionError(kind)


def inputs(digits, dtype, labels):
    X, y = digits
    if dtype == "uint8":
        X = np.round(X * (255.0 / 16.0)).astype(np.uint8)
    if labels == "str":
        y = LETTERS[y]
    return X, y


def assert_same_set(loaded: SyntheticSet, est):
    X_syn, y_syn = est.transform()
    X_syn, y_syn = np.asarray(X_syn), np.asarray(y_syn)
    assert loaded.X.dtype == X_syn.dtype and loaded.X.shape == X_syn.shape
    np.testing.assert_array_equal(loaded.X, X_syn)
    assert loaded.y.dtype == y_syn.dtype
    assert loaded.y.tolist() == y_syn.tolist()
    assert loaded.classes.dtype == est.classes_.dtype
    assert loaded.classes.tolist() == est.classes_.tolist()
    assert loaded.input_shape == est.input_shape_
    assert loaded.normalization == est.normalization_
    assert loaded.method == type(est).__name__
    assert loaded.version == gradmatch.__version__
    if hasattr(est, "sample_indices_"):
        np.testing.assert_array_equal(loaded.sample_indices, est.sample_indices_)
        assert loaded.sample_indices.dtype == np.int64
    else:
        assert loaded.sample_indices is None
    if hasattr(est, "history_"):
        assert loaded.history == est.history_
    else:
        assert loaded.history is None


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", ["uint8", "float64"])
@pytest.mark.parametrize("labels", ["int", "str"])
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(digits, fast, tmp_path, kind, labels, dtype):
    X, y = inputs(digits, dtype, labels)
    est = make(kind, fast).fit(X, y)
    path = save_set(tmp_path / "set.npz", est)
    assert path == tmp_path / "set.npz"
    loaded = load_set(path)
    assert_same_set(loaded, est)
    # integer input gives float32, float input keeps its dtype, as transform() does
    assert loaded.X.dtype == (np.float32 if dtype == "uint8" else np.float64)
    assert loaded.y.dtype.kind == ("U" if labels == "str" else "i")
    X_arr, y_arr = loaded.arrays()
    np.testing.assert_array_equal(X_arr, est.transform()[0])
    np.testing.assert_array_equal(y_arr, est.transform()[1])
    X_arr[...] = 0  # arrays() hands out copies
    assert np.any(loaded.X != 0)


@pytest.mark.parametrize("kind", KINDS)
def test_as_tensor_dataset(digits, fast, tmp_path, kind):
    X, y = inputs(digits, "uint8", "str")
    est = make(kind, fast).fit(X, y)
    loaded = load_set(save_set(tmp_path / "set.npz", est))
    ds = loaded.as_tensor_dataset()
    assert isinstance(ds, torch.utils.data.TensorDataset)
    images, codes = ds.tensors
    assert images.dtype == torch.float32 and codes.dtype == torch.int64
    assert tuple(images.shape) == (10, 1, 8, 8)  # grey (n, 8, 8) become (n, C, H, W)
    np.testing.assert_array_equal(images.numpy().reshape(10, 8, 8), loaded.X)
    assert loaded.classes[codes.numpy()].tolist() == loaded.y.tolist()
    image, code = ds[3]
    assert tuple(image.shape) == (1, 8, 8) and code.dtype == torch.int64
    normed, _ = loaded.as_tensor_dataset(normalize=True).tensors
    mean, std = loaded.normalization["mean"][0], loaded.normalization["std"][0]
    np.testing.assert_allclose(normed.numpy(), (images.numpy() - mean) / std, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layout, params, expected_shape, tensor_shape",
    [
        ("flat", {}, None, (10, 64)),
        ("flat", {"input_shape": (1, 8, 8)}, (1, 8, 8), (10, 1, 8, 8)),
        ("nchw", {}, (1, 8, 8), (10, 1, 8, 8)),
    ],
)
def test_layouts(digits, fast, tmp_path, layout, params, expected_shape, tensor_shape):
    X, y = digits
    X = X.reshape(len(X), -1) if layout == "flat" else X[:, None]
    est = make("condenser", fast, **params).fit(X, y)
    loaded = load_set(save_set(tmp_path / "set.npz", est))
    assert_same_set(loaded, est)
    assert loaded.input_shape == expected_shape
    assert loaded.X.shape == X[:10].shape
    # flat features are normalised per feature, images per channel
    assert len(loaded.normalization["mean"]) == (64 if expected_shape is None else 1)
    assert tuple(loaded.as_tensor_dataset().tensors[0].shape) == tensor_shape
    assert tuple(loaded.as_tensor_dataset(normalize=True).tensors[0].shape) == tensor_shape


@pytest.mark.parametrize("kind", KINDS)
def test_torch_input_saves_numpy(digits, fast, tmp_path, kind):
    X, y = digits
    est = make(kind, fast).fit(torch.tensor(X, dtype=torch.float32, requires_grad=True), torch.tensor(y))
    X_syn, y_syn = est.transform()
    assert isinstance(X_syn, torch.Tensor)
    loaded = load_set(save_set(tmp_path / "set.npz", est))
    assert isinstance(loaded.X, np.ndarray) and loaded.X.dtype == np.float32
    np.testing.assert_array_equal(loaded.X, X_syn.numpy())
    np.testing.assert_array_equal(loaded.y, np.asarray(y_syn))


@pytest.mark.parametrize(
    "y_of",
    [
        lambda y: LETTERS[y].astype(object),  # strings in an object array
        lambda y: np.array([f"class {v}" for v in y]),  # longer unicode strings
        lambda y: y.astype(np.uint8) + 200,
        lambda y: y.astype(np.int64) - 2**40,
        lambda y: y.astype(np.float64) * 2.0,  # integral floats are class labels too
        lambda y: y % 2 == 0,  # booleans
        lambda y: np.array(["", "élan", "日本"])[y % 3],  # empty and non-ASCII strings
    ],
    ids=["object-str", "long-str", "uint8", "big-int", "float", "bool", "unicode"],
)
def test_labels_round_trip_exactly(digits, tmp_path, y_of):
    X, y = digits
    labels = y_of(y)
    est = RandomCoreset(ipc=2, random_state=0).fit(X, labels)
    loaded = load_set(save_set(tmp_path / "set.npz", est))
    assert loaded.y.dtype == est.y_syn_.dtype
    assert loaded.classes.dtype == est.classes_.dtype
    assert [type(v) for v in loaded.y.tolist()] == [type(v) for v in est.y_syn_.tolist()]
    assert loaded.y.tolist() == est.y_syn_.tolist()
    assert loaded.classes.tolist() == est.classes_.tolist()
    codes = loaded.as_tensor_dataset().tensors[1].numpy()
    assert loaded.classes[codes].tolist() == loaded.y.tolist()


def test_set_is_frozen(digits, tmp_path):
    loaded = load_set(save_set(tmp_path / "set.npz", RandomCoreset(random_state=0).fit(*digits)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.X = None
    assert "RandomCoreset" in repr(loaded)


# ------------------------------------------------------------------ metadata
def test_metadata_content(digits, fast, tmp_path):
    X, y = digits

    def stop_never(iteration, record):
        return False

    est = make("condenser", fast, callback=stop_never, distance=lambda a, b: ((a - b) ** 2).sum(),
               lr_syn=np.float64(0.2), normalization=(np.array([1.0]), 2.0)).fit(X, y)
    path = save_set(tmp_path / "set.npz", est)
    loaded = load_set(path)
    settings = loaded.settings
    params = est.get_params(deep=False)
    assert settings.keys() == params.keys()
    assert settings["ipc"] == 1 and settings["iterations"] == 1 and settings["model"] == "mlp"
    assert settings["random_state"] == 0 and settings["device"] == "cpu"
    assert settings["lr_syn"] == 0.2 and type(settings["lr_syn"]) is float
    assert settings["normalization"] == [[1.0], 2.0]
    # callables become their repr, never pickles
    assert settings["callback"] == repr(stop_never)
    assert settings["distance"].startswith("<function")
    assert loaded.normalization == {"mean": [1.0], "std": [2.0]}
    assert set(loaded.history) >= {"loss", "seconds", "network_steps"}
    assert len(loaded.history["loss"]) == est.n_iter_ == 1

    raw = np.load(path, allow_pickle=False)
    assert str(raw["format"]) == FORMAT and int(raw["format_version"]) == 1  # version 2 only for multi-formation sets
    meta = json.loads(str(raw["meta"]))
    assert meta["method"] == "GradientMatchingCondenser"
    assert meta["version"] == gradmatch.__version__
    assert meta["settings"] == settings


def test_dataset_name_travels_with_the_set(digits, tmp_path):
    est = RandomCoreset(ipc=1, random_state=0).fit(*digits)
    named = load_set(save_set(tmp_path / "named.npz", est, dataset="digits"))
    assert named.dataset == "digits" and "dataset='digits'" in repr(named)
    # Not given: None, and the meta entry has no such key (files from before it read the same).
    unnamed = tmp_path / "unnamed.npz"
    assert load_set(save_set(unnamed, est)).dataset is None
    with np.load(unnamed, allow_pickle=False) as raw:
        assert "dataset" not in json.loads(str(raw["meta"]))
    for bad in ("", "  ", 3, ["digits"]):
        with pytest.raises(TypeError, match="dataset should be a non-empty string"):
            save_set(tmp_path / "bad.npz", est, dataset=bad)
    assert not (tmp_path / "bad.npz").exists()


def test_object_parameters_become_their_repr(digits, tmp_path):
    rs = np.random.RandomState(0)
    est = RandomCoreset(ipc=1, random_state=rs, input_shape=[1, 8, 8]).fit(digits[0].reshape(300, -1),
                                                                         digits[1])
    loaded = load_set(save_set(tmp_path / "set.npz", est))
    assert loaded.settings == {"ipc": 1, "random_state": repr(rs), "input_shape": [1, 8, 8]}
    assert loaded.input_shape == (1, 8, 8)


@pytest.mark.parametrize("kind", KINDS)
def test_settings_as_saved_match_the_file(digits, fast, tmp_path, kind):
    # What a caller compares with a loaded set's settings to know it was made this way.
    est = make(kind, fast, random_state=np.int64(3))
    expected = settings_as_saved(est)
    assert expected["random_state"] == 3 and type(expected["random_state"]) is int
    assert load_set(save_set(tmp_path / "set.npz", est.fit(*digits))).settings == expected
    assert settings_as_saved(make(kind, fast, random_state=4)) != expected
    assert settings_as_saved(object()) == {}  # nothing to record without get_params


@pytest.mark.parametrize("kind", KINDS)
def test_file_loads_with_plain_numpy(digits, fast, tmp_path, kind):
    X, y = inputs(digits, "uint8", "str")
    est = make(kind, fast).fit(X, y)
    path = save_set(tmp_path / "set.npz", est)
    with np.load(path, allow_pickle=False) as raw:
        entries = {key: raw[key] for key in raw.files}
    assert all(isinstance(v, np.ndarray) and not v.dtype.hasobject for v in entries.values())
    np.testing.assert_array_equal(entries["X"], est.X_syn_)
    assert entries["y"].tolist() == est.y_syn_.tolist()
    assert entries["classes"].tolist() == est.classes_.tolist()
    assert tuple(entries["input_shape"]) == (1, 8, 8)
    assert entries["normalization.mean"].tolist() == est.normalization_["mean"]
    assert ("sample_indices" in entries) == (kind != "condenser")
    assert ("history.loss" in entries) == (kind == "condenser")
    with zipfile.ZipFile(path) as zf:  # a plain zip of .npy files
        assert sorted(zf.namelist()) == sorted(f"{key}.npy" for key in entries)


# ------------------------------------------------------------------ atomic write
def test_write_is_atomic_and_replaces(digits, tmp_path):
    X, y = digits
    first = RandomCoreset(ipc=1, random_state=0).fit(X, y)
    second = RandomCoreset(ipc=3, random_state=1).fit(X, LETTERS[y])
    target = tmp_path / "set.npz"
    save_set(str(target), first)
    assert os.listdir(tmp_path) == ["set.npz"]
    save_set(target, second)  # an existing file is replaced
    assert os.listdir(tmp_path) == ["set.npz"]
    assert_same_set(load_set(target), second)
    # the path is used as given: no suffix is added
    assert load_set(save_set(tmp_path / "set.bin", first)).X.shape == first.X_syn_.shape
    assert sorted(os.listdir(tmp_path)) == ["set.bin", "set.npz"]
    # the file gets the permissions an ordinary open() would give it
    (tmp_path / "plain").write_bytes(b"")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_failed_write_keeps_the_old_file(digits, tmp_path, monkeypatch):
    X, y = digits
    target = tmp_path / "set.npz"
    save_set(target, RandomCoreset(ipc=1, random_state=0).fit(X, y))
    before = target.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_set(target, RandomCoreset(ipc=2, random_state=0).fit(X, y))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["set.npz"]  # no temporary file left behind


def test_save_into_a_missing_folder(digits, tmp_path):
    est = RandomCoreset(random_state=0).fit(*digits)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_set(tmp_path / "nowhere" / "set.npz", est)
    with pytest.raises(IsADirectoryError, match="directory"):
        save_set(tmp_path, est)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_estimator(fast, tmp_path, kind):
    with pytest.raises(NotFittedError):
        save_set(tmp_path / "set.npz", make(kind, fast))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ bad files
@pytest.fixture
def good_file(digits, fast, tmp_path):
    est = make("condenser", fast).fit(digits[0], LETTERS[digits[1]])
    return save_set(tmp_path / "good.npz", est)


def _rewrite(src, dst, **changes):
    """A copy of a saved set with entries replaced (None deletes one)."""
    with np.load(src, allow_pickle=False) as raw:
        entries = {key: raw[key] for key in raw.files}
    for key, value in changes.items():
        if value is None:
            del entries[key]
        else:
            entries[key] = value
    np.savez(dst, **entries)
    return dst


def _truncate(keep):
    return lambda data: data[: keep(len(data))]


def _flip_a_byte_of_X(data: bytes) -> bytes:
    """Invert the last byte of X's values (inside the zip): the entry's CRC no longer matches."""
    import io
    import struct

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("X.npy")
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    last = info.header_offset + 30 + name_len + extra_len + info.compress_size - 1
    return data[:last] + bytes([data[last] ^ 0xFF]) + data[last + 1:]


BAD_BYTES = {
    "empty": (lambda data: b"", "truncated or corrupt"),
    "first-byte": (_truncate(lambda n: 1), "neither an .npz archive nor a .npy file"),
    "half": (_truncate(lambda n: n // 2), "truncated or corrupt"),
    "last-byte-missing": (_truncate(lambda n: n - 1), "truncated or corrupt"),
    "bit-flip": (_flip_a_byte_of_X, "cannot read entry 'X'"),
    "text": (lambda data: b"X,y\n1,2\n", "neither an .npz archive nor a .npy file"),
    "plain-pickle": (lambda data: pickle.dumps({"X": [1, 2]}), "never unpickles"),
}


@pytest.mark.parametrize("name", list(BAD_BYTES))
def test_corrupt_files(good_file, name):
    corrupt, match = BAD_BYTES[name]
    path = good_file.with_name("bad.npz")
    path.write_bytes(corrupt(good_file.read_bytes()))
    with pytest.raises(ValueError, match=re.escape(str(path))) as err:
        load_set(path)
    assert match in str(err.value)


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(X=None), "lacks the entries X"),
        (dict(format=None, meta=None), "lacks the entries format, meta"),
        (dict(format=np.array("something-else")), "format entry"),
        (dict(format_version=np.array(FORMAT_VERSION + 1)), f"format version {FORMAT_VERSION + 1} is not supported"),
        (dict(format_version=np.array(0)), "format version 0 is not supported"),
        (dict(meta=np.array("{not json")), "not valid JSON"),
        (dict(meta=np.array('{"method": "x"}')), "lacks 'settings'"),
        (dict(meta=np.frombuffer(b'{"method": 1}', dtype=np.uint8)), "should be a string"),
        (dict(meta=np.array('{"method": "x", "settings": {}, "version": "0", "dataset": 7}')),
         "'dataset' should be a string"),
        (dict(y=np.array(list("ab"))), "one label per sample"),
        (dict(y=np.array(list("abcdefghiz"))), "'z' of y is not one of the classes"),
        (dict(classes=np.array(list("aacdefghij"))), "duplicates"),
        (dict(X=np.array(["a"] * 64).reshape(1, 64)), "numeric array"),
        (dict(input_shape=np.array([2, 8, 8])), "does not match"),
        (dict(input_shape=np.array([1, 64])), "3 positive integers"),
        (dict(**{"normalization.std": np.array([0.0])}), "positive stds"),
        (dict(**{"normalization.mean": np.array([0.0, 1.0])}), "one per channel"),
        (dict(**{"history.loss": np.array(["a"])}), "history.loss"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_foreign_or_inconsistent_npz(good_file, changes, match):
    path = _rewrite(good_file, good_file.with_name("foreign.npz"), **changes)
    with pytest.raises(ValueError, match=re.escape(str(path))) as err:
        load_set(path)
    assert match in str(err.value)


def test_foreign_npz_and_npy(tmp_path):
    np.savez(tmp_path / "weights.npz", W=np.ones((2, 2)), b=np.zeros(2))
    with pytest.raises(ValueError, match=r"weights\.npz: not a gradmatch set: it lacks the entries "
                                         r"format, .* \(it has W, b\)"):
        load_set(tmp_path / "weights.npz")
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"array\.npy holds a single \.npy array"):
        load_set(tmp_path / "array.npy")
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as zf:
        for key in ("format", "format_version", "meta", "X", "y", "classes", "input_shape"):
            zf.writestr(f"{key}.npy", b"not an npy payload")
    with pytest.raises(ValueError, match="entry 'format' is not a numpy array"):
        load_set(tmp_path / "zip.npz")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "absent.npz"))):
        load_set(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="is a directory"):
        load_set(tmp_path)


class _Trap:
    """Unpickling this creates ``marker``: the proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("where", ["alone", "inside-a-valid-set"])
def test_malicious_pickle_is_refused(good_file, tmp_path, where):
    marker = tmp_path / "code-ran"
    trap = np.array([_Trap(marker)], dtype=object)
    path = tmp_path / "evil.npz"
    if where == "alone":
        np.savez(path, X=trap)  # an object array: numpy pickles it
    else:
        _rewrite(good_file, path, y=trap)
    with pytest.raises(ValueError, match=r"evil\.npz: the entries '(X|y)' are pickled object arrays; "
                                         r"load_set never unpickles"):
        load_set(path)
    assert not marker.exists()
    # the trap is real: numpy would have run it
    with np.load(path, allow_pickle=True) as raw:
        raw["X" if where == "alone" else "y"]
    assert marker.exists()


def test_unstorable_labels(digits, tmp_path):
    est = RandomCoreset(random_state=0).fit(*digits)
    est.y_syn_ = np.empty(10, dtype=object)
    est.y_syn_[:] = [(1, 2)] * 9 + [3]  # not plain labels
    with pytest.raises(TypeError, match="without pickle"):
        save_set(tmp_path / "set.npz", est)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ pickles
class _RecordingUnpickler(pickle.Unpickler):
    """Records every global a pickle references."""

    def __init__(self, fh):
        super().__init__(fh)
        self.globals = set()

    def find_class(self, module, name):
        self.globals.add((module, name))
        return super().find_class(module, name)


def _module_globals(data: bytes) -> set:
    """The globals of a pickle that are torch modules or live in torch.nn."""
    import io

    unpickler = _RecordingUnpickler(io.BytesIO(data))
    unpickler.load()
    bad = set()
    for module, name in list(unpickler.globals):
        obj = pickle.Unpickler.find_class(unpickler, module, name)
        if module.startswith("torch.nn") or (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
            bad.add(f"{module}.{name}")
    return bad


_CHILD = textwrap.dedent(
    """
    import io, json, pickle, sys
    import numpy as np
    import torch

    class Recorder(pickle.Unpickler):
        def __init__(self, fh):
            super().__init__(fh)
            self.globals = []
        def find_class(self, module, name):
            self.globals.append([module, name])
            return super().find_class(module, name)

    report = {"cuda": torch.cuda.is_available(), "globals": {}, "modules": {}}
    out = {}
    for name in sys.argv[2:]:
        with open(name + ".pkl", "rb") as fh:
            rec = Recorder(fh)
            est = rec.load()
        X, y = est.transform()
        report["globals"][name] = rec.globals
        resolved = [(m, n, pickle.Unpickler.find_class(rec, m, n)) for m, n in rec.globals]
        report["modules"][name] = [
            f"{m}.{n}" for m, n, obj in resolved
            if m.startswith("torch.nn") or (isinstance(obj, type) and issubclass(obj, torch.nn.Module))
        ]
        out[name + ".X"] = X.numpy() if isinstance(X, torch.Tensor) else X
        out[name + ".y"] = y.numpy() if isinstance(y, torch.Tensor) else y
        out[name + ".torch"] = np.array(isinstance(X, torch.Tensor))
    np.savez(sys.argv[1], **out)
    print(json.dumps(report))
    """
)


def test_pickle_loads_in_a_cpu_only_process(digits, fast, tmp_path):
    """Fit (on the GPU where there is one), pickle, unpickle where CUDA is hidden: same arrays."""
    X, y = digits
    fitted = {
        "condenser": make("condenser", fast, device="auto").fit(X, LETTERS[y]),
        "condenser_convnet": make("condenser", fast, device="auto", model="convnet").fit(
            torch.tensor(X, dtype=torch.float32), torch.tensor(y)),
        "herding_network": Herding(ipc=1, feature_epochs=1, device="auto", random_state=0).fit(X, y),
        "random": make("random", fast).fit(torch.tensor(X).to(torch.uint8), y),
    }
    for name, est in fitted.items():
        data = pickle.dumps(est)
        assert not _module_globals(data), name
        (tmp_path / f"{name}.pkl").write_bytes(data)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "out.npz"), *fitted],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["cuda"] is False
    with np.load(tmp_path / "out.npz", allow_pickle=False) as out:
        for name, est in fitted.items():
            assert report["modules"][name] == [], (name, report["globals"][name])
            X_syn, y_syn = est.transform()
            assert bool(out[f"{name}.torch"]) == isinstance(X_syn, torch.Tensor)
            X_syn = X_syn.numpy() if isinstance(X_syn, torch.Tensor) else X_syn
            y_syn = y_syn.numpy() if isinstance(y_syn, torch.Tensor) else y_syn
            assert out[f"{name}.X"].dtype == X_syn.dtype
            np.testing.assert_array_equal(out[f"{name}.X"], X_syn)
            assert out[f"{name}.y"].tolist() == y_syn.tolist()

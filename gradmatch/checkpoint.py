"""Checkpoints of a condensation run: keyed, atomic, and safe to load.

A checkpoint is a plain ``.npz`` (loaded with ``allow_pickle=False``, so a
foreign or malicious file can never execute code) named after a key: a hash
of the training data, the labels and a faithful description of every setting
that shapes the result (:func:`describe_setting`). A fit only ever resumes
from the file carrying its own key, so different data or settings never mix
and cloned estimators in a cross-validation write different files. A setting
that cannot be described (a lambda, a closure) makes a fit with a checkpoint
folder refuse to start rather than risk resuming a foreign run.

:class:`Checkpointer` is the component a fit uses: it owns the key, the path,
the interval and the saving and restoring; the estimator only says "an
iteration ended", "save now" and "what is there to resume".
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import numbers
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .atomic import write_npz_atomic

__all__ = ["FORMAT", "UndescribableSetting", "describe_setting", "describe_run", "run_key", "checkpoint_path",
           "save_checkpoint", "load_checkpoint", "Checkpointer", "NoCheckpoint"]

#: Format tag written into every checkpoint. Version 2 keys runs by a faithful
#: description of their settings (:func:`describe_setting`); version-1 files carry
#: other names and are never picked up.
FORMAT = "gradmatch-checkpoint-2"

#: Bytes of training data hashed at a time: the key never copies the whole set.
HASH_CHUNK_BYTES = 16 * 2**20


class UndescribableSetting(ValueError):
    """A setting has no description a later run could match (a lambda, a closure, ...)."""


def describe_setting(value) -> object:
    """A JSON-able description of a setting value, equal for equal settings.

    Plain values describe themselves; sequences and dicts item by item; numpy
    arrays by dtype, shape and a hash of their bytes; a ``RandomState`` or a
    numpy ``Generator`` by its state; ``functools.partial`` by its function
    and arguments; named functions and classes by module and qualified name
    (only when that name leads back to the same object); objects with
    ``get_params`` (estimators, :class:`~gradmatch.augment.DSA`) and
    dataclasses by their class and parameters.

    Raises
    ------
    UndescribableSetting
        For anything that cannot be described faithfully: lambdas, closures,
        other callables and objects.

    Examples
    --------
    >>> import functools
    >>> from gradmatch.networks import ConvNet
    >>> describe_setting(functools.partial(ConvNet, width=16))
    {'partial': 'gradmatch.networks:ConvNet', 'args': [], 'keywords': [['width', 16]]}
    >>> describe_setting(lambda t: 1)
    Traceback (most recent call last):
    ...
    gradmatch.checkpoint.UndescribableSetting: a lambda ...
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (np.bool_, numbers.Integral)):
        return value.item() if isinstance(value, np.generic) else int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [describe_setting(v) for v in value]
    if isinstance(value, Mapping):
        pairs = [[describe_setting(k), describe_setting(v)] for k, v in value.items()]
        return {"dict": sorted(pairs, key=lambda kv: json.dumps(kv[0], sort_keys=True))}
    return _describe_object(value)


def _describe_object(value) -> object:
    if isinstance(value, np.ndarray):
        return {"ndarray": [str(value.dtype), list(value.shape),
                            hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()]}
    if isinstance(value, np.random.RandomState):
        return {"RandomState": describe_setting(list(value.get_state(legacy=False).items()))}
    if isinstance(value, np.random.Generator):
        return {"Generator": describe_setting(value.bit_generator.state)}
    if isinstance(value, (torch.device, os.PathLike)):
        return str(value)
    if isinstance(value, functools.partial):
        return {"partial": describe_setting(value.func), "args": describe_setting(list(value.args)),
                "keywords": [[k, describe_setting(v)] for k, v in sorted(value.keywords.items())]}
    if isinstance(value, type) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return _named(value)
    if inspect.ismethod(value):
        return {"method": value.__func__.__name__, "of": describe_setting(value.__self__)}
    if hasattr(value, "get_params") and not isinstance(value, type):
        return {"object": _named(type(value)), "params": describe_setting(value.get_params())}
    if dataclasses.is_dataclass(value):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"object": _named(type(value)), "params": describe_setting(fields)}
    raise UndescribableSetting(f"a {type(value).__name__} object ({_short(value)}), which has no "
                               "parameters to describe it by")


def _named(obj) -> str:
    """``module:qualname`` of a function or class that this name leads back to."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if qualname == "<lambda>":
        raise UndescribableSetting(f"a lambda ({_short(obj)})")
    if "<locals>" in qualname:
        raise UndescribableSetting(f"a function defined inside another ({qualname})")
    found = None
    try:
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, TypeError, ValueError):
        found = None
    if found is not obj:
        raise UndescribableSetting(f"{qualname or _short(obj)}, whose name {module}.{qualname} does "
                                   "not lead back to it")
    return f"{module}:{qualname}"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def run_key(images: torch.Tensor, labels: torch.Tensor, classes: np.ndarray, settings: dict) -> str:
    """SHA-256 (hex) of the data, labels, classes and the description of ``settings``.

    The data are hashed in chunks of :data:`HASH_CHUNK_BYTES`, never copied whole.

    Raises
    ------
    UndescribableSetting
        Naming the setting, when one has no faithful description.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(describe_run(settings), sort_keys=True).encode())
    _hash_tensor(digest, images)
    _hash_tensor(digest, labels.to(torch.int64))
    digest.update(json.dumps(describe_setting(classes.tolist())).encode())
    return digest.hexdigest()


def describe_run(settings: dict) -> dict:
    """:func:`describe_setting` of every setting, the failure naming the setting."""
    described = {}
    for name, value in sorted(settings.items()):
        try:
            described[name] = describe_setting(value)
        except UndescribableSetting as err:
            raise UndescribableSetting(f"{name} is {err}") from None
    return described


def _hash_tensor(digest, tensor: torch.Tensor) -> None:
    tensor = tensor.detach()
    digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
    if tensor.dim() == 0 or tensor.numel() == 0:
        digest.update(tensor.reshape(-1).cpu().to(torch.float64).numpy().tobytes())
        return
    row_bytes = max(1, tensor[0].numel() * tensor.element_size())
    rows = max(1, HASH_CHUNK_BYTES // row_bytes)
    for start in range(0, tensor.shape[0], rows):
        chunk = tensor[start:start + rows].cpu().contiguous()
        if chunk.dtype == torch.bool:
            chunk = chunk.to(torch.uint8)
        digest.update(chunk.reshape(-1).view(torch.uint8).numpy())


def checkpoint_path(directory: str | os.PathLike, key: str, rank: int = 0, world_size: int = 1) -> Path:
    """Where the checkpoint of a run key lives; one file per rank in a sharded run."""
    suffix = "" if world_size <= 1 else f"-rank{rank}of{world_size}"
    return Path(directory).expanduser() / f"gradmatch-{key[:24]}{suffix}.npz"


def save_checkpoint(path: Path, state: dict, key: str) -> None:
    """Write ``state`` (from ``CondensationLoop.state``) atomically: temporary file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(__version__),
        "key": np.array(key),
        "syn": state["syn"],
        "generator": state["generator"],
        "global_rng": state["global_rng"],
        "iteration": np.array(state["iteration"], dtype=np.int64),
        "history": np.array(json.dumps(state["history"])),
    }
    if state.get("momentum") is not None:
        arrays["momentum"] = state["momentum"]
    if state.get("real_rows") is not None:  # representative real batches held (gradmatch.sampling)
        arrays["real_rows"] = np.array(json.dumps(state["real_rows"]))
    write_npz_atomic(path, arrays)


def load_checkpoint(path: Path, key: str) -> dict | None:
    """The state saved at ``path``, or None when there is no file.

    Raises
    ------
    ValueError
        If the file is truncated, corrupt, not a gradmatch checkpoint, or was
        written for other data or settings.
    """
    if not path.exists():
        return None
    hint = f"delete {path} to start over"
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            needed = {"format", "key", "syn", "generator", "global_rng", "iteration", "history"}
            if not needed <= files or str(npz["format"]) != FORMAT:
                raise ValueError(f"{path} is not a gradmatch checkpoint ({hint})")
            if str(npz["key"]) != key:
                raise ValueError(f"{path} was written for other data or settings (key mismatch; {hint})")
            return {
                "syn": npz["syn"],
                "momentum": npz["momentum"] if "momentum" in files else None,
                "generator": npz["generator"],
                "global_rng": npz["global_rng"],
                "iteration": int(npz["iteration"]),
                "history": json.loads(str(npz["history"])),
                **({"real_rows": json.loads(str(npz["real_rows"]))} if "real_rows" in files else {}),
            }
    except ValueError as err:
        if str(path) in str(err):
            raise
        if "pickle" in str(err):  # numpy's advice to load unsafely is never ours to give
            raise ValueError(f"checkpoint {path} is not an .npz archive (truncated, corrupt or another "
                             f"kind of file; it is never unpickled) ({hint})") from None
        raise ValueError(f"cannot read checkpoint {path}: {err} ({hint})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path} is truncated or corrupt: {err} ({hint})") from None


class NoCheckpoint:
    """The checkpointer of a fit without a checkpoint folder: nothing to resume, nothing saved."""

    path = None

    def restore(self) -> None:
        return None

    def iteration_done(self, iteration: int, state_at_boundary) -> None:
        pass

    def save(self, state: dict) -> None:
        pass


class Checkpointer:
    """Where and when a run saves its state, and what it resumes from.

    Parameters
    ----------
    folder : path
        The checkpoint folder; created when missing.
    key : str
        :func:`run_key` of the run.
    every : int
        Iterations between saves (a save also happens at the end, on Ctrl-C,
        on divergence and when a callback raises).
    rank, world_size : int
        This process and the number of processes of a sharded run.
    """

    def __init__(self, folder, key: str, every: int, rank: int = 0, world_size: int = 1):
        self.key, self.every = key, int(every)
        self.path = checkpoint_path(folder, key, rank, world_size)

    @staticmethod
    def probe(folder) -> None:
        """Fail now, naming the folder, when checkpoints could not be written there."""
        folder = Path(folder).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".gradmatch-probe-{os.getpid()}.tmp"
            probe.write_bytes(b"gradmatch")
            probe.unlink()
        except OSError as err:
            raise OSError(f"checkpoint folder {folder} cannot be written ({err.strerror or err}): give "
                          "a writable folder or checkpoint=None") from None

    def restore(self) -> dict | None:
        """The saved state of this run, or None when there is none (see :func:`load_checkpoint`)."""
        return load_checkpoint(self.path, self.key)

    def iteration_done(self, iteration: int, state_at_boundary) -> None:
        """Save every ``every`` iterations; ``state_at_boundary()`` gives the state to save."""
        if iteration % self.every == 0:
            self.save(state_at_boundary())

    def save(self, state: dict) -> None:
        """Write ``state``; a failure keeps the previous file and names the path and cause."""
        try:
            save_checkpoint(self.path, state, self.key)
        except OSError as err:
            raise OSError(f"could not save checkpoint {self.path} ({err.strerror or err}); the previous "
                          "checkpoint there, if any, is intact") from err

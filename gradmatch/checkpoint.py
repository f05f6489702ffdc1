"""Checkpoints of a condensation run: fingerprinted, atomic, and safe to load.

A checkpoint is a plain ``.npz`` (loaded with ``allow_pickle=False``, so a
foreign or malicious file can never execute code) named after a fingerprint of
the training data, the labels and the settings that shape the result. A fit
only ever resumes from the file carrying its own fingerprint, so different data
never mix and cloned estimators in a cross-validation write different files.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .atomic import write_npz_atomic

__all__ = ["FORMAT", "fingerprint", "checkpoint_path", "save_checkpoint", "load_checkpoint"]

#: Format tag written into every checkpoint.
FORMAT = "gradmatch-checkpoint-1"


def _describe(value) -> str:
    """A stable text for a parameter value (callables by qualified name, not by address)."""
    if callable(value) and not isinstance(value, type):
        module = getattr(value, "__module__", "?")
        name = getattr(value, "__qualname__", type(value).__qualname__)
        return f"<callable {module}.{name}>"
    return repr(value)


def fingerprint(images: torch.Tensor, labels: torch.Tensor, classes: np.ndarray, settings: dict) -> str:
    """SHA-256 of the data, the labels, the classes and the settings, as hex."""
    digest = hashlib.sha256()
    flat = images.detach().cpu().contiguous()
    digest.update(str((tuple(flat.shape), str(flat.dtype))).encode())
    view = flat.view(torch.uint8) if flat.dtype != torch.bool else flat.to(torch.uint8)
    digest.update(view.numpy().tobytes())
    digest.update(labels.detach().cpu().to(torch.int64).numpy().tobytes())
    digest.update(repr(classes.tolist()).encode())
    digest.update(json.dumps({k: _describe(v) for k, v in sorted(settings.items())}).encode())
    return digest.hexdigest()


def checkpoint_path(directory: str | os.PathLike, fp: str, rank: int = 0, world_size: int = 1) -> Path:
    """Where the checkpoint of a fingerprint lives; one file per rank in a sharded run."""
    suffix = "" if world_size <= 1 else f"-rank{rank}of{world_size}"
    return Path(directory).expanduser() / f"gradmatch-{fp[:20]}{suffix}.npz"


def save_checkpoint(path: Path, state: dict, fp: str) -> None:
    """Write ``state`` (from ``CondensationLoop.state``) atomically: temporary file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(__version__),
        "fingerprint": np.array(fp),
        "syn": state["syn"],
        "generator": state["generator"],
        "global_rng": state["global_rng"],
        "iteration": np.array(state["iteration"], dtype=np.int64),
        "history": np.array(json.dumps(state["history"])),
    }
    if state.get("momentum") is not None:
        arrays["momentum"] = state["momentum"]
    write_npz_atomic(path, arrays)


def load_checkpoint(path: Path, fp: str) -> dict | None:
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
            needed = {"format", "fingerprint", "syn", "generator", "global_rng", "iteration", "history"}
            if not needed <= files or str(npz["format"]) != FORMAT:
                raise ValueError(f"{path} is not a gradmatch checkpoint ({hint})")
            if str(npz["fingerprint"]) != fp:
                raise ValueError(
                    f"{path} was written for other data or settings (fingerprint mismatch; {hint})"
                )
            return {
                "syn": npz["syn"],
                "momentum": npz["momentum"] if "momentum" in files else None,
                "generator": npz["generator"],
                "global_rng": npz["global_rng"],
                "iteration": int(npz["iteration"]),
                "history": json.loads(str(npz["history"])),
            }
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"cannot read checkpoint {path}: {err} ({hint})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path} is truncated or corrupt: {err} ({hint})") from None

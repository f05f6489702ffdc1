"""Atomic file writes: a temporary file in the target's folder, then a rename.

Every file gradmatch writes (synthetic sets, checkpoints, JSON reports,
pictures) goes through :func:`write_atomic`, so a crash or a full disk
mid-write leaves the previous file intact and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["write_atomic", "write_bytes_atomic", "write_text_atomic", "write_npz_atomic"]


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder must exist.
    write : callable
        Gets the open binary file and writes the whole content to it.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> target = pathlib.Path(folder) / "note.txt"
    >>> write_atomic(target, lambda f: f.write(b"hello")).read_text()
    'hello'
    """
    path = Path(os.fspath(path))
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # os.open with mode 0o666 gives the new file the permissions the umask allows,
    # as open() would; O_EXCL never reuses someone else's file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda fh: fh.write(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an uncompressed ``.npz`` at ``path`` atomically."""
    return write_atomic(path, lambda fh: np.savez(fh, **arrays))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows it (POSIX); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Keeping freed memory in the process while a long CPU job runs (glibc only).

Why: the activations of a 256-image real batch are tensors of up to about
100 MB. glibc's ``malloc`` serves blocks that large with ``mmap`` and returns
them with ``munmap``, so every matching step maps, faults in and zeroes fresh
pages for each of them; on the 2-core development machine that was about a
third of a float32 matching step (docs/performance.md). Telling glibc never
to ``mmap`` and never to trim the heap keeps freed blocks for reuse instead.

This changes a process-wide setting, so it is confined to a block: the
learned reducers run their fit in one (``keep_freed_memory=True``, their
default, on the CPU), other code opts in around its own work, and the
previous behaviour comes back on exit, with the kept memory handed back to
the system.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator

__all__ = ["keep_freed_memory", "freed_memory_is_kept", "glibc_available", "GLIBC_TUNABLES_KEEP"]

# mallopt(3) parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: glibc's defaults for them, and the names of the matching glibc tunables.
_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_TUNABLE_NAMES = {_M_TRIM_THRESHOLD: "glibc.malloc.trim_threshold", _M_MMAP_MAX: "glibc.malloc.mmap_max"}
#: mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely."
_NEVER_TRIM = -1

#: The same setting for a whole process, from its start, through the environment
#: (tunables take no -1: a trim threshold of 64 GiB never triggers in practice).
GLIBC_TUNABLES_KEEP = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"

#: The help of the ``--keep-freed-memory`` option that commands owning their process offer.
OPTION_HELP = ("glibc: keep freed memory for reuse instead of mapping large tensors afresh at "
               "every step (a CPU float32 step took 0.6-0.7x the time, same results); peak "
               "memory can nearly double until the command ends")

_lock = threading.Lock()
_depth = 0
_libc = None


def _load_glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``gnu_get_libc_version``), else None."""
    global _libc
    if _libc is None:
        lib = False
        try:
            candidate = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(candidate, "gnu_get_libc_version") and hasattr(candidate, "mallopt"):
                candidate.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                candidate.mallopt.restype = ctypes.c_int
                candidate.malloc_trim.argtypes = [ctypes.c_size_t]
                candidate.malloc_trim.restype = ctypes.c_int
                lib = candidate
        except OSError:
            pass
        _libc = lib
    return _libc or None


def glibc_available() -> bool:
    """Whether this process runs on glibc, where :func:`keep_freed_memory` has an effect."""
    return _load_glibc() is not None


def freed_memory_is_kept() -> bool:
    """Whether a :func:`keep_freed_memory` block is active in this process."""
    return _depth > 0


def _environment_settings(env: str | None) -> dict[int, int]:
    """The two parameters' values as set by ``GLIBC_TUNABLES`` at start-up, where it sets them."""
    settings = {}
    for item in (env or "").replace(",", ":").split(":"):
        name, _, value = item.partition("=")
        for param, tunable in _TUNABLE_NAMES.items():
            if name.strip() == tunable:
                try:
                    settings[param] = int(value, 0)
                except ValueError:
                    pass
    return settings


def _restore_values() -> dict[int, int]:
    """What to set on exit: the start-up tunables where given, glibc's defaults otherwise.

    glibc has no getter for these parameters, so the values before entry cannot
    be read back; a program that called ``mallopt`` itself gets the defaults.
    """
    return {**_DEFAULTS, **_environment_settings(os.environ.get("GLIBC_TUNABLES"))}


def _as_c_int(value: int) -> int:
    # mallopt takes a C int; glibc reads a trim threshold as size_t, so a value
    # above INT_MAX (a tunable of 64 GiB) is passed as -1, "never trim".
    return int(value) if int(value) <= 2**31 - 1 else _NEVER_TRIM


@contextlib.contextmanager
def keep_freed_memory(release: bool = True, enabled: bool = True) -> Iterator[bool]:
    """Keep freed memory in the process for reuse while the block runs (glibc).

    Inside the block glibc's ``malloc`` neither serves large blocks with
    ``mmap`` nor trims its heap, so the large tensors that every training step
    allocates and frees are reused instead of being mapped, page-faulted and
    zeroed afresh. On the 2-core development machines a float32 matching
    step took 0.6-0.7x its usual time (see the performance guide), with the
    same results. The cost is memory: the heap fragments and what it grew to
    stays with the process until the block ends (peak 2.9 GiB against 1.5 GiB
    for an ipc-1 Fashion-MNIST step). tcmalloc, preloaded at process start,
    gains more with no such cost, but cannot be switched on from Python.

    It changes process-wide ``malloc`` settings (``mallopt``), which is why it
    is confined to a block; other threads allocating meanwhile are affected
    too. Blocks nest;
    the outermost restores the settings. Where the C library is not glibc
    (macOS, Windows, musl) the block runs unchanged and yields ``False``.

    Parameters
    ----------
    release : bool, default=True
        On leaving the outermost block, hand the kept free memory back to the
        system (``malloc_trim``).
    enabled : bool, default=True
        False runs the block unchanged (as ``torch.autocast(enabled=...)``), so
        a caller with an on/off option needs no second code path.

    Yields
    ------
    active : bool
        Whether freed memory is being kept (False where glibc is missing or
        ``enabled`` is False).

    Notes
    -----
    On exit the settings return to the values given by ``GLIBC_TUNABLES`` at
    start-up where it names them, glibc's defaults otherwise (glibc cannot
    report the values in force, so a program's own earlier ``mallopt`` calls
    are not restored). To get the same effect for a whole process without
    code, start it with ``GLIBC_TUNABLES`` set to :data:`GLIBC_TUNABLES_KEEP`.

    Examples
    --------
    >>> from gradmatch.memory import keep_freed_memory, freed_memory_is_kept
    >>> with keep_freed_memory() as active:
    ...     inside = freed_memory_is_kept()
    >>> inside == active, freed_memory_is_kept()
    (True, False)
    """
    global _depth
    libc = _load_glibc() if enabled else None
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for param, value in _restore_values().items():
                    libc.mallopt(param, _as_c_int(value))
                if release:
                    libc.malloc_trim(0)

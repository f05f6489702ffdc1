"""Devices and seeding: where tensors live and where randomness comes from."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["resolve_device", "seed_from", "make_generator", "isolated_rng", "resolve_precision", "cpu_has_bf16",
           "cpu_description", "PRECISIONS"]


def resolve_device(device) -> torch.device:
    """``"auto"`` picks CUDA when available; anything else must name a usable device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N' ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    if dev.type == "meta":
        raise ValueError("device='meta' holds no values; use 'auto', 'cpu' or 'cuda'")
    return dev


def seed_from(random_state) -> int:
    """A 63-bit seed drawn from ``random_state`` (int, RandomState or None), sklearn style."""
    rs = check_random_state(random_state)
    hi, lo = rs.randint(0, 2**31, size=2, dtype=np.int64)
    return int((hi << 31) | lo)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch Generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


@contextlib.contextmanager
def isolated_rng(seed: int, device: torch.device):
    """Run the block with the global torch RNG seeded from ``seed``, restored afterwards.

    The caller's global RNG state (CPU and the CUDA device in use) is left as it was.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed) % (2**63))
        yield


@contextlib.contextmanager
def torch_threads(n_threads: int | None):
    """Run the block with ``n_threads`` torch intra-op threads, the caller's count restored after.

    None leaves the count as it is.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if n_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: Values of the condenser's ``precision`` parameter.
PRECISIONS = ("float32", "bf16")

#: CPU feature flags (Linux ``/proc/cpuinfo``) that give bf16 arithmetic in hardware.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def parse_cpuinfo(text: str) -> tuple[str | None, frozenset[str]]:
    """The first CPU's model name and feature flags in the text of ``/proc/cpuinfo``.

    Either is empty where the text has no such line (ARM kernels name the
    flags ``Features`` and often give no model name).
    """
    name, flags = None, frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name is None:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return name, flags


def _read_cpuinfo() -> tuple[str | None, frozenset[str]] | None:
    """:func:`parse_cpuinfo` of this machine's ``/proc/cpuinfo``, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            return parse_cpuinfo(f.read())
    except OSError:
        return None


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX), as far as we can tell.

    Reads the flags of ``/proc/cpuinfo``; elsewhere (no such file) answers
    False, so bf16 is never chosen on a CPU that would emulate it slowly.
    """
    info = _read_cpuinfo()
    if info is None:
        return False
    return any(flag in info[1] for flag in BF16_CPU_FLAGS) and torch.backends.mkldnn.is_available()


def describe_cpu(name: str | None, flags: frozenset[str]) -> str:
    """``"<model name> (<widest vector extension>)"``, e.g. ``"AMD EPYC (avx512_bf16)"``."""
    import platform

    widest = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags), "no AVX2")
    return f"{name or platform.machine()} ({widest})"


def cpu_description() -> str:
    """This CPU's model name and its widest vector extension, e.g. ``"AMD EPYC (avx512_bf16)"``.

    Benchmarks record it: virtual machines of one model name differ in what
    they expose (AVX2 only, or AVX-512 with bf16), and timings with them.
    """
    import platform

    info = _read_cpuinfo()
    if info is None:
        return platform.processor() or platform.machine()
    return describe_cpu(*info)


def resolve_precision(precision, device: torch.device, name: str = "precision") -> tuple[str, str | None]:
    """The precision to run with on ``device``, and a warning when bf16 falls back to float32.

    ``name`` is the parameter the value came from, for the messages.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        valid = ", ".join(map(repr, PRECISIONS))
        raise ValueError(f"unknown {name} {precision!r}: valid values are {valid}")
    if precision == "float32":
        return precision, None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", None
        return "float32", f"{name}='bf16' asked for, but {torch.cuda.get_device_name(device)} has no bf16 support"
    if device.type == "cpu" and cpu_has_bf16():
        return "bf16", None
    return "float32", (f"{name}='bf16' asked for, but this {device.type} has no bf16 hardware "
                       f"(CPU flags {' or '.join(BF16_CPU_FLAGS)}); running in float32")

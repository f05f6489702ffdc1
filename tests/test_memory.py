"""keep_freed_memory: glibc keeps freed blocks for reuse inside the block, and not after."""

from __future__ import annotations

import ctypes
import os
import resource

import numpy as np
import pytest

from gradmatch import memory
from gradmatch.memory import freed_memory_is_kept, glibc_available, keep_freed_memory

#: Larger than glibc's largest dynamic mmap threshold (32 MiB on 64-bit), so
#: by default every allocation of it is a fresh mmap.
BLOCK = 64 * 2**20


def _faults_per_reuse(rounds: int = 4) -> float:
    """Minor page faults per allocate-touch-free round of a BLOCK, after a first one."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def one_round():
        ptr = libc.malloc(BLOCK)
        assert ptr, "malloc failed"
        ctypes.memset(ptr, 1, BLOCK)  # touch every page
        libc.free(ptr)

    one_round()
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        one_round()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / rounds


@pytest.fixture
def fault_baseline():
    """Page faults per round outside any block; skips where glibc already keeps memory."""
    if not glibc_available():
        pytest.skip("not glibc: keep_freed_memory does nothing here")
    if "mmap" in os.environ.get("GLIBC_TUNABLES", "") or "trim" in os.environ.get("GLIBC_TUNABLES", ""):
        pytest.skip("GLIBC_TUNABLES already changes malloc's mmap or trim settings")
    outside = _faults_per_reuse()
    if outside < 16:  # e.g. a malloc that keeps memory anyway: nothing to compare
        pytest.skip(f"only {outside:.0f} page faults per 64 MiB round outside a block")
    return outside


def test_inside_the_block_a_freed_large_block_is_reused_without_page_faults(fault_baseline):
    # Outside, each round maps fresh pages (4 KiB pages: about 16,000 faults;
    # fewer with transparent huge pages), inside the block the freed block is reused.
    with keep_freed_memory() as active:
        assert active and freed_memory_is_kept()
        assert _faults_per_reuse() < 0.05 * fault_baseline
    # After the block glibc's mmap behaviour is back.
    assert not freed_memory_is_kept()
    assert _faults_per_reuse() > 0.5 * fault_baseline


def test_blocks_nest_and_only_the_outermost_restores(fault_baseline):
    with keep_freed_memory():
        with keep_freed_memory():
            pass
        assert freed_memory_is_kept()
        assert _faults_per_reuse() < 0.05 * fault_baseline
    assert not freed_memory_is_kept()
    assert _faults_per_reuse() > 0.5 * fault_baseline


def test_the_settings_are_restored_when_the_block_raises(fault_baseline):
    with pytest.raises(KeyError), keep_freed_memory():
        raise KeyError("boom")
    assert not freed_memory_is_kept()
    assert _faults_per_reuse() > 0.5 * fault_baseline


def test_exit_restores_what_glibc_tunables_set_at_start_up(monkeypatch):
    calls = []

    class Recorder:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(memory, "_load_glibc", lambda: Recorder())
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=7:glibc.malloc.trim_threshold=68719476736")
    with keep_freed_memory(release=False):
        assert calls == [(memory._M_MMAP_MAX, 0), (memory._M_TRIM_THRESHOLD, -1)]
    # mmap_max back to the start-up 7; a trim threshold above INT_MAX is -1 ("never").
    assert sorted(calls[2:]) == sorted([(memory._M_MMAP_MAX, 7), (memory._M_TRIM_THRESHOLD, -1)])
    calls.clear()
    monkeypatch.delenv("GLIBC_TUNABLES")
    with keep_freed_memory():
        pass
    assert calls[2:] == [(memory._M_TRIM_THRESHOLD, 128 * 1024), (memory._M_MMAP_MAX, 65536), ("trim", 0)]


def test_environment_settings_parse_only_the_two_tunables():
    parse = memory._environment_settings
    assert parse(None) == {} and parse("") == {}
    assert parse("glibc.malloc.tcache_count=0:glibc.malloc.mmap_max=0") == {memory._M_MMAP_MAX: 0}
    assert parse("glibc.malloc.trim_threshold=0x100:glibc.malloc.mmap_max=bad") == {memory._M_TRIM_THRESHOLD: 256}


def test_without_glibc_the_block_runs_unchanged_and_says_so(monkeypatch):
    monkeypatch.setattr(memory, "_load_glibc", lambda: None)
    ran = False
    with keep_freed_memory() as active:
        ran = True
        assert active is False and not freed_memory_is_kept()
    assert ran


def test_the_same_random_state_gives_the_same_set_with_or_without_kept_memory(fast):
    # malloc's settings move where memory comes from, never the arithmetic:
    # torch aligns every CPU tensor itself, so kernels take the same paths.
    # 28x28 images in batches of 128 make activations of about 50 MB, which
    # glibc maps afresh by default and reuses inside the block.
    from gradmatch import GradientMatchingCondenser

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(390, 28, 28)).astype(np.uint8)
    y = np.arange(390) % 3
    params = {**fast, "model": "convnet", "matching_steps": 1, "network_steps": 1, "batch_real": 128}
    plain = GradientMatchingCondenser(**params).fit(X, y).X_syn_
    with keep_freed_memory():
        kept = GradientMatchingCondenser(**params).fit(X, y).X_syn_
    np.testing.assert_array_equal(plain, kept)


# ---------------------------------------------------------------- the learned reducers' defaults
def _fit_recording(X, y, **params):
    """Fit a tiny condenser; return it and what each iteration saw of threads and malloc settings."""
    import torch

    from gradmatch import GradientMatchingCondenser
    from gradmatch.memory import freed_memory_is_kept

    seen = []
    est = GradientMatchingCondenser(ipc=1, iterations=2, matching_steps=1, batch_real=8, model="mlp",
                                    device="cpu", random_state=0,
                                    callback=lambda i, r: seen.append((torch.get_num_threads(),
                                                                       freed_memory_is_kept())),
                                    **params).fit(X, y)
    return est, seen


def test_a_fit_keeps_freed_memory_by_default_with_the_same_set(digits):
    from gradmatch.memory import freed_memory_is_kept

    X, y = digits
    kept, seen_kept = _fit_recording(X, y)
    plain, seen_plain = _fit_recording(X, y, keep_freed_memory=False)
    assert [k for _, k in seen_kept] == [glibc_available()] * 2
    assert [k for _, k in seen_plain] == [False, False]
    assert not freed_memory_is_kept()  # restored after the fit
    np.testing.assert_array_equal(kept.X_syn_, plain.X_syn_)


def test_n_threads_applies_during_the_fit_and_the_callers_count_comes_back(digits):
    import torch

    X, y = digits
    before = torch.get_num_threads()
    _, seen = _fit_recording(X, y, n_threads=1)
    assert [n for n, _ in seen] == [1, 1] and torch.get_num_threads() == before
    _, seen = _fit_recording(X, y)
    assert [n for n, _ in seen] == [before, before]

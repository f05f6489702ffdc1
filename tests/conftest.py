"""Shared fixtures: scikit-learn's digits as small image sets, and fast estimator settings.

Everything here is cheap: digits is bundled with scikit-learn (no download), and the
subsets are small enough that a condensation iteration takes a fraction of a second
on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

#: Samples per class of the small training subset used by most tests.
PER_CLASS = 30

#: Settings of the condenser that keep one fit well under a second on a CPU:
#: one iteration, one matching step (so no network steps), small real batches and
#: DC's MLP, which is far cheaper than the ConvNet. Tests of the ConvNet, of the
#: matching rules and of the schedules override these.
FAST_CONDENSER = dict(
    iterations=1,
    matching_steps=1,
    network_steps=0,
    schedule="fixed",
    batch_real=16,
    model="mlp",
    device="cpu",
    random_state=0,
)


def class_subset(y, per_class, offset=0):
    """Row indices of ``per_class`` samples of each class, starting at ``offset``."""
    return np.concatenate(
        [np.flatnonzero(y == c)[offset : offset + per_class] for c in np.unique(y)]
    )


@pytest.fixture(scope="session")
def digits_all():
    """All of digits: images ``(1797, 8, 8)`` float64 in 0..16 and int labels."""
    data = load_digits()
    return data.images.astype(np.float64), data.target.astype(np.int64)


@pytest.fixture(scope="session")
def digits(digits_all):
    """``PER_CLASS`` images of each of the 10 classes: ``(300, 8, 8)`` float64, labels."""
    X, y = digits_all
    idx = class_subset(y, PER_CLASS)
    return X[idx].copy(), y[idx].copy()


@pytest.fixture(scope="session")
def digits_test(digits_all):
    """A disjoint held-out set of 20 images per class (8x8), for evaluation tests."""
    X, y = digits_all
    idx = class_subset(y, 20, offset=PER_CLASS)
    return X[idx].copy(), y[idx].copy()


@pytest.fixture(scope="session")
def digits_flat(digits):
    """The same subset as flat features ``(300, 64)``."""
    X, y = digits
    return X.reshape(len(X), -1).copy(), y


@pytest.fixture(scope="session")
def digits_uint8(digits):
    """The subset scaled to 0..255 and stored as uint8 ``(300, 8, 8)``."""
    X, y = digits
    return np.round(X * (255.0 / 16.0)).astype(np.uint8), y


@pytest.fixture
def fast():
    """A fresh copy of :data:`FAST_CONDENSER` that a test may modify."""
    return dict(FAST_CONDENSER)


@pytest.fixture(scope="module")
def reproduce():
    """The package benchmarks/reproduce/ with its modules, imported from benchmarks/ as its command line does."""
    import importlib
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        package = importlib.import_module("reproduce")
        for name in ("budgets", "methods", "paper", "report", "runner"):
            importlib.import_module(f"reproduce.{name}")
        yield package
    finally:
        sys.path.remove(folder)


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run a module's tests with one torch thread, restoring the setting afterwards.

    The networks here are tiny, so a second thread buys nothing, while OpenMP's
    busy-waiting makes two threads on a two-core machine that is also running
    something else orders of magnitude slower. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("torch_single_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

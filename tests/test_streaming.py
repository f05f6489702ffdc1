"""A torch Dataset too large for memory: per-class pools read batches from it directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradmatch import GradientMatchingCondenser
from gradmatch.data import DatasetPools

pytestmark = pytest.mark.usefixtures("torch_single_thread")


class CountingDataset(torch.utils.data.Dataset):
    """(image, label) pairs that record which items were read."""

    def __init__(self, X, y, targets=True):
        self.X = torch.as_tensor(X, dtype=torch.float32)
        self.y = torch.as_tensor(y)
        if targets:
            self.targets = self.y.tolist()
        self.reads = []

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        self.reads.append(i)
        return self.X[i], self.y[i]


SETTINGS = dict(ipc=2, iterations=2, matching_steps=2, network_steps=1, schedule="fixed",
                batch_real=8, random_state=0, device="cpu")


@pytest.mark.parametrize("targets", [True, False])
def test_streamed_equals_in_memory(digits, targets):
    X, y = digits
    ds = CountingDataset(X, y, targets=targets)
    in_memory = GradientMatchingCondenser(in_memory=True, **SETTINGS).fit(ds)
    streamed_ds = CountingDataset(X, y, targets=targets)
    streamed = GradientMatchingCondenser(in_memory=False, **SETTINGS).fit(streamed_ds)
    np.testing.assert_allclose(streamed.transform()[0].numpy(), in_memory.transform()[0].numpy(),
                               rtol=1e-5, atol=1e-6)
    for key in ("mean", "std"):
        assert streamed.normalization_[key] == pytest.approx(in_memory.normalization_[key])


def test_streamed_reads_batches_not_the_whole_set(digits):
    X, y = digits
    ds = CountingDataset(X, y)
    pools = DatasetPools(ds, torch.as_tensor(y), 10, _identity(), torch.device("cpu"), (1, 8, 8))
    gen = torch.Generator().manual_seed(0)
    images, labels = pools.sample(3, 5, gen)
    assert images.shape == (5, 1, 8, 8) and labels.tolist() == [3] * 5
    assert len(ds.reads) == 5 and all(y[i] == 3 for i in ds.reads)


def test_auto_streams_only_large_datasets(digits, monkeypatch):
    import gradmatch.validation as validation

    X, y = digits
    ds = CountingDataset(X, y)
    GradientMatchingCondenser(**SETTINGS).fit(ds)          # small: stacked once
    stacked_reads = len(ds.reads)
    assert stacked_reads >= len(X)
    monkeypatch.setattr(validation, "IN_MEMORY_BYTES", 100)
    monkeypatch.setattr(validation, "STREAM_SAMPLE", 50)
    ds2 = CountingDataset(X, y)
    est = GradientMatchingCondenser(**SETTINGS).fit(ds2)    # "large": streamed
    assert est.X_syn_.shape == (20, 8, 8)
    # A 50-item sample, two trial items and the real batches: far fewer than a full pass each step.
    assert len(ds2.reads) < 2 * 2 * 10 * 8 + 50 + 10


def test_bad_in_memory_value(digits):
    X, y = digits
    with pytest.raises(ValueError, match="The 'in_memory' parameter of \\w+ must be an instance of 'bool'"):
        GradientMatchingCondenser(in_memory="sometimes", **SETTINGS).fit(CountingDataset(X, y))


def _identity():
    from gradmatch.data import Normalization

    return Normalization((0.0,), (1.0,))

"""Hypothesis fuzzing of bad input: every malformed case is a ValueError or TypeError.

Each case starts from a valid subset of digits and breaks one thing (a value, a
position, a parameter, an item of a Dataset), drawn by hypothesis. Whatever the
draw, ``fit`` must raise a ValueError or TypeError with a non-empty message, never
a raw torch RuntimeError, an IndexError or a crash, and leave ``get_params()`` as
it was. ``tests/test_bad_input.py`` holds the hand-written cases with their exact
messages; this file explores around them.

Torch tensors that require grad are valid input: they are used detached.

Inputs found once to fail the wrong way are kept at the end (``REGRESSIONS``) as
regression cases.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradmatch import GradientMatchingCondenser, Herding, RandomCoreset

pytestmark = pytest.mark.usefixtures("torch_single_thread")

KINDS = ("condenser", "herding", "random")
LETTERS = np.array(list("abcdefghij"))
PER_CLASS = 5

#: Examples per hypothesis test. The default keeps the file well under a minute and is
#: derandomized (the same examples on every run); ``GRADMATCH_FUZZ_EXAMPLES=500`` explores
#: further, with fresh random draws each run.
EXAMPLES = int(os.environ.get("GRADMATCH_FUZZ_EXAMPLES", "0")) or None

FUZZ = settings(
    max_examples=EXAMPLES or 40,
    deadline=None,
    derandomize=EXAMPLES is None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Valid input that runs whole fits: fewer examples.
FUZZ_FITS = settings(FUZZ, max_examples=EXAMPLES or 20)


@pytest.fixture(scope="module")
def small(digits):
    """``PER_CLASS`` digits of each class: ``(50, 8, 8)`` float64 and int labels."""
    X, y = digits
    idx = np.concatenate([np.flatnonzero(y == c)[:PER_CLASS] for c in range(10)])
    return X[idx].copy(), y[idx].copy()


def make(kind, fast, **params):
    if kind == "condenser":
        return GradientMatchingCondenser(**{"ipc": 1, **fast, **params})
    if kind == "herding":
        return Herding(**{"ipc": 1, "features": "pixels", "device": "cpu", **params})
    if kind == "random":
        return RandomCoreset(**{"ipc": 1, "random_state": 0, **params})
    raise AssertionError(kind)


def as_layout(X, layout):
    return {"flat": lambda: X.reshape(len(X), -1), "grey": lambda: X, "nchw": lambda: X[:, None]}[layout]()


@dataclass
class Case:
    """One malformed input: ``fit(X, y)`` with ``params`` must raise ``exc`` matching ``match``."""

    X: object
    y: object
    params: dict = field(default_factory=dict)
    exc: tuple = (ValueError, TypeError)
    match: str | None = None


def assert_refused(est, case: Case):
    """fit raises a ValueError/TypeError with a message, and get_params() is untouched."""
    before = est.get_params(deep=False)
    with pytest.raises(case.exc, match=case.match) as err:
        est.fit(case.X, case.y)
    assert isinstance(err.value, (ValueError, TypeError))
    assert str(err.value).strip(), f"{type(err.value).__name__} without a message"
    after = est.get_params(deep=False)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value, key


# ---------------------------------------------------------------- corruptions
def nonfinite_X(data, X, y):
    value = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]), label="value")
    i = data.draw(st.integers(0, len(X) - 1), label="row")
    r, c = data.draw(st.tuples(st.integers(0, 7), st.integers(0, 7)), label="pixel")
    container = data.draw(st.sampled_from(
        ["numpy64", "numpy32", "flat", "nchw", "list", "torch64", "torch32", "torch16", "dataset"]),
        label="container")
    X = X.copy()
    X[i, r, c] = value
    X = {
        "numpy64": lambda: X,
        "numpy32": lambda: X.astype(np.float32),
        "flat": lambda: X.reshape(len(X), -1),
        "nchw": lambda: X[:, None],
        "list": lambda: X.tolist(),
        "torch64": lambda: torch.tensor(X),
        "torch32": lambda: torch.tensor(X, dtype=torch.float32),
        "torch16": lambda: torch.tensor(X, dtype=torch.float16),
        "dataset": lambda: torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y)),
    }[container]()
    return Case(X, None if container == "dataset" else y, exc=ValueError, match=r"(?i)NaN|infinity")


def empty_input(data, X, y):
    variant = data.draw(st.sampled_from(
        ["numpy", "torch", "X-only", "y-only", "list", "flat", "dataset", "one-sample"]), label="variant")
    if variant == "numpy":
        return Case(X[:0], y[:0], exc=ValueError)
    if variant == "torch":
        return Case(torch.tensor(X[:0]), torch.tensor(y[:0]), exc=ValueError, match="empty")
    if variant == "X-only":
        return Case(X[:0], y, exc=ValueError, match="0 sample")
    if variant == "y-only":
        return Case(X, y[:0], exc=ValueError)
    if variant == "list":
        return Case([], [], exc=ValueError)
    if variant == "flat":
        return Case(X.reshape(len(X), -1)[:0], y[:0], exc=ValueError, match="0 sample")
    if variant == "one-sample":
        return Case(X[:1], y[:1], exc=ValueError, match="at least 2 classes")
    return Case(torch.utils.data.TensorDataset(torch.zeros(0, 8, 8), torch.zeros(0)), None,
                exc=ValueError, match="empty")


def ragged_X(data, X, y):
    layout = data.draw(st.sampled_from(["flat", "grey", "nchw"]), label="layout")
    rows = as_layout(X, layout).tolist()
    i = data.draw(st.integers(0, len(rows) - 1), label="row")
    how = data.draw(st.sampled_from(["shorter", "longer", "scalar", "deeper"]), label="how")
    target = rows[i]
    if layout != "flat" and data.draw(st.booleans(), label="inner"):
        j = data.draw(st.integers(0, len(target) - 1), label="inner row")
        parent, target = target, target[j]
        key = j
    else:
        parent, key = rows, i
    parent[key] = {
        "shorter": lambda: target[:-1],
        "longer": lambda: target + [target[0]],
        "scalar": lambda: 3.0,
        "deeper": lambda: [target],
    }[how]()
    return Case(rows, y, exc=ValueError)


ODD_OBJECTS = ["a", "", None, [1, 2], {"k": 1}, b"x", (), 1 + 2j, "nan?"]


def object_X(data, X, y):
    layout = data.draw(st.sampled_from(["flat", "grey"]), label="layout")
    X = as_layout(X, layout).astype(object)
    position = tuple(data.draw(st.integers(0, s - 1), label=f"index {d}") for d, s in enumerate(X.shape))
    X[position] = data.draw(st.sampled_from(ODD_OBJECTS), label="object")
    return Case(X, y)


def non_numeric_X(data, X, y):
    dtype = data.draw(st.sampled_from(["U3", "S3", "M8[s]", "m8[s]", "complex128", "record"]), label="dtype")
    layout = data.draw(st.sampled_from(["flat", "grey"]), label="layout")
    X = as_layout(X, layout)
    if dtype == "record":
        X = np.zeros(X.shape, dtype=[("a", "f8"), ("b", "i4")])
    else:
        X = X.astype(np.int64).astype(dtype)
    return Case(X, y)


def mixed_labels(data, X, y):
    base = data.draw(st.sampled_from(["int", "str"]), label="base")
    labels = list(y.tolist()) if base == "int" else list(LETTERS[y].tolist())
    odd = (["a", "7", True, None, (1,), b"x", np.bool_(False), np.str_("b")] if base == "int"
           else [1, 2.5, True, None, np.int64(3), np.float32(1.0), (1,)])
    positions = data.draw(st.lists(st.integers(0, len(labels) - 1), min_size=1, max_size=5, unique=True),
                          label="positions")
    for p in positions:
        labels[p] = data.draw(st.sampled_from(odd), label="label")
    if data.draw(st.booleans(), label="object array"):
        arr = np.empty(len(labels), dtype=object)
        arr[:] = labels
        labels = arr
    return Case(X, labels, exc=TypeError, match="mixes label types")


def bad_label_values(data, X, y):
    how = data.draw(st.sampled_from(["nan", "inf", "continuous", "one-class", "shorter", "longer", "2d"]),
                    label="how")
    container = data.draw(st.sampled_from(["numpy", "torch", "list"]), label="container")
    labels = y.astype(np.float64)
    p = data.draw(st.integers(0, len(y) - 1), label="position")
    match = None
    if how in ("nan", "inf"):
        labels[p] = math.nan if how == "nan" else -math.inf
        match = "NaN or infinity"
    elif how == "continuous":
        labels[p] += data.draw(st.floats(0.01, 0.99), label="offset")
        match = "continuous"
    elif how == "one-class":
        labels[:] = labels[p]
        match = "at least 2 classes"
    elif how == "shorter":
        # keep more than one class, so that the length is what is wrong
        labels = labels[: data.draw(st.integers(PER_CLASS + 1, len(y) - 1), label="length")]
        match = "different lengths"
    elif how == "longer":
        labels = np.concatenate([labels, labels[: data.draw(st.integers(1, 5), label="extra")]])
        match = "different lengths"
    else:
        labels = np.stack([labels, labels], axis=1)
        match = "1d array"
    labels = {"numpy": lambda: labels, "torch": lambda: torch.tensor(labels),
              "list": lambda: labels.tolist()}[container]()
    return Case(X, labels, exc=ValueError, match=match)


def bad_ipc(data, X, y):
    ipc = data.draw(st.one_of(
        st.integers(max_value=0),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.text(max_size=3),
        st.none(),
        st.sampled_from([np.float64(2.0), np.bool_(True), 1 + 0j, [1], (2,), np.array(1), torch.tensor(2),
                         np.int64(0), np.int8(-3)]),
    ), label="ipc")
    is_int = isinstance(ipc, (int, np.integer)) and not isinstance(ipc, (bool, np.bool_))
    return Case(X, y, {"ipc": ipc}, exc=ValueError if is_int else TypeError,
                match=r"The 'ipc' parameter of \w+ must be an int in the range \[1, inf\) or a non-empty dict")


def mismatched_input_shape(data, X, y):
    layout = data.draw(st.sampled_from(["flat", "grey", "nchw"]), label="layout")
    shape = data.draw(st.tuples(st.integers(1, 20), st.integers(1, 20), st.integers(1, 20)), label="shape")
    if layout == "flat":
        if math.prod(shape) == 64:
            shape = (shape[0] + 1,) + shape[1:]
        match = r"input_shape=\(.*\) holds \d+ values but X has 64 features"
    else:
        if shape == (1, 8, 8):
            shape = (2, 8, 8)
        match = r"input_shape=\(.*\) does not match"
    if data.draw(st.booleans(), label="as list"):
        shape = list(shape)
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    X = as_layout(X, layout)
    X = torch.tensor(X) if container == "torch" else X
    return Case(X, y, {"input_shape": shape}, exc=ValueError, match=match)


def malformed_input_shape(data, X, y):
    shape = data.draw(st.one_of(
        st.lists(st.integers(1, 8), max_size=5).filter(lambda s: len(s) != 3).map(tuple),
        st.tuples(st.integers(-3, 0), st.integers(1, 8), st.integers(1, 8)),
        st.tuples(st.integers(1, 8), st.floats(1, 8), st.integers(1, 8)),
        st.tuples(st.booleans(), st.integers(1, 8), st.integers(1, 8)),
        st.text(min_size=1, max_size=4),
        st.sampled_from([5, 2.5, {1: 2}, (1, None, 8), ("1", "8", "8")]),
    ), label="input_shape")
    return Case(X.reshape(len(X), -1), y, {"input_shape": shape},
                match=r"The 'input_shape' parameter of \w+ must be a tuple \(C, H, W\) of three positive integers")


def meta_tensors(data, X, y):
    which = data.draw(st.sampled_from(["X", "y", "both"]), label="which")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64, torch.uint8]), label="dtype")
    layout = data.draw(st.sampled_from(["flat", "grey", "nchw"]), label="layout")
    shape = as_layout(X, layout).shape
    X_t = torch.empty(shape, dtype=dtype, device="meta") if which != "y" else torch.tensor(X).reshape(shape)
    y_t = torch.empty(len(y), dtype=torch.long, device="meta") if which != "X" else torch.tensor(y)
    return Case(X_t, y_t, exc=ValueError, match="meta device")


class ItemDataset(torch.utils.data.Dataset):
    """Valid ``(image, label)`` pairs, except item ``bad`` which is ``wrong(image, label)``."""

    def __init__(self, X, y, bad, wrong):
        self.X, self.y, self.bad, self.wrong = torch.tensor(X), y, bad, wrong

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        image, label = self.X[i], int(self.y[i])
        return self.wrong(image, label) if i == self.bad else (image, label)


WRONG_ITEMS = {
    "bare-image": (lambda x, label: x, ValueError, r"pairs; item \d+ is Tensor"),
    "triple": (lambda x, label: (x, label, 0), ValueError, "pairs; item .* of length 3"),
    "single": (lambda x, label: (x,), ValueError, "pairs; item .* of length 1"),
    "empty-tuple": (lambda x, label: (), ValueError, "pairs; item .* of length 0"),
    "dict": (lambda x, label: {"image": x, "label": label}, ValueError, "pairs; item .* is dict"),
    "none": (lambda x, label: None, ValueError, "pairs; item .* is NoneType"),
    "string": (lambda x, label: "ab", ValueError, "pairs; item .* is str"),
    "vector-label": (lambda x, label: (x, torch.tensor([label, label])), ValueError, "expected a scalar"),
    "empty-label": (lambda x, label: (x, torch.tensor([])), ValueError, "expected a scalar"),
    "other-shape": (lambda x, label: (x[:, :5], label), ValueError, "must share one shape"),
    "transposed": (lambda x, label: (x[:, :3].T, label), ValueError, "must share one shape"),
    "nan-image": (lambda x, label: (x * math.nan, label), ValueError, "NaN or infinity"),
    "string-label": (lambda x, label: (x, "seven"), TypeError, "mixes label types"),
    "none-label": (lambda x, label: (x, None), TypeError, "mixes label types"),
    "nan-label": (lambda x, label: (x, math.nan), ValueError, "NaN"),
    "complex-image": (lambda x, label: (x.to(torch.complex64), label), TypeError, "real numbers"),
    "none-image": (lambda x, label: (None, label), TypeError, None),
    "string-image": (lambda x, label: ("pixels", label), TypeError, None),
    "ragged-image": (lambda x, label: ([[1.0, 2.0], [3.0]], label), ValueError, None),
}


def bad_dataset(data, X, y):
    name = data.draw(st.sampled_from(sorted(WRONG_ITEMS)), label="wrong item")
    wrong, exc, match = WRONG_ITEMS[name]
    bad = data.draw(st.integers(0, len(X) - 1), label="position")
    return Case(ItemDataset(X, y, bad, wrong), None, exc=exc, match=match)


CORRUPTIONS = {
    "nonfinite-X": nonfinite_X,
    "empty": empty_input,
    "ragged-X": ragged_X,
    "object-X": object_X,
    "non-numeric-X": non_numeric_X,
    "mixed-labels": mixed_labels,
    "bad-label-values": bad_label_values,
    "ipc": bad_ipc,
    "mismatched-input-shape": mismatched_input_shape,
    "malformed-input-shape": malformed_input_shape,
    "meta-device": meta_tensors,
    "bad-dataset": bad_dataset,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@FUZZ
@given(data=st.data())
def test_malformed_input_is_refused(small, fast, corruption, data):
    X, y = small
    kind = data.draw(st.sampled_from(KINDS), label="estimator")
    case = CORRUPTIONS[corruption](data, X, y)
    est = make(kind, fast, **case.params)
    assert_refused(est, case)


# ---------------------------------------------------------------- valid: tensors that require grad
@FUZZ_FITS
@given(data=st.data())
def test_tensors_that_require_grad_are_used_detached(small, fast, data):
    X, y = small
    kind = data.draw(st.sampled_from(KINDS), label="estimator")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    layout = data.draw(st.sampled_from(["flat", "grey", "nchw"]), label="layout")
    labels = data.draw(st.sampled_from(["numpy", "torch", "torch-grad", "str", "dataset"]), label="labels")
    leaf = torch.tensor(as_layout(X, layout), dtype=dtype, requires_grad=True)
    # a non-leaf too: the result of a computation that tracks gradients
    X_t = leaf * 1.0 if data.draw(st.booleans(), label="non-leaf") else leaf
    original = X_t.detach().clone()
    y_in = {"numpy": y, "torch": torch.tensor(y), "str": LETTERS[y],
            "torch-grad": torch.tensor(y, dtype=torch.float32, requires_grad=True), "dataset": None}[labels]
    X_in = (torch.utils.data.TensorDataset(X_t, torch.tensor(y)) if labels == "dataset" else X_t)
    est = make(kind, fast)
    X_syn, y_syn = est.fit(X_in, y_in).transform()
    assert isinstance(X_syn, torch.Tensor) and not X_syn.requires_grad
    assert X_syn.dtype == dtype and tuple(X_syn.shape) == (10,) + tuple(X_t.shape[1:])
    assert bool(torch.isfinite(X_syn).all())
    assert torch.equal(X_t.detach(), original)  # the caller's tensor is left alone
    assert leaf.grad is None
    expected = LETTERS[np.arange(10)] if labels == "str" else np.arange(10)
    assert sorted(np.asarray(y_syn).tolist()) == sorted(expected.tolist())
    if kind != "condenser":
        torch.testing.assert_close(X_syn, original[torch.from_numpy(est.sample_indices_)])


# ---------------------------------------------------------------- known bugs
class _LyingDataset(torch.utils.data.Dataset):
    """Says it has one item more than it can return (its __getitem__ raises IndexError)."""

    def __init__(self, X, y):
        self.X, self.y = torch.tensor(X), torch.tensor(y)

    def __len__(self):
        return len(self.X) + 1

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def _meta_image(x, label):
    return torch.empty(x.shape, device="meta"), label


def _meta_label(x, label):
    return x, torch.tensor(label, device="meta")


def _huge_value(X, y):
    X = X.copy()
    X[3, 4, 5] = 1e39  # finite in float64, beyond float32's range (3.4e38)
    return X, y


#: Inputs the fuzzing once found failing the wrong way (a torch error, a misleading
#: DivergenceError, or a silent fit); each is now refused with a clear error.
REGRESSIONS = [
    pytest.param(
        "condenser", _huge_value, {},
        id="condenser-float64-beyond-float32",
    ),
    pytest.param(
        "condenser", lambda X, y: (X, y), {"ipc": 2**40},
        id="condenser-ipc-2**40",
    ),
    *[
        pytest.param(
            "condenser", lambda X, y: (X, y), params,
            id=f"condenser-{name}-1e308",
        )
        for name, params in [("lr_syn", {"lr_syn": 1e308}),
                             ("lr_net", {"lr_net": 1e308, "matching_steps": 2, "network_steps": 1})]
    ],
    pytest.param(
        "condenser", lambda X, y: (X, y), {"normalization": (0.0, 1e-300)},
        id="condenser-normalization-std-1e-300",
    ),
    *[
        pytest.param(
            kind, lambda X, y: (torch.zeros(len(X), 0), y), {},
            id=f"{kind}-torch-(n,0)",
        )
        for kind in KINDS
    ],
    *[
        pytest.param(
            kind, lambda X, y: (np.zeros((len(X), 0, 8)), y), {},
            id=f"{kind}-numpy-(n,0,8)",
        )
        for kind in KINDS
    ],
    *[
        pytest.param(
            kind, lambda X, y: (torch.utils.data.TensorDataset(torch.zeros(len(X), 0), torch.tensor(y)), None),
            {},
            id=f"{kind}-dataset-empty-images",
        )
        for kind in KINDS
    ],
    *[
        pytest.param(
            kind, lambda X, y: (ItemDataset(X, y, 7, _meta_image), None), {},
            id=f"{kind}-dataset-meta-image",
        )
        for kind in KINDS
    ],
    *[
        pytest.param(
            kind, lambda X, y: (ItemDataset(X, y, 7, _meta_label), None), {},
            id=f"{kind}-dataset-meta-label",
        )
        for kind in KINDS
    ],
    pytest.param(
        "random", lambda X, y: (_LyingDataset(X, y), None), {},
        id="random-dataset-len-overstated",
    ),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind, build, params", REGRESSIONS)
def test_inputs_once_refused_the_wrong_way(small, fast, kind, build, params):
    X, y = build(*small)
    assert_refused(make(kind, fast, **params), Case(X, y, params))

"""Tests of the network-step schedules (paper eq. 12) and DC's default loop sizes."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

from gradmatch.schedules import (
    DC_LOOPS,
    OVERFIT_MAX_STEPS,
    SCHEDULES,
    Schedule,
    adaptive_steps,
    default_loops,
    make_schedule,
    total_network_steps,
)

# Paper eq. 12, written out as a table for t = 0 .. 20.
EQ12 = [50, 40, 30, 20] + [10] * 6 + [5] * 11


def test_eq12_table_has_the_intended_length():
    assert len(EQ12) == 21


@pytest.mark.parametrize("t", range(21))
def test_adaptive_steps_follow_eq12(t):
    if t < 4:
        expected = 50 - 10 * t
    elif t < 10:
        expected = 10
    else:
        expected = 5
    assert expected == EQ12[t]
    assert adaptive_steps(t) == expected
    assert make_schedule("adaptive", 50)(t) == expected
    assert make_schedule("adaptive", 999)(t) == expected  # fixed_steps is irrelevant


def test_adaptive_steps_far_out_stay_five():
    assert adaptive_steps(100) == 5
    assert adaptive_steps(10_000) == 5


def test_adaptive_is_non_increasing():
    values = [adaptive_steps(t) for t in range(60)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_total_network_steps_adaptive_vs_fixed_at_T10():
    # Paper section 4.5: 190 network steps per outer iteration at T = 10 against 9 x 50 = 450.
    assert total_network_steps(make_schedule("adaptive", 50), 10) == 190
    assert total_network_steps(make_schedule("fixed", 50), 10) == 450
    assert sum(EQ12[:9]) == 190


@pytest.mark.parametrize("T", [1, 2, 5, 10, 20, 50])
def test_total_network_steps_skip_the_last_matching_step(T):
    assert total_network_steps(make_schedule("adaptive", 50), T) == sum(adaptive_steps(t) for t in range(T - 1))
    assert total_network_steps(make_schedule("fixed", 7), T) == 7 * (T - 1)


def test_total_network_steps_at_T1_is_zero():
    assert total_network_steps(make_schedule("adaptive", 50), 1) == 0
    assert total_network_steps(make_schedule("fixed", 50), 1) == 0


def test_fixed_schedule_is_constant():
    s = make_schedule("fixed", 25)
    assert s.name == "fixed"
    assert not s.until_overfit
    assert [s(t) for t in range(30)] == [25] * 30


def test_overfit_schedule():
    s = make_schedule("overfit", 10)
    assert s.name == "overfit"
    assert s.until_overfit is True
    assert s.max_steps == 50
    assert OVERFIT_MAX_STEPS == 50
    assert s(0) == 50 and s(7) == 50
    assert total_network_steps(s, 10) == 9 * 50


def test_adaptive_and_fixed_are_not_overfit():
    assert make_schedule("adaptive", 50).until_overfit is False
    assert make_schedule("fixed", 50).until_overfit is False


@pytest.mark.parametrize("bad", ["Adaptive", "fix", "", "linear", "overfitting"])
def test_unknown_schedule_raises_listing_valid_names(bad):
    with pytest.raises(ValueError) as info:
        make_schedule(bad, 50)
    for name in ("fixed", "adaptive", "overfit"):
        assert repr(name) in str(info.value)
    assert set(SCHEDULES) == {"fixed", "adaptive", "overfit"}


@pytest.mark.parametrize("bad", [3, None, 1.5, ["fixed"]])
def test_non_string_non_callable_schedule_raises_type_error(bad):
    with pytest.raises(TypeError):
        make_schedule(bad, 50)


def test_callable_schedule_is_used():
    seen = []

    def zeta(t):
        seen.append(t)
        return 3 * t + 1

    s = make_schedule(zeta, 50)
    assert s.name == "callable"
    assert not s.until_overfit
    assert [s(t) for t in range(5)] == [1, 4, 7, 10, 13]
    assert total_network_steps(s, 4) == 1 + 4 + 7
    assert seen[-3:] == [0, 1, 2]


def test_callable_schedule_accepts_numpy_integers_and_zero():
    s = make_schedule(lambda t: np.int64(0) if t == 0 else np.int32(2), 50)
    assert s(0) == 0 and isinstance(s(0), int)
    assert s(1) == 2 and isinstance(s(1), int)


@pytest.mark.parametrize("value", [-1, -5, 2.0, 2.5, True, False, "3", None, float("nan")])
def test_callable_schedule_returning_bad_value_raises(value):
    s = make_schedule(lambda t: value, 50)
    with pytest.raises(ValueError):
        s(0)
    with pytest.raises(ValueError):
        total_network_steps(s, 3)


# ---------------------------------------------------------------------------
# default_loops
# ---------------------------------------------------------------------------

DC_TABLE = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@pytest.mark.parametrize("ipc, expected", sorted(DC_TABLE.items()))
def test_default_loops_dc_rows(ipc, expected):
    assert default_loops(ipc) == expected
    assert DC_LOOPS[ipc] == expected


def _hand_interp(ipc):
    """Linear interpolation between DC's rows with round-half-up, in exact arithmetic."""
    keys = sorted(DC_TABLE)
    lo = max(k for k in keys if k <= ipc)
    hi = min(k for k in keys if k >= ipc)
    if lo == hi:
        return DC_TABLE[lo]
    frac = Fraction(ipc - lo, hi - lo)
    out = []
    for j in range(2):
        value = DC_TABLE[lo][j] + frac * (DC_TABLE[hi][j] - DC_TABLE[lo][j])
        out.append(math.floor(value + Fraction(1, 2)))
    return tuple(out)


def test_default_loops_documented_examples():
    # ipc = 5: T = 1 + 4 * 9/9 = 5, zeta = 1 + 4 * 49/9 = 22.78 -> 23.
    assert default_loops(5) == (5, 23)
    # ipc = 15: T = 15, zeta = 50 + 5 * (25 - 50)/10 = 37.5 -> 38 (half up).
    assert default_loops(15) == (15, 38)
    assert _hand_interp(5) == (5, 23)
    assert _hand_interp(15) == (15, 38)


@pytest.mark.parametrize("ipc", range(1, 51))
def test_default_loops_interpolation_formula(ipc):
    assert default_loops(ipc) == _hand_interp(ipc)


def test_default_loops_T_is_monotonic_and_positive():
    rows = [default_loops(i) for i in range(1, 200)]
    ts = [t for t, _ in rows]
    assert all(a <= b for a, b in zip(ts, ts[1:]))
    assert all(t >= 1 and z >= 1 for t, z in rows)
    assert all(isinstance(t, int) and isinstance(z, int) for t, z in rows)


@pytest.mark.parametrize("ipc", [51, 60, 100, 500, 10_000])
def test_default_loops_caps_at_ipc50_row(ipc):
    assert default_loops(ipc) == (50, 10)


def test_default_loops_accepts_numpy_integers():
    assert default_loops(np.int64(10)) == (10, 50)
    assert default_loops(np.int32(5)) == (5, 23)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, False, 10.0, "10", None])
def test_default_loops_rejects_bad_ipc(bad):
    with pytest.raises(ValueError):
        default_loops(bad)


def test_schedule_is_frozen():
    s = make_schedule("adaptive", 50)
    assert isinstance(s, Schedule)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "fixed"

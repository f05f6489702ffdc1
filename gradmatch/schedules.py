"""Schedules of network steps zeta(t) and DC's default loop sizes (paper section 3.3).

After matching step ``t`` of an outer iteration the network trains for
``zeta(t)`` steps on the synthetic set (one step = one epoch over it):

* ``"fixed"``: DC's constant ``zeta``;
* ``"adaptive"``: paper eq. 12, ``50 - 10 t`` for ``t < 4``, ``10`` for
  ``4 <= t < 10``, ``5`` after (190 steps per iteration at ``T = 10``, against
  DC's 9 x 50 = 450);
* ``"overfit"``: train until the loss on a held batch of real images rises
  (the paper's "O"), at most :data:`OVERFIT_MAX_STEPS` steps;
* a callable ``t -> int``.

No network steps follow the last matching step of an iteration, so only
``t = 0 .. T-2`` count.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SCHEDULES",
    "OVERFIT_MAX_STEPS",
    "DC_LOOPS",
    "Schedule",
    "adaptive_steps",
    "default_loops",
    "make_schedule",
    "total_network_steps",
]

#: Valid string values of the ``schedule`` parameter.
SCHEDULES = ("fixed", "adaptive", "overfit")

#: Upper bound of network steps per matching step for ``schedule="overfit"``.
OVERFIT_MAX_STEPS = 50

#: DC's (matching steps T, network steps zeta) by images per class, from its
#: public implementation (``get_loops``).
DC_LOOPS: dict[int, tuple[int, int]] = {
    1: (1, 1),
    10: (10, 50),
    20: (20, 25),
    30: (30, 20),
    40: (40, 15),
    50: (50, 10),
}


def default_loops(ipc: int) -> tuple[int, int]:
    """DC's ``(T, zeta)`` for ``ipc`` images per class, extended to every ipc >= 1.

    The rows of :data:`DC_LOOPS` are used as they are. Between two rows both
    numbers are interpolated linearly in ipc and rounded to the nearest
    integer (``ipc=5`` gives ``(5, 23)``); above 50 the ipc-50 row is kept.

    Examples
    --------
    >>> default_loops(10)
    (10, 50)
    >>> default_loops(5)
    (5, 23)
    >>> default_loops(200)
    (50, 10)
    """
    if isinstance(ipc, bool) or not isinstance(ipc, numbers.Integral) or ipc < 1:
        raise ValueError(f"ipc must be an integer >= 1, got {ipc!r}")
    ipc = int(ipc)
    if ipc in DC_LOOPS:
        return DC_LOOPS[ipc]
    keys = sorted(DC_LOOPS)
    if ipc > keys[-1]:
        return DC_LOOPS[keys[-1]]
    steps = np.interp(ipc, keys, [DC_LOOPS[k][0] for k in keys])
    zeta = np.interp(ipc, keys, [DC_LOOPS[k][1] for k in keys])
    # Round half up so the rule is easy to state.
    return int(np.floor(steps + 0.5)), int(np.floor(zeta + 0.5))


def adaptive_steps(t: int) -> int:
    """Paper eq. 12: the adaptive number of network steps after matching step ``t``."""
    if t < 4:
        return 50 - 10 * t
    if t < 10:
        return 10
    return 5


@dataclass(frozen=True)
class Schedule:
    """A resolved schedule.

    Attributes
    ----------
    name : str
        ``"fixed"``, ``"adaptive"``, ``"overfit"`` or ``"callable"``.
    steps : callable or None
        ``t -> int`` for every schedule but ``"overfit"``.
    max_steps : int
        For ``"overfit"``: the bound on steps per matching step.
    """

    name: str
    steps: Callable[[int], int] | None
    max_steps: int = OVERFIT_MAX_STEPS

    @property
    def until_overfit(self) -> bool:
        return self.steps is None

    def __call__(self, t: int) -> int:
        """Planned steps after matching step ``t`` (the bound, for "overfit")."""
        if self.steps is None:
            return self.max_steps
        value = self.steps(t)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(
                f"schedule returned {value!r} network steps for t={t}: expected an integer >= 0"
            )
        return int(value)


def make_schedule(schedule: str | Callable[[int], int], fixed_steps: int) -> Schedule:
    """Resolve the ``schedule`` parameter.

    Parameters
    ----------
    schedule : {"fixed", "adaptive", "overfit"} or callable
        See the module docstring.
    fixed_steps : int
        The constant used by ``"fixed"``.
    """
    if isinstance(schedule, str):
        if schedule == "fixed":
            steps = int(fixed_steps)
            return Schedule("fixed", lambda t: steps)
        if schedule == "adaptive":
            return Schedule("adaptive", adaptive_steps)
        if schedule == "overfit":
            return Schedule("overfit", None)
        valid = ", ".join(repr(s) for s in SCHEDULES)
        raise ValueError(f"unknown schedule {schedule!r}: valid values are {valid} or a callable t -> steps")
    if callable(schedule):
        return Schedule("callable", schedule)
    valid = ", ".join(repr(s) for s in SCHEDULES)
    raise TypeError(
        f"schedule must be one of {valid} or a callable t -> steps, got {type(schedule).__name__}"
    )


def total_network_steps(schedule: Schedule, matching_steps: int) -> int:
    """Network steps in one outer iteration (the bound, for "overfit").

    Examples
    --------
    >>> total_network_steps(make_schedule("adaptive", 50), 10)
    190
    >>> total_network_steps(make_schedule("fixed", 50), 10)
    450
    """
    return sum(schedule(t) for t in range(matching_steps - 1))

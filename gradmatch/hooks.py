"""What happens after each iteration of a fit: checkpointing and the user's callback.

A run-time concern kept out of the estimator and the loop: the loop calls one
hook per iteration, the hook saves a checkpoint when it is due and asks the
user's callback whether to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["IterationHooks", "wants_stop"]


def wants_stop(answer) -> bool:
    """Whether a callback's answer asks to stop: any true value (``True``, ``numpy.True_``, 1).

    Examples
    --------
    >>> import numpy as np
    >>> wants_stop(None), wants_stop(False), wants_stop(True), wants_stop(np.True_)
    (False, False, True, True)
    """
    return answer is not None and bool(answer)


@dataclass
class IterationHooks:
    """Called by the loop after each iteration: ``hooks(iteration, record) -> stop``.

    Parameters
    ----------
    checkpointer : Checkpointer or NoCheckpoint
        Saves the state every ``checkpointer.every`` iterations.
    callback : callable or None
        The user's ``callback(iteration, record)``; a true answer stops the run.
    shard : ClassShard or None
        In a sharded run any rank's callback stops every rank.
    state_at_boundary : callable
        ``() -> dict``, the loop's state at the end of the last whole iteration.
    """

    checkpointer: object
    callback: Callable | None
    shard: object
    state_at_boundary: Callable[[], dict]

    def __call__(self, iteration: int, record: dict) -> bool:
        self.checkpointer.iteration_done(iteration + 1, self.state_at_boundary)
        stop = wants_stop(self.callback(iteration, record)) if self.callback is not None else False
        if self.shard is not None:
            stop = not self.shard.all_true(not stop)
        return stop

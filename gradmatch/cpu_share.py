"""Whether other processes share the CPU with a fit, measured over its first iteration.

A fit runs torch's OpenMP threads, one per core by default. When another job
keeps cores busy, those threads wait for each other at every operation and a
small network's iteration can take several times as long
(``benchmarks/default_fit.py`` measures it). Choosing the thread count from
the load would change the set (thread counts change float rounding), so the
fit keeps its count and, with ``verbose`` on, says what it saw and what to do.

The measurement costs nothing extra: Linux's ``/proc/stat`` gives the busy time
of all cores, the process's own CPU time is subtracted, and the rest, over the
iteration's wall time, is what other processes used.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["CpuShareProbe", "cores_used_by_others", "oversubscription_note", "read_busy_seconds"]

#: Other processes' use (in cores) from which a fit with a thread per core is told.
NOTICE_CORES = 0.5


def read_busy_seconds(path: str = "/proc/stat") -> float | None:
    """Busy CPU seconds of all cores since boot (user, nice, system, irq, softirq and
    steal time), or None where ``path`` is missing or unreadable (not Linux)."""
    try:
        with open(path) as f:
            fields = f.readline().split()
        ticks = [int(v) for v in fields[1:9]]
    except (OSError, ValueError):
        return None
    if not fields or fields[0] != "cpu" or len(ticks) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cores_used_by_others(busy_seconds: float, own_seconds: float, wall_seconds: float) -> float:
    """Cores kept busy by other processes: all cores' busy time less this process's, per second.

    Examples
    --------
    >>> cores_used_by_others(busy_seconds=30.0, own_seconds=20.0, wall_seconds=10.0)
    1.0
    >>> cores_used_by_others(busy_seconds=19.0, own_seconds=20.0, wall_seconds=10.0)  # tick rounding
    0.0
    """
    if wall_seconds <= 0:
        return 0.0
    return max(0.0, (busy_seconds - own_seconds) / wall_seconds)


def oversubscription_note(others: float, threads: int, cores: int) -> str | None:
    """What to tell a user whose ``threads`` share ``cores`` with ``others`` busy cores, or None.

    Examples
    --------
    >>> oversubscription_note(others=0.1, threads=2, cores=2) is None
    True
    >>> oversubscription_note(others=1.0, threads=1, cores=2) is None  # one thread fits beside it
    True
    >>> oversubscription_note(others=1.0, threads=2, cores=2).split(":")[0]
    'condensing'
    """
    if threads < 2 or others < NOTICE_CORES or threads + others <= cores + 0.25:
        return None
    return (f"condensing: other processes kept {others:.1f} of the {cores} CPU cores busy during the first "
            f"iteration while this fit runs {threads} threads; sharing cores, its threads wait for each other "
            "and iterations can take several times as long. n_threads=1 (or at most the free cores) avoids "
            "it, OMP_WAIT_POLICY=PASSIVE in the environment before Python starts softens it; another thread "
            "count gives another set (float rounding), so keep one count for runs you compare.")


@dataclass
class CpuShareProbe:
    """Started before an iteration, :meth:`others` after it: other processes' cores in between."""

    wall: float
    own: float
    busy: float | None

    @classmethod
    def start(cls, reader=read_busy_seconds) -> CpuShareProbe:
        return cls(time.perf_counter(), time.process_time(), reader())

    def others(self, reader=read_busy_seconds) -> float | None:
        """Cores other processes used since :meth:`start`, or None where it cannot be read."""
        busy = reader()
        if busy is None or self.busy is None:
            return None
        return cores_used_by_others(busy - self.busy, time.process_time() - self.own,
                                    time.perf_counter() - self.wall)

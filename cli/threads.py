"""OpenMP's waiting on a busy machine: threads that sleep instead of spinning.

PyTorch's CPU kernels run on OpenMP threads (two on this project's 2-core machines) which, by
default, spin for a while before they sleep when they wait for each other. Beside another busy
PyTorch process the spinning threads of both fight for the cores. Measured side by side
(``python benchmarks/bench_threads.py``, 40 steps of the demo's tiny VLM, 2-core machine, median
of 3): alone, libgomp's default 6.5 s against 7.4 s with ``OMP_WAIT_POLICY=PASSIVE``; beside a
PyTorch neighbour, 27.0 s against 8.7 s. So the command lines ask for ``PASSIVE`` only when other
work keeps at least half a core busy as they start (the CPU's idle share over a tenth of a second,
from ``/proc/stat``; a load average would still count a ``pip install`` that just ended), and
leave the default, faster alone, otherwise. It must be set before torch is imported; a value the
user set (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``) is kept.
"""

from __future__ import annotations

import os

#: Cores kept busy by other work from which the machine counts as busy.
BUSY_CORES = 0.5


def busy_cores(window: float = 0.1) -> float | None:
    """Cores busy over ``window`` seconds while this process sleeps (``None`` without
    ``/proc/stat``)."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait, all but guest time

    try:
        idle0, total0 = sample()
        time.sleep(window)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return 0.0
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def calm_openmp() -> float | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when other work keeps the CPU busy and the user set
    neither it nor ``GOMP_SPINCOUNT``; returns the busy cores when it did (no effect once torch
    is imported)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return None
    busy = busy_cores()
    if busy is None or busy < BUSY_CORES:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return busy

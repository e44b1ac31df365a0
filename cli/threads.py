"""OpenMP's waiting on a busy machine: threads that sleep instead of spinning.

PyTorch's CPU kernels run on OpenMP threads (two on this project's 2-core machines) which, by
default, spin for a while before they sleep when they wait for each other. Beside another busy
PyTorch process the spinning threads of both fight for the cores. Measured side by side
(``python benchmarks/bench_threads.py``, 40 steps of the demo's tiny VLM, 2-core machine, median
of 3): alone, libgomp's default 6.5 s against 7.4 s with ``OMP_WAIT_POLICY=PASSIVE``; beside a
PyTorch neighbour, 27.0 s against 8.7 s. So the command lines ask for ``PASSIVE`` only when the
machine is already busy when they start (a 1-minute load average of at least 1), and leave the
default, faster alone, otherwise. It must be set before torch is imported; a value the user set
(``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``) is kept.
"""

from __future__ import annotations

import os

#: The 1-minute load average from which the machine counts as busy.
BUSY_LOAD = 1.0


def calm_openmp() -> float | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when the machine is busy and the user set neither it nor
    ``GOMP_SPINCOUNT``; returns the load average when it did (no effect once torch is imported)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform
        return None
    if load < BUSY_LOAD:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return load

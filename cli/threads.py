"""OpenMP's wait policy for the command lines: threads that sleep while they wait.

PyTorch's CPU kernels run on OpenMP threads (two on this project's 2-core machines) which, by
default, spin while they wait for each other. On a machine that is busy with anything else the
spinning threads fight the other work and each other for the cores: the demo's tiny VLM trained
6x slower (150 s against 25 s for 40 steps) beside two other busy processes. ``PASSIVE`` lets them
sleep instead (18 s there), and costs nothing measurable on an idle machine (see the README's
times). It must be set before torch is imported; a value the user set is kept.
"""

from __future__ import annotations

import os


def calm_openmp() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set (no effect once torch is imported)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

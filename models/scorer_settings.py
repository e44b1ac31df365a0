"""The file an exported scorer keeps its settings in, read without loading the scorer.

Light imports only: command lines check a ``--k`` or a ``--grid`` against the scorer's training
grid before any model (or torch) loads.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Beside the weights of an export: text mode, grid and transparency rule (``RelevanceScorer``).
SCORER_SETTINGS = "semclip_scorer.json"


def saved_grid(folder: str | Path) -> int | None:
    """The grid a scorer folder was trained on, from its settings file (``None`` without one:
    a stock CLIP/SigLIP, a hub id, or a file that is not readable as such)."""
    path = Path(folder).expanduser() / SCORER_SETTINGS
    try:
        grid = json.loads(path.read_text(encoding="utf-8")).get("grid")
    except (OSError, ValueError, AttributeError):
        return None
    return int(grid) if isinstance(grid, int) and not isinstance(grid, bool) else None

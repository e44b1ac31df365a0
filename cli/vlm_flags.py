"""Flags shared by ``semclip-answer`` and ``semclip-evaluate --vlm``: what the VLM is shown.

Light imports only (``--help`` and flag mistakes answer at once). Every flag defaults to ``None``:
not given, so a label set's recorded VLM config (``labelset.json``'s ``vlm``) or
:class:`~semclip.vlm.config.VLMConfig`'s default applies.
"""

from __future__ import annotations

import argparse
from typing import Any

from semclip.data.grid import MAX_GRID, MIN_GRID
from semclip.data.images import ALPHA_MODES
from semclip.vlm.config import DTYPES, IMAGE_BACKENDS, MODES
from semclip.vlm.render import PROMPT_FORMATS

#: The flags, as ``VLMConfig`` field names.
VLM_OPTIONS = ("revision", "prompt_format", "system_prompt", "image_backend", "alpha")


def add_vlm_flags(group) -> None:
    """Add the flags: revision, prompt format, system line, image backend, transparency."""
    group.add_argument("--revision", help="VLM hub revision")
    group.add_argument("--prompt-format", help="auto, llava15 or chat_template (default: auto)")
    group.add_argument(
        "--system-prompt",
        help='system line of the llava15 format ("" for none; default: LLaVA-1.5\'s)',
    )
    group.add_argument("--image-backend", help="auto, pil or torchvision (default: auto)")
    group.add_argument("--alpha", help="transparency: drop or white (default: drop)")


def check_vlm_flags(args: argparse.Namespace) -> None:
    """A ``ValueError`` naming the flag for a value the VLM runtime would refuse (and a grid out
    of range)."""
    allowed = {
        "mode": MODES,
        "dtype": DTYPES,
        "prompt_format": PROMPT_FORMATS,
        "image_backend": IMAGE_BACKENDS,
        "alpha": ALPHA_MODES,
    }
    grid = getattr(args, "grid", None)
    if grid is not None and not MIN_GRID <= grid <= MAX_GRID:
        raise ValueError(f"--grid must be in {MIN_GRID}..{MAX_GRID}, got {grid}")
    for name, values in allowed.items():
        value = getattr(args, name, None)
        if value is not None and value not in values:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be one of {', '.join(values)}, got {value!r}")


def vlm_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``VLM_OPTIONS`` flags that were given (or filled from a label set)."""
    return {name: getattr(args, name) for name in VLM_OPTIONS if getattr(args, name) is not None}

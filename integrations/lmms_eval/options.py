"""``--model_args`` of the ``semclip`` model: SemClip's keys, the rest for the inner model.

    vlm=llava_hf,pretrained=llava-hf/llava-1.5-7b-hf,scorer=runs/x/export,k=1[,grid=3]

``vlm`` is any lmms-eval model id; every key not named here goes to that model unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from semclip.data.grid import check_grid
from semclip.inference.scorers import PSI, load_scorer
from semclip.integrations.lmms_eval.selection import CropPicker

logger = logging.getLogger(__name__)


@dataclass
class PluginOptions:
    """SemClip's part of ``--model_args``."""

    vlm: str
    """The inner lmms-eval model id (``llava_hf``, ``qwen2_5_vl``, ...)."""
    scorer: str | None = None
    """An exported scorer or stock CLIP/SigLIP (folder or hub id), ``random[:SEED]`` or
    ``vlm-psi``; needed when ``k`` > 0."""
    k: int = 1
    """Crops shown after the overview; 0 passes requests through unchanged."""
    grid: int | None = None
    """Grid n; default: the grid the scorer was trained on (its export), else 2."""
    scorer_device: str | None = None
    """Where the scorer runs; default: ``device`` of the run, else CUDA when present."""
    psi_model: str | None = None
    """The checkpoint ``vlm-psi`` loads (default: the inner model's ``pretrained``)."""
    select_batch: int = 32
    """Requests scored (and handed to the inner model) per call."""
    selections: str | None = None
    """A folder for one JSONL of selection records per task (``records.py``)."""


OPTION_KEYS = frozenset(f.name for f in fields(PluginOptions))


def split_model_args(args: dict[str, Any]) -> tuple[PluginOptions, dict[str, Any]]:
    """(SemClip's options, the inner model's arguments) from parsed ``--model_args``."""
    if "vlm" not in args:
        raise ValueError(
            "--model_args needs vlm=<lmms-eval model id> (e.g. vlm=llava_hf,pretrained=...)"
        )
    ours = {k: v for k, v in args.items() if k in OPTION_KEYS}
    for key in ("scorer", "vlm", "scorer_device", "psi_model", "selections"):
        if ours.get(key) is not None:
            ours[key] = str(ours[key])
    options = PluginOptions(**ours)
    if not isinstance(options.k, int) or options.k < 0:
        raise ValueError(f"--model_args k must be an integer >= 0, got {options.k!r}")
    if options.grid is not None:
        check_grid(options.grid)
    if options.k and not options.scorer:
        raise ValueError(
            f"--model_args k={options.k} needs scorer=<export folder, CLIP id, random or "
            "vlm-psi> (k=0 runs the inner model alone)"
        )
    return options, {k: v for k, v in args.items() if k not in OPTION_KEYS}


def inner_arg_string(args: dict[str, Any]) -> str:
    """The inner model's ``--model_args`` string (``key=value``, comma-separated)."""
    return ",".join(f"{k}={v}" for k, v in args.items())


def resolve_grid(requested: int | None, trained: int | None) -> int:
    """The grid to cut: ``grid=`` when given (with a warning if the scorer was trained on
    another), else the scorer's, else 2."""
    if requested is not None and trained is not None and requested != trained:
        logger.warning(
            "grid=%d overrides the %dx%d grid the scorer was trained on", requested, *[trained] * 2
        )
    return requested or trained or 2


def load_picker(
    options: PluginOptions, inner_args: dict[str, Any], device: str | None
) -> CropPicker | None:
    """The crop picker the options ask for (``None`` for k = 0: nothing is loaded).

    ``vlm-psi`` loads the inner checkpoint a second time through SemClip's VLM runtime (the
    inner lmms-eval model keeps its own copy): twice the weights in memory.
    """
    if options.k == 0:
        return None
    device = options.scorer_device or device
    vlm = None
    if options.scorer == PSI:
        from semclip.vlm.config import VLMConfig
        from semclip.vlm.runtime import VLM

        model = options.psi_model or inner_args.get("pretrained")
        if not model:
            raise ValueError("scorer=vlm-psi needs pretrained= (or psi_model=) to load the VLM")
        logger.warning("vlm-psi loads %s a second time, beside the inner model's copy", model)
        vlm = VLM(VLMConfig(model=str(model), device=device))
    scorer = load_scorer(options.scorer, vlm, device=device)
    grid = resolve_grid(options.grid, getattr(scorer, "grid", None))
    return CropPicker(scorer, grid, options.k)

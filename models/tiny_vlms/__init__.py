"""Tiny random checkpoints of every VLM family that labeling supports, built offline.

Each builder writes a folder that ``AutoProcessor`` / ``AutoModelForImageTextToText`` reload as
they would the real checkpoint it mirrors (chat template in the published shape, the family's
own processor and model classes), deterministically from a seed. Tests and benchmarks use them;
``build_tiny_vlm("qwen2_5_vl", folder)`` is the one entry point.
"""

from __future__ import annotations

import importlib
from pathlib import Path

#: model_type -> "module:function" of its builder (imported only when used).
TINY_VLM_BUILDERS: dict[str, str] = {
    "llava": "semclip.models.tiny:build_tiny_llava",
    "llava_next": "semclip.models.tiny_vlms.llava_next:build_tiny_llava_next",
    "llava_onevision": "semclip.models.tiny_vlms.llava_next:build_tiny_llava_onevision",
    "qwen2_vl": "semclip.models.tiny_vlms.qwen:build_tiny_qwen2_vl",
    "qwen2_5_vl": "semclip.models.tiny_vlms.qwen:build_tiny_qwen2_5_vl",
    "qwen3_vl": "semclip.models.tiny_vlms.qwen:build_tiny_qwen3_vl",
    "idefics3": "semclip.models.tiny_vlms.idefics:build_tiny_idefics3",
    "smolvlm": "semclip.models.tiny_vlms.idefics:build_tiny_smolvlm",
    "gemma3": "semclip.models.tiny_vlms.gemma3:build_tiny_gemma3",
    "internvl": "semclip.models.tiny_vlms.internvl:build_tiny_internvl",
    "mistral3": "semclip.models.tiny_vlms.mistral3:build_tiny_mistral3",
}


def build_tiny_vlm(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny checkpoint of ``family`` (a ``model_type``) into ``out_dir``."""
    if family not in TINY_VLM_BUILDERS:
        raise ValueError(f"no tiny builder for {family!r}; known: {sorted(TINY_VLM_BUILDERS)}")
    module, name = TINY_VLM_BUILDERS[family].split(":")
    builder = getattr(importlib.import_module(module), name)
    if family == "llava":
        from semclip.models.tiny import TinyLlavaConfig

        return builder(out_dir, TinyLlavaConfig(seed=seed))
    return builder(out_dir, seed=seed)

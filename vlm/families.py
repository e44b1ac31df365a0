"""What differs between VLM families, and the registry of them: the one place that knows them.

The scoring itself (``vlm/runtime.py``, ``vlm/shared_prefix.py``) is the same for every
family: rows are built by the family's own processor, images nested per row as its chat path
passes them, and a row is scored by one forward at its last token. With prefix sharing, the
[prompt start + overview] part of a question's rows is run once and its KV cache serves the
question's continuations. What a family may change is small, and lives here:

- ``needs``: packages its processor needs beyond transformers (a clear message names them);
- ``square_pad``: whether its own preprocessing pads images to a square first (LLaVA-1.5's
  ``expand2square``); the others take the image as it is;
- ``prompt_format``: the format ``--prompt-format auto`` means (``llava15`` for LLaVA-1.5, whose
  checkpoints are evaluated in that conversation form; the processor's chat template otherwise);
- ``psi``: whether the VLM-based psi scorer works (its vision features keep a [CLS] position);
- ``independent_images``: whether an image's tokens and pixels come out the same whatever other
  images share its row (false for LLaVA-OneVision, whose multi-image mode encodes an image
  differently beside another one: its rows are scored whole, never from a shared prefix);
- ``full_row_keys``: per-token inputs the model needs over the whole row, prefix included, when
  it continues from a cache (Gemma 3's ``token_type_ids`` drive bidirectional image blocks);
- ``positions``: position ids of a continuation (``offset + arange`` for 1-D RoPE; M-RoPE from
  the model's own ``get_rope_index`` over the full row for Qwen-VL);
- ``min_image_side``: the smallest image the model can encode (Mistral 3's Pixtral vision fails on
  an image of a single token); a question with a smaller overview or cell is refused up front and
  recorded as skipped (``image_too_small``), never enlarged.

Adding a family is one entry in :data:`FAMILIES` (and a subclass only if its positions or its
smallest image differ) plus a tiny offline builder (``semclip.models.tiny`` for LLaVA-1.5,
``semclip.models.tiny_vlms`` for the others), named by the entry's ``tiny_builder``:
:func:`build_tiny_vlm` imports it by that name when a test or a benchmark asks, the only way this
room reaches ``models/``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from semclip.vlm.render import PROMPT_FORMATS


@dataclass(frozen=True)
class FullRow:
    """One row as the model would see it unshared: ids and per-token inputs over the whole
    sequence, and the per-image inputs of its images in order (e.g. ``image_grid_thw`` rows)."""

    ids: torch.Tensor  # (T,)
    tokens: dict[str, torch.Tensor]  # each (T,)
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # each (n_images, ...)


@dataclass(frozen=True)
class Family:
    """A VLM family with 1-D positions (LLaVA, LLaVA-NeXT, Idefics3, Gemma 3, InternVL, ...)."""

    name: str
    checkpoint: str
    """A published checkpoint of the family to label with (README's support table)."""
    needs: tuple[str, ...] = ()
    square_pad: bool = False
    prompt_format: str = "chat_template"
    psi: bool = False
    tiny_builder: str = ""
    """``module:function`` of the offline tiny checkpoint builder (tests, benchmarks)."""
    independent_images: bool = True
    full_row_keys: tuple[str, ...] = ()
    image_keys: tuple[str, ...] = ()
    """Per-image processor outputs that :meth:`positions` reads (one row per image)."""

    def positions(
        self, model, rows: Sequence[FullRow], offset: int, width: int
    ) -> torch.Tensor | None:
        """Position ids ``(B, width)`` of the tokens from ``offset`` on in each full row."""
        del model
        return (offset + torch.arange(width)).expand(len(rows), -1)

    def min_image_side(self, model_config) -> int:
        """An image is encodable when its longer side is at least this many pixels (0: any
        image is); labeling refuses a question whose overview or a cell is not, before scoring."""
        del model_config
        return 0

    def missing_packages(self) -> list[str]:
        """The packages of :attr:`needs` that are not installed."""
        return [p for p in self.needs if importlib.util.find_spec(p) is None]


@dataclass(frozen=True)
class MRopeFamily(Family):
    """Qwen2-VL, Qwen2.5-VL, Qwen3-VL: 3-D multimodal RoPE, whose positions after an image
    depend on the image's grid, so a continuation's positions come from the model's own
    ``get_rope_index`` over the full row (an ``offset + arange`` would be silently wrong)."""

    image_keys: tuple[str, ...] = ("image_grid_thw",)

    def positions(
        self, model, rows: Sequence[FullRow], offset: int, width: int
    ) -> torch.Tensor | None:
        out = []
        for row in rows:
            full, _ = model.model.get_rope_index(
                input_ids=row.ids[None],
                mm_token_type_ids=row.tokens["mm_token_type_ids"][None],
                image_grid_thw=row.images.get("image_grid_thw"),
                attention_mask=torch.ones_like(row.ids)[None],
            )  # (3, 1, T)
            part = full[:, 0, offset:]
            pad = part[:, -1:].expand(-1, width - part.shape[1]) if part.shape[1] < width else None
            out.append(part if pad is None else torch.cat([part, pad], dim=1))
        return torch.stack(out, dim=1)  # (3, B, width)


@dataclass(frozen=True)
class PixtralFamily(Family):
    """Mistral 3 (Pixtral vision): one image token per (patch x merge)^2 pixels, so an image
    whose sides are both at most patch x merge pixels (28 for Mistral 3.1, 16 for the tiny model)
    is a single token. The model's ``get_image_features`` squeezes a lone feature row away and
    fails (``split_with_sizes expects split_sizes to sum exactly to <hidden size>``) whenever that
    token is the only image token of a forward, so whether such an image scores would depend on
    what shares its batch.

    Such images are refused up front rather than enlarged: the processor already stretches a
    small image to whole tokens, and stretching it further would show the model detail the image
    does not have (and give a cell label the scorer never meets at that size); a recorded skip
    says honestly what happened, whatever the batch or the mode."""

    def min_image_side(self, model_config) -> int:
        one_token = model_config.vision_config.patch_size * model_config.spatial_merge_size
        return one_token + 1


_TORCHVISION = ("torchvision",)
_TINY = "semclip.models.tiny_vlms"

#: model_type -> family. The families tested offline on tiny models (tests/test_families.py).
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "llava",
            "llava-hf/llava-1.5-7b-hf",
            square_pad=True,
            prompt_format="llava15",
            psi=True,
            tiny_builder="semclip.models.tiny:build_tiny_llava",
        ),
        Family(
            "llava_next",
            "llava-hf/llava-v1.6-vicuna-7b-hf",
            tiny_builder=f"{_TINY}.llava_next:build_tiny_llava_next",
        ),
        Family(
            "llava_onevision",
            "llava-hf/llava-onevision-qwen2-7b-ov-hf",
            needs=_TORCHVISION,
            independent_images=False,
            tiny_builder=f"{_TINY}.llava_next:build_tiny_llava_onevision",
        ),
        MRopeFamily(
            "qwen2_vl",
            "Qwen/Qwen2-VL-7B-Instruct",
            needs=_TORCHVISION,
            tiny_builder=f"{_TINY}.qwen:build_tiny_qwen2_vl",
        ),
        MRopeFamily(
            "qwen2_5_vl",
            "Qwen/Qwen2.5-VL-7B-Instruct",
            needs=_TORCHVISION,
            tiny_builder=f"{_TINY}.qwen:build_tiny_qwen2_5_vl",
        ),
        MRopeFamily(
            "qwen3_vl",
            "Qwen/Qwen3-VL-8B-Instruct",
            needs=_TORCHVISION,
            tiny_builder=f"{_TINY}.qwen:build_tiny_qwen3_vl",
        ),
        Family(
            "idefics3",
            "HuggingFaceM4/Idefics3-8B-Llama3",
            tiny_builder=f"{_TINY}.idefics:build_tiny_idefics3",
        ),
        Family(
            "smolvlm",
            "HuggingFaceTB/SmolVLM-Instruct",
            needs=("torchvision", "num2words"),
            tiny_builder=f"{_TINY}.idefics:build_tiny_smolvlm",
        ),
        Family(
            "gemma3",
            "google/gemma-3-4b-it",
            full_row_keys=("token_type_ids",),
            tiny_builder=f"{_TINY}.gemma3:build_tiny_gemma3",
        ),
        Family(
            "internvl",
            "OpenGVLab/InternVL3-8B-hf",
            needs=_TORCHVISION,
            tiny_builder=f"{_TINY}.internvl:build_tiny_internvl",
        ),
        PixtralFamily(
            "mistral3",
            "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
            needs=_TORCHVISION,
            tiny_builder=f"{_TINY}.mistral3:build_tiny_mistral3",
        ),
    ]
}

#: Families not in the registry are scored whole (one forward, no prefix sharing): sharing is
#: used only where a family's position rule and image encoding are known to make it exact.
UNKNOWN = Family("unknown", "", independent_images=False)


def family_for(model_type: str) -> Family:
    """The registered family of ``model_type``, or :data:`UNKNOWN`."""
    return FAMILIES.get(model_type, UNKNOWN)


def require_packages(family: Family, model: str) -> None:
    """Raise a one-line error naming the packages ``family``'s processor needs and lacks."""
    missing = family.missing_packages()
    if missing:
        raise ImportError(
            f"{model} ({family.name}) needs {' and '.join(missing)}: "
            f"pip install {' '.join(missing)}  (or pip install 'semclip[vlms]')"
        )


def resolve_prompt_format(requested: str, family: Family) -> str:
    """``llava15`` or ``chat_template``: ``requested``, or for ``auto`` the family's own."""
    if requested not in PROMPT_FORMATS:
        raise ValueError("prompt format must be 'auto', 'llava15' or 'chat_template'")
    return family.prompt_format if requested == "auto" else requested


def build_tiny_vlm(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the offline tiny random checkpoint of ``family`` (a registered name) into
    ``out_dir``, with its builder in ``semclip.models.tiny_vlms`` (for tests and benchmarks)."""
    entry = FAMILIES.get(family)
    if entry is None or not entry.tiny_builder:
        raise ValueError(f"no tiny builder for {family!r}; known: {sorted(FAMILIES)}")
    module, name = entry.tiny_builder.split(":")
    return getattr(importlib.import_module(module), name)(out_dir, seed=seed)

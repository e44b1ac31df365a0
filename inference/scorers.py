"""Cell scorers: who ranks the n x n crops of a question for SemClip.

- ``DualEncoderScorer``: an exported semclip scorer, or a stock CLIP/SigLIP (zero-shot), through
  :class:`semclip.models.selector.Selector`, reading the text the scorer was trained on;
- ``VLMPsiScorer`` (``vlm-psi``): the VLM's own similarity, the paper's VLM-based psi
  (``semclip.inference.vlm_psi``);
- ``RandomScorer`` (``random`` or ``random:SEED``): seeded uniform scores, one draw per question.

Each returns ``(B, n*n)`` scores, row-major cells, higher = more relevant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from PIL import Image

from semclip.models.scorer import scorer_text

#: The VLM-based psi scorer's spec.
PSI = "vlm-psi"


@dataclass
class Query:
    """One question as a scorer sees it: the overview (RGB) and the question's texts."""

    overview: Image.Image
    question: str
    hint: str = ""
    choices: list[str] = field(default_factory=list)


class CellScorer(Protocol):
    """Scores every cell of each query's n x n grid."""

    def cell_scores(self, queries: Sequence[Query], grid: int) -> torch.Tensor: ...


class DualEncoderScorer:
    """A CLIP/SigLIP-style scorer: cosine of the question's text and each crop, scaled."""

    def __init__(self, selector) -> None:
        self.selector = selector

    @classmethod
    def load(cls, path: str, device: str | None = None, dtype: torch.dtype | None = None):
        from semclip.models.selector import Selector

        return cls(Selector.from_pretrained(path, device=device, dtype=dtype))

    @property
    def grid(self) -> int | None:
        """The grid the scorer was trained for, when its export records one."""
        return getattr(self.selector.scorer, "grid", None)

    def cell_scores(self, queries: Sequence[Query], grid: int) -> torch.Tensor:
        mode = self.selector.scorer.text_mode
        texts = [scorer_text(q.question, q.hint, q.choices, mode) for q in queries]
        scores, _ = self.selector.cell_scores([q.overview for q in queries], texts, grid)
        return scores


class RandomScorer:
    """Uniform random scores, seeded per question (the same question always gets the same
    draw for a seed), so its top-k is a uniformly random k-subset in random order."""

    grid = None

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def cell_scores(self, queries: Sequence[Query], grid: int) -> torch.Tensor:
        rows = []
        for q in queries:
            key = "\x1f".join([str(self.seed), q.question, *q.choices]).encode("utf-8")
            seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
            rows.append(torch.rand(grid * grid, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(rows)


def load_scorer(spec: str, vlm=None, device: str | None = None) -> CellScorer:
    """A scorer from its spec: ``random[:SEED]``, ``vlm-psi`` (needs ``vlm``), or the folder or
    hub id of a dual-encoder scorer."""
    if spec == "random" or spec.startswith("random:"):
        _, _, seed = spec.partition(":")
        if seed and not seed.isdigit():
            raise ValueError(f"scorer {spec!r}: the random scorer's seed must be an integer")
        return RandomScorer(int(seed or 0))
    if spec == PSI:
        if vlm is None:
            raise ValueError("the vlm-psi scorer is the VLM's own similarity: it needs a VLM")
        from semclip.inference.vlm_psi import VLMPsiScorer

        return VLMPsiScorer(vlm)
    return DualEncoderScorer.load(spec, device=device)

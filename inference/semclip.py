"""SemClip: a VLM answers from the overview plus the k crops a scorer picks.

    semclip = SemClip.from_pretrained("llava-hf/llava-1.5-7b-hf", scorer="runs/x/export", k=1)
    [answer] = semclip.answer([image], ["What color is the star?"], [["red", "blue"]])
    answer.letter, answer.logprobs, answer.boxes   # "B", per-letter log-probs, chosen crops

The image is cut into the n x n grid, every cell is scored, and the VLM sees [overview, best crop,
second crop, ..., prompt]: rendered, padded and processed by the VLM runtime labeling uses
(``semclip.vlm.runtime.VLM.score_views``), so k = 1 gives exactly what a label set records for
that cell and k = 0 the overview-only baseline. The grid is the scorer's own (the one it was
trained for, saved with its export) unless one is given. Multiple choice is answered by one
forward (the option letter with the highest log-prob); ``mode="generate"`` decodes greedily and
parses the answer instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from semclip.data.grid import Box, Cell, check_grid, crop_grid
from semclip.data.images import DEFAULT_MAX_PIXELS, load_image
from semclip.data.prompts import option_letters, render_prompt
from semclip.inference.scorers import PSI, CellScorer, Query, load_scorer
from semclip.vlm.config import VLMConfig
from semclip.vlm.runtime import VLM

logger = logging.getLogger(__name__)


@dataclass
class Answer:
    """The VLM's answer to one question with SemClip's crops."""

    letter: str
    """The predicted option letter (``unparsed`` when a generated answer names none)."""
    logprobs: list[float]
    """Log-probability of each option letter (A, B, ...) as the next token."""
    indices: list[int]
    """The cells fed to the VLM, best first (row-major indices); empty for k = 0."""
    boxes: list[Box]
    """Their boxes (left, top, right, bottom) in the image's pixels."""
    scores: list[float]
    """Every cell's score (empty for k = 0)."""
    grid: int

    @property
    def choice_index(self) -> int | None:
        """The predicted option as an index into the choices (``None`` if unparsed)."""
        return ord(self.letter) - ord("A") if len(self.letter) == 1 else None


@dataclass
class Prepared:
    """One question ready for SemClip: decoded overview, its cells and the rendered prompt."""

    overview: Image.Image
    cells: list[Cell]
    prompt: str
    letters: list[str]
    query: Query


@dataclass
class SemClipConfig:
    """SemClip: which VLM and what it is shown, which scorer, how many crops."""

    vlm: VLMConfig = field(default_factory=VLMConfig)
    """The VLM (keep its settings as the labels were made: ``labelset.json``'s ``vlm``)."""
    scorer: str | None = None
    """An exported scorer or stock CLIP/SigLIP (folder or hub id), ``vlm-psi``,
    ``random[:SEED]``, or ``None`` for the plain VLM."""
    grid: int | None = None
    """Grid n; ``None``: the grid the scorer was trained for, else 2."""
    k: int = 1
    """Crops shown beside the overview (0 = the plain VLM)."""
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    """Largest image (width * height) accepted."""


class SemClip:
    """A VLM plus a cell scorer; see the module docstring."""

    def __init__(
        self,
        vlm: VLM,
        scorer: CellScorer | None = None,
        grid: int = 2,
        k: int = 1,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        check_grid(grid)
        self.vlm, self.scorer, self.grid = vlm, scorer, grid
        self.template, self.max_pixels = vlm.config.template, max_pixels
        self.k = self._check_k(k)

    @classmethod
    def from_pretrained(
        cls,
        vlm: str,
        scorer: str | None = None,
        grid: int | None = None,
        k: int = 1,
        device: str | None = None,
        **vlm_options,
    ) -> SemClip:
        """Load the VLM (any family labeling supports) and the scorer: an exported semclip
        scorer or a stock CLIP/SigLIP (folder or hub id), ``vlm-psi``, ``random[:SEED]``, or
        ``None`` for the plain VLM. ``grid`` defaults to the one the scorer was trained for,
        else 2. ``vlm_options`` are :class:`~semclip.vlm.config.VLMConfig` fields (``dtype``,
        ``mode``, ``system_prompt``, ``image_backend``, ...): keep them as the labels were made."""
        vlm_config = VLMConfig(model=vlm, device=device, **vlm_options)
        return cls.from_config(SemClipConfig(vlm_config, scorer=scorer, grid=grid, k=k))

    @classmethod
    def from_config(cls, config: SemClipConfig) -> SemClip:
        """Load the scorer first (its grid decides the crops), then the VLM."""
        device = config.vlm.device
        scorer = None
        if config.scorer is not None and config.scorer != PSI:
            scorer = load_scorer(config.scorer, device=device)
        grid = config.grid or getattr(scorer, "grid", None) or 2
        check_grid(grid)
        vlm = VLM(config.vlm)
        if config.scorer == PSI:  # the VLM's own similarity: it needs the VLM
            scorer = load_scorer(config.scorer, vlm, device=device)
        k = config.k if scorer is not None else 0
        return cls(vlm, scorer, grid=grid, k=k, max_pixels=config.max_pixels)

    def _check_k(self, k: int) -> int:
        if not 0 <= k <= self.grid * self.grid:
            raise ValueError(f"k must be in 0..{self.grid**2} for a {self.grid}x{self.grid} grid")
        if k and self.scorer is None:
            raise ValueError(f"k = {k} crops need a scorer (k = 0 is the plain VLM)")
        return k

    def prepare(
        self, image, question: str, choices: Sequence[str], hint: str | None = None
    ) -> Prepared:
        """Decode and cut one image and render its prompt, as labeling does (``prepare_item``)."""
        overview = load_image(image, max_pixels=self.max_pixels, alpha=self.vlm.config.alpha)
        choices = [str(c) for c in choices]
        return Prepared(
            overview=overview,
            cells=crop_grid(overview, self.grid),
            prompt=render_prompt(question, choices, hint, self.template),
            letters=option_letters(len(choices)),
            query=Query(overview, question, (hint or "").strip(), choices),
        )

    def select(self, prepared: Sequence[Prepared], k: int) -> tuple[list[list[int]], torch.Tensor]:
        """The top-``k`` cells of each question, best first, and every cell's score."""
        if k == 0:
            return [[] for _ in prepared], torch.empty(len(prepared), 0)
        scores = self.scorer.cell_scores([p.query for p in prepared], self.grid)
        return torch.topk(scores, k, dim=1).indices.tolist(), scores

    def answer_prepared(
        self, prepared: Sequence[Prepared], picks: Sequence[Sequence[int]]
    ) -> list[tuple[list[float], str]]:
        """Letter log-probs and the predicted letter for [overview, *picked cells, prompt]."""
        views = [
            [p.overview, *(p.cells[i].image for i in pick)] for p, pick in zip(prepared, picks)
        ]
        if self.vlm.config.mode == "generate":
            return [
                self.vlm.generate_views(p.prompt, v, p.letters) for p, v in zip(prepared, views)
            ]
        logprobs = self.vlm.score_views(
            [p.prompt for p in prepared], views, [p.letters for p in prepared]
        )
        return [
            (lp, p.letters[max(range(len(lp)), key=lp.__getitem__)])
            for lp, p in zip(logprobs, prepared)
        ]

    def answer(
        self,
        images: Sequence,
        questions: Sequence[str],
        choices: Sequence[Sequence[str]],
        hints: Sequence[str | None] | None = None,
        k: int | None = None,
    ) -> list[Answer]:
        """Answer a batch of multiple-choice questions with the top-``k`` crops (default: the
        ``k`` given at construction; 0 = the plain VLM)."""
        k = self._check_k(self.k if k is None else k)
        if not len(images) == len(questions) == len(choices):
            raise ValueError(
                f"{len(images)} images, {len(questions)} questions and {len(choices)} choice lists"
            )
        hints = list(hints) if hints is not None else [None] * len(images)
        prepared = [self.prepare(*args) for args in zip(images, questions, choices, hints)]
        picks, scores = self.select(prepared, k)
        answers = []
        for p, pick, row, (lp, letter) in zip(
            prepared, picks, scores, self.answer_prepared(prepared, picks)
        ):
            answers.append(
                Answer(
                    letter=letter,
                    logprobs=lp,
                    indices=pick,
                    boxes=[p.cells[i].box for i in pick],
                    scores=row.tolist(),
                    grid=self.grid,
                )
            )
        return answers

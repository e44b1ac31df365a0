"""Cut a request's first image into the grid, score the cells, keep the top k.

The overview goes to the inner model as the request had it; the crops are cut from its RGB
decoding (:func:`semclip.data.images.load_image`), as SemClip cuts them. A request without an
image (text-only ScienceQA rows, videos given as paths) is passed through unchanged and
recorded as such, so every logged sample says what the model saw.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from semclip.data.grid import check_grid, crop_grid
from semclip.data.images import ImageError, load_image
from semclip.inference.scorers import CellScorer, Query
from semclip.integrations.lmms_eval.queries import doc_texts
from semclip.models.scorer import scorer_text

logger = logging.getLogger(__name__)


@dataclass
class Request:
    """What selection needs from one lmms-eval request."""

    visuals: list
    """The request's visuals as its task gives them (images, video paths, ...)."""
    doc: Mapping[str, Any]
    """The task's document (its columns give the scorer's text)."""
    context: str
    """The prompt text (the scorer's question when the document has none)."""


@dataclass
class Pick:
    """The visuals the inner model gets for one request, and what to log about them."""

    visuals: list
    """[overview, best crop, ..., the request's other visuals]; unchanged when ``record``
    says ``skipped``."""
    record: dict
    """Grid, k, chosen cells (best first) with boxes, every cell's score, the scorer's text."""


class CropPicker:
    """A scorer, the grid it ranks and how many crops to add (``k`` >= 1)."""

    def __init__(self, scorer: CellScorer, grid: int, k: int) -> None:
        check_grid(grid)
        if not 1 <= k <= grid * grid:
            raise ValueError(f"k must be in 1..{grid * grid} for a {grid}x{grid} grid, got {k}")
        self.scorer, self.grid, self.k = scorer, grid, k

    def text_mode(self) -> str:
        """The text the scorer reads: its saved mode (dual encoders), else the question."""
        inner = getattr(getattr(self.scorer, "selector", None), "scorer", None)
        return getattr(inner, "text_mode", "question")

    def query(self, request: Request) -> Query | None:
        """The scorer's view of a request, or ``None`` when it has no usable first image."""
        if not request.visuals or not isinstance(request.visuals[0], Image.Image):
            return None
        try:
            overview = load_image(request.visuals[0], max_pixels=None)
        except ImageError as err:
            logger.warning("passing a request through unchanged: its image is unusable (%s)", err)
            return None
        if min(overview.size) < self.grid:
            return None
        question, hint, choices = doc_texts(request.doc, request.context)
        return Query(overview, question, hint, choices)

    @torch.inference_mode()
    def pick(self, requests: Sequence[Request]) -> list[Pick]:
        """One :class:`Pick` per request; the scorer runs once over those with an image."""
        queries = [self.query(r) for r in requests]
        scored = [q for q in queries if q is not None]
        scores = self.scorer.cell_scores(scored, self.grid) if scored else torch.empty(0)
        rows = iter(scores)
        picks = []
        for request, query in zip(requests, queries):
            if query is None:
                picks.append(Pick(list(request.visuals), {"skipped": "no image to crop"}))
                continue
            picks.append(self.picked(request, query, next(rows).float()))
        return picks

    def picked(self, request: Request, query: Query, scores: torch.Tensor) -> Pick:
        """[overview, top-k crops, other visuals] and its record, for one scored request."""
        cells = crop_grid(query.overview, self.grid)
        best = torch.topk(scores, self.k).indices.tolist()
        record = {
            "grid": self.grid,
            "k": self.k,
            "cells": best,
            "boxes": [list(cells[i].box) for i in best],
            "scores": [round(s, 6) for s in scores.tolist()],
            "scorer_text": scorer_text(query.question, query.hint, query.choices, self.text_mode()),
        }
        crops = [cells[i].image for i in best]
        return Pick([request.visuals[0], *crops, *request.visuals[1:]], record)

"""The evaluator interface and the label rows derived from what it returns.

An evaluator sees a batch of :class:`LabelItem` (overview, grid cells, rendered prompt, option
letters) and returns, per item, the log-probabilities of the option letters for every cell shown
as [overview, cell, prompt] and for the overview alone (the baseline). It does not decide labels:
:func:`label_row` derives them (predicted letter = argmax over the question's own letters;
p(correct) = softmax over those letters at the answer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from semclip.data.grid import Cell, crop_grid
from semclip.data.images import DEFAULT_ALPHA, DEFAULT_MAX_PIXELS, ImageError, load_image
from semclip.data.labels import UNPARSED, LabelProvenance
from semclip.data.prompts import (
    DEFAULT_TEMPLATE,
    TooManyChoicesError,
    option_letters,
    render_prompt,
)
from semclip.data.scienceqa import QARecord


@dataclass
class LabelItem:
    """One question ready for an evaluator."""

    qid: str
    split: str
    row: int
    overview: Image.Image
    cells: list[Cell]
    prompt: str
    letters: list[str]
    answer: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skip:
    """A question that cannot be labelled, and why (recorded, never fatal)."""

    qid: str
    split: str
    row: int
    reason: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ItemScores:
    """Per item: option-letter log-probs for each cell (n*n, k) and for the overview alone (k,).

    In ``generate`` mode the parsed answers (a letter or ``"unparsed"``) are given too and decide
    the prediction; the log-probs are then those of the first generated token. An evaluator that
    only answers (an API model, a rule) gives ``cell_answers`` and ``base_answer`` and no
    log-probs: the label set then records a one-hot distribution (log-prob 0 for the answered
    letter, -inf for the others, uniform for ``"unparsed"``), so p(correct) is 1 or 0.
    """

    cell_logprobs: list[list[float]] | None = None
    base_logprobs: list[float] | None = None
    cell_answers: list[str] | None = None
    base_answer: str | None = None


class Evaluator(Protocol):
    """What the labeling loop needs of an evaluator."""

    provenance: LabelProvenance

    def score(self, items: Sequence[LabelItem]) -> list[ItemScores]: ...


def prepare_item(
    record: QARecord,
    grid: int,
    template: str = DEFAULT_TEMPLATE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    alpha: str = DEFAULT_ALPHA,
) -> LabelItem | Skip:
    """Decode, check and crop one record; any problem becomes a :class:`Skip` with its reason
    (``no_image``, ``no_choices``, ``too_many_choices``, ``bad_answer``, ``multiple_images``,
    ``bad_image:<reason>``, ``image_too_small``)."""

    def skip(reason: str) -> Skip:
        return Skip(record.qid, record.split, record.row, reason, record.meta)

    if record.image is None:  # a text-only question
        return skip("no_image")
    try:
        letters = option_letters(len(record.choices))
    except TooManyChoicesError:
        return skip("too_many_choices")
    except ValueError:
        return skip("no_choices")
    if record.answer is None or not 0 <= record.answer < len(letters):
        return skip("bad_answer")
    if isinstance(record.image, list):  # several images (video frames): one view per question
        return skip("multiple_images")
    try:
        image = load_image(record.image, max_pixels=max_pixels, alpha=alpha)
    except ImageError as err:
        return skip(f"bad_image:{err.reason}" if err.reason != "missing" else "no_image")
    try:
        cells = crop_grid(image, grid)
    except ValueError:
        return skip("image_too_small")
    prompt = render_prompt(record.question, record.choices, record.hint, template)
    return LabelItem(
        qid=record.qid,
        split=record.split,
        row=record.row,
        overview=image,
        cells=cells,
        prompt=prompt,
        letters=letters,
        answer=record.answer,
        meta=record.meta,
    )


def _softmax_at(logprobs: Sequence[float], index: int) -> float:
    top = max(logprobs)
    total = sum(math.exp(v - top) for v in logprobs)
    return math.exp(logprobs[index] - top) / total


def _predict(logprobs: Sequence[float], letters: Sequence[str], parsed: str | None) -> str:
    if parsed is not None:
        return parsed if parsed in letters else UNPARSED
    return letters[max(range(len(letters)), key=lambda i: logprobs[i])]


def label_row(item: LabelItem, scores: ItemScores, provenance: LabelProvenance) -> dict[str, Any]:
    """The label-set row for one scored question."""
    k, truth = len(item.letters), item.letters[item.answer]
    scores = _with_logprobs(item, scores)
    if len(scores.cell_logprobs) != len(item.cells) or any(
        len(c) != k for c in [*scores.cell_logprobs, scores.base_logprobs]
    ):
        raise ValueError(f"{item.qid}: evaluator returned scores of the wrong shape")
    parsed = scores.cell_answers or [None] * len(item.cells)
    cell_pred = [
        _predict(lp, item.letters, p) for lp, p in zip(scores.cell_logprobs, parsed, strict=True)
    ]
    base_pred = _predict(scores.base_logprobs, item.letters, scores.base_answer)
    return {
        **_common(item.qid, item.split, item.row, item.meta, provenance),
        "status": "labelled",
        "skip_reason": None,
        "letters": list(item.letters),
        "answer": item.answer,
        "cell_boxes": [list(c.box) for c in item.cells],
        "cell_logprobs": [list(map(float, c)) for c in scores.cell_logprobs],
        "cell_pred": cell_pred,
        "cell_correct": [p == truth for p in cell_pred],
        "cell_p_correct": [_softmax_at(lp, item.answer) for lp in scores.cell_logprobs],
        "base_logprobs": list(map(float, scores.base_logprobs)),
        "base_pred": base_pred,
        "base_correct": base_pred == truth,
        "base_p_correct": _softmax_at(scores.base_logprobs, item.answer),
    }


def _with_logprobs(item: LabelItem, scores: ItemScores) -> ItemScores:
    """``scores`` with the one-hot log-probs of its answers where it gives none."""
    if scores.cell_logprobs is not None and scores.base_logprobs is not None:
        return scores
    if scores.cell_answers is None or scores.base_answer is None:
        raise ValueError(
            f"{item.qid}: the evaluator returned neither log-probs nor answers (ItemScores needs "
            "cell_logprobs and base_logprobs, or cell_answers and base_answer)"
        )

    def one_hot(answer: str) -> list[float]:
        if answer not in item.letters:
            return [0.0] * len(item.letters)  # unparsed: no letter preferred
        return [0.0 if letter == answer else -math.inf for letter in item.letters]

    return ItemScores(
        cell_logprobs=scores.cell_logprobs or [one_hot(a) for a in scores.cell_answers],
        base_logprobs=scores.base_logprobs or one_hot(scores.base_answer),
        cell_answers=scores.cell_answers,
        base_answer=scores.base_answer,
    )


def skip_row(skip: Skip, provenance: LabelProvenance) -> dict[str, Any]:
    """The label-set row recording a skipped question and its reason."""
    return {
        **_common(skip.qid, skip.split, skip.row, skip.meta, provenance),
        "status": "skipped",
        "skip_reason": skip.reason,
    }


def _common(qid, split, row, meta, provenance: LabelProvenance) -> dict[str, Any]:
    subject = meta.get("subject")
    return {
        "qid": qid,
        "split": split,
        "row": row,
        "grid_n": provenance.grid_n,
        "subject": None if subject is None else str(subject),
        "evaluator": provenance.evaluator,
        "revision": provenance.revision,
        "dtype": provenance.dtype,
        "mode": provenance.mode,
        "template_hash": provenance.template_hash,
        "resume_key": provenance.resume_key,
    }

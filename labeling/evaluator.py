"""The evaluator interface and the label rows derived from what it returns.

An evaluator sees a batch of :class:`LabelItem` (overview, grid cells, rendered prompt, option
letters) and returns, per item, the log-probabilities of the option letters for every cell shown
as [overview, cell, prompt] and for the overview alone (the baseline). It does not decide labels:
:func:`label_row` derives them (predicted letter = argmax over the question's own letters;
p(correct) = softmax over those letters at the answer).

:class:`IsolatedScorer` keeps one question's failure inside the evaluator from costing the run: the
question becomes a :class:`Skip` (``model_error:<ExceptionType>``), unless every question so far
failed, which stops the run with :class:`ScoringError`.
"""

from __future__ import annotations

import logging
import math
import sys
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

logger = logging.getLogger(__name__)

#: Skip reason prefix of a question that failed inside the evaluator: ``model_error:<Type>``.
MODEL_ERROR = "model_error"


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
    """What the labeling loop needs of an evaluator. It may also have ``refuse(item) -> str |
    None``: a skip reason for a question it cannot score, asked before scoring (the HF evaluator
    refuses images smaller than its model can encode)."""

    provenance: LabelProvenance

    def score(self, items: Sequence[LabelItem]) -> list[ItemScores]: ...


def refuse_upfront(evaluator: Evaluator, entry: LabelItem | Skip) -> LabelItem | Skip:
    """``entry``, or a :class:`Skip` with the reason the evaluator's optional ``refuse`` gives."""
    refuse = getattr(evaluator, "refuse", None)
    reason = refuse(entry) if refuse is not None and isinstance(entry, LabelItem) else None
    if reason is None:
        return entry
    return Skip(entry.qid, entry.split, entry.row, reason, entry.meta)


class ScoringError(RuntimeError):
    """Every question scored so far failed inside the evaluator: its model or setup is at fault,
    not a row, so the run stops rather than record a label set of nothing but skips."""


def device_error(err: BaseException) -> bool:
    """CUDA out of memory (the runtime already halves its batch, so one more is the device's
    limit) and other accelerator errors (they leave the device unusable for every question after):
    errors of the device, not of a question, so they stop the run."""
    torch = sys.modules.get("torch")  # an evaluator that never imported torch raised neither
    if torch is None:
        return False
    return isinstance(err, (torch.cuda.OutOfMemoryError, getattr(torch, "AcceleratorError", ())))


class IsolatedScorer:
    """An evaluator's ``score``, where one question's failure costs only that question.

    A batch whose scoring raises is scored again one question at a time; a question that still
    fails becomes ``Skip(reason="model_error:<ExceptionType>")``, the first of each type logged
    with its message. Device errors (:func:`device_error`), ``KeyboardInterrupt`` and other
    non-``Exception`` errors propagate. :attr:`hopeless` says every question so far failed.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.scored = 0
        self.failed = 0
        self.first: tuple[str, Exception] | None = None
        """The first failed question's id and error."""
        self._logged: set[str] = set()

    @property
    def hopeless(self) -> bool:
        """Whether questions failed and none was scored: the run should stop (:meth:`error`)."""
        return self.failed > 0 and self.scored == 0

    def score(self, items: Sequence[LabelItem]) -> list[ItemScores | Skip]:
        """Per item, its scores, or a ``model_error`` skip when it failed inside the evaluator."""
        if not items:
            return []
        try:
            results: list[ItemScores | Skip] = list(self.evaluator.score(items))
        except Exception as err:
            if device_error(err):
                raise
            results = self._one_by_one(items, err)
        self.scored += sum(not isinstance(r, Skip) for r in results)
        return results

    def error(self) -> ScoringError:
        """The one-line error that stops a run whose every question failed."""
        qid, err = self.first or ("?", RuntimeError("unknown"))
        first = (str(err).strip().splitlines() or [""])[0]
        return ScoringError(
            f"all {self.failed} question(s) scored so far failed inside the evaluator, the first "
            f"({qid}) with {type(err).__name__}: {first} (nothing was recorded for them; "
            "--debug shows the traceback)"
        )

    def _one_by_one(self, items: Sequence[LabelItem], err: Exception) -> list[ItemScores | Skip]:
        if len(items) == 1:
            return [self._failed(items[0], err)]
        self._log_once(
            f"batch:{type(err).__name__}",
            "a batch of %d questions failed (%s: %s): scoring them one at a time",
            len(items),
            type(err).__name__,
            err,
        )
        return [self._score_one(item) for item in items]

    def _score_one(self, item: LabelItem) -> ItemScores | Skip:
        try:
            return self.evaluator.score([item])[0]
        except Exception as err:
            if device_error(err):
                raise
            return self._failed(item, err)

    def _failed(self, item: LabelItem, err: Exception) -> Skip:
        self.failed += 1
        self.first = self.first or (item.qid, err)
        reason = f"{MODEL_ERROR}:{type(err).__name__}"
        message = "%s failed in the evaluator (%s: %s): recorded as skipped (%s)"
        self._log_once(reason, message, item.qid, type(err).__name__, err, reason)
        return Skip(item.qid, item.split, item.row, reason, item.meta)

    def _log_once(self, key: str, message: str, *args) -> None:
        """A warning the first time for ``key``, debug after (one bad row type, one line)."""
        level = logging.DEBUG if key in self._logged else logging.WARNING
        self._logged.add(key)
        logger.log(level, message, *args)


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

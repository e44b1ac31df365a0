"""A simulated evaluator for the synthetic dataset: a stand-in for a VLM, not a model.

It reads the synthetic set's ground truth (``target_box``) instead of looking at pixels, and answers
correctly exactly when the asked-about object would be legible to a VLM that resizes every image it
is shown to one fixed input size (LLaVA-1.5: 336 px), so that what counts is the object's size
relative to the view:

- in the cell shown: the cell holds at least ``min_overlap`` of the object's area and the object
  spans at least ``min_visible`` of the cell's longer side;
- in the overview (shown with every cell, and alone for the baseline): the object spans at least
  ``min_visible`` of the image's longer side (large objects need no crop).

Otherwise it picks a wrong letter, deterministically from the question id and the cell. The
log-probabilities it returns put ``confidence`` nats between the chosen letter and the others. It
gives the demo and the learning tests meaningful labels with no VLM at all; use the HF evaluator for
real labels.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from semclip.data.grid import Box
from semclip.data.labels import LabelProvenance
from semclip.data.prompts import DEFAULT_TEMPLATE, template_hash
from semclip.labeling.evaluator import ItemScores, LabelItem

SIMULATED_ID = "semclip/simulated"


@dataclass
class SimulatedConfig:
    """Legibility model of the simulated evaluator."""

    min_visible: float = 0.4
    """Smallest legible object side, as a fraction of the view's longer side."""
    min_overlap: float = 0.7
    """Share of the object's area a cell must hold for the object to count as in it."""
    confidence: float = 3.0
    """Log-odds of the chosen letter over each other letter."""


def _area(box: Sequence[int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _intersection(a: Sequence[int], b: Sequence[int]) -> Box:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


class SimulatedEvaluator:
    """Answers from the synthetic set's ground truth; see the module docstring."""

    def __init__(
        self, config: SimulatedConfig | None = None, grid: int = 2, template: str = DEFAULT_TEMPLATE
    ) -> None:
        self.config = config or SimulatedConfig()
        c = self.config
        self.provenance = LabelProvenance(
            evaluator=SIMULATED_ID,
            revision=f"vis{c.min_visible}-ov{c.min_overlap}-conf{c.confidence}",
            dtype="none",
            mode="simulated",
            grid_n=grid,
            template_hash=template_hash(template),
        )

    def _legible(self, item: LabelItem, view: Box) -> bool:
        """Whether the target is legible when ``view`` (a box of the image) is shown."""
        target = item.meta.get("target_box")
        if target is None:
            raise ValueError(
                f"{item.qid}: the simulated evaluator needs the synthetic set's target_box column"
            )
        if _area(_intersection(target, view)) < self.config.min_overlap * _area(target):
            return False
        side = max(target[2] - target[0], target[3] - target[1])
        return side >= self.config.min_visible * max(view[2] - view[0], view[3] - view[1])

    def _logprobs(self, item: LabelItem, correct: bool, salt: str) -> list[float]:
        k = len(item.letters)
        if correct:
            chosen = item.answer
        else:
            digest = hashlib.sha1(f"{item.qid}/{salt}".encode()).digest()
            chosen = (item.answer + 1 + digest[0] % (k - 1)) % k if k > 1 else item.answer
        logits = [self.config.confidence if i == chosen else 0.0 for i in range(k)]
        # log-softmax, so the numbers are real log-probabilities
        norm = math.log(sum(math.exp(v) for v in logits))
        return [v - norm for v in logits]

    def score(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        out = []
        for item in items:
            whole = (0, 0, item.overview.width, item.overview.height)
            in_overview = self._legible(item, whole)
            cells = [
                self._logprobs(item, in_overview or self._legible(item, cell.box), str(cell.index))
                for cell in item.cells
            ]
            out.append(ItemScores(cells, self._logprobs(item, in_overview, "overview")))
        return out

"""Where a question's rows can share a prefix, found from the processor's own token ids.

A question's rows are [overview, cell j, prompt] for every cell and [overview, prompt] (the
baseline). Their shared prefix is what comes before the cell's image span: the chat preamble and
the overview. It is cut from the processor's complete outputs, never assumed:

- ``offset`` = the common prefix of the baseline row and the first cell row (token ids); the
  overview's image tokens must all lie before it;
- a cell's continuation is what the processor makes of the text after the prefix with that cell
  alone (so pixels and per-image inputs come from the processor too); where the full row's
  tokenizer merged across the cut (e.g. Gemma 3's ``"\\n\\n"`` after one image and before the
  next), the full row's tokens at the seam (``head``) replace the continuation's first ``skip``
  tokens, which must be the same for every cell;
- the baseline's continuation is the baseline row's tail from ``offset``.

``plan_question`` returns ``None`` when a question does not fit this (its rows are then scored
whole), and every continuation is checked against the plan before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semclip.vlm.rows import Row


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """Length of the longest common prefix of two 1-D tensors."""
    n = min(len(a), len(b))
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0]) if len(differ) else n


@dataclass(frozen=True)
class QuestionPlan:
    """How one question's rows split into the shared prefix and their continuations."""

    offset: int
    head: Row
    skip: int
    seam: torch.Tensor  # the continuation's first ``skip`` ids every cell must start with
    baseline: Row  # the baseline's continuation

    def continuation(self, processed: Row) -> Row | None:
        """A cell's continuation from its processed tail, or ``None`` if it breaks the plan."""
        if not torch.equal(processed.ids[: self.skip], self.seam):
            return None
        return self.head + processed.slice(self.skip)


def plan_question(
    baseline: Row, first: Row, first_tail: Row, image_token_id: int
) -> QuestionPlan | None:
    """Plan a question from its processed baseline row, first cell row and first cell's tail.

    ``None`` when the overview's image tokens do not all lie in the common prefix, or when the
    cell row does not end with (a seam and) its processed tail.
    """
    offset = common_prefix(baseline.ids, first.ids)
    if offset == 0 or (baseline.ids[offset:] == image_token_id).any():
        return None
    rest = first.slice(offset)
    for skip in range(len(first_tail) + 1):
        kept = len(first_tail) - skip
        if kept > len(rest):
            continue
        if torch.equal(rest.ids[len(rest) - kept :], first_tail.ids[skip:]):
            seam, head = first_tail.ids[:skip], rest.ids[: len(rest) - kept]
            if (seam == image_token_id).any() or (head == image_token_id).any():
                return None  # image tokens belong to the cell's own part, never the seam
            return QuestionPlan(
                offset=offset,
                head=rest.slice(0, len(head)),
                skip=skip,
                seam=seam,
                baseline=baseline.slice(offset),
            )
    return None

"""Prefix sharing: a question's [chat preamble + overview] prefix is run once, and its KV cache
serves the question's n*n cell continuations and the overview-only baseline, batched.

Where the prefix is cut and how each continuation is checked is ``vlm/sharing.py``. The result
equals :meth:`semclip.vlm.runtime.VLM.question_logprobs` (every row run whole); a question whose
rows cannot share exactly is scored whole, never approximately, and counted in ``whole_rows``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from semclip.vlm.families import FullRow
from semclip.vlm.kv_cache import output_cache, select_cache_rows
from semclip.vlm.rows import Row, image_inputs, pad_rows, rows_of
from semclip.vlm.runtime import VLM, GridQuestion, restore
from semclip.vlm.sharing import QuestionPlan, plan_question

logger = logging.getLogger(__name__)


def shares_prefix(config, family) -> bool:
    """Whether scoring shares prefixes: asked for, one-forward mode, and exact for the family."""
    return config.prefix_sharing and config.mode == "logprob" and family.independent_images


@dataclass
class _Shared:
    """A batch of questions' cached prefixes."""

    cache: Any
    offset: int
    prefix: list[Row]
    prefix_images: dict[str, torch.Tensor]


class _Unshareable(Exception):
    """A continuation broke its question's plan: score the questions whole instead."""


class SharedPrefixScorer:
    """Full-vocabulary log-probs of every row of each question, from shared prefixes."""

    def __init__(self, vlm: VLM) -> None:
        self.vlm = vlm
        self.whole_rows = 0
        """Questions whose rows could not share a prefix exactly (scored whole)."""

    def question_logprobs(self, questions: Sequence[GridQuestion]) -> list[list[torch.Tensor]]:
        """Per question, the log-probs after each of its rows: cells, then the overview alone."""
        vlm = self.vlm
        two = [vlm.render(q.prompt, 2) for q in questions]
        one = [vlm.render(q.prompt, 1) for q in questions]
        tails = [a[vlm.cut(a, b) :] for a, b in zip(two, one)]
        base = vlm.process(one, [[q.overview] for q in questions])
        first = vlm.process(two, [[q.overview, q.cells[0].image] for q in questions])
        first_tails = vlm.process(tails, [[q.cells[0].image] for q in questions], False)
        plans = [
            plan_question(b, f, t, vlm.image_token_id)
            for b, f, t in zip(rows_of(base), rows_of(first), rows_of(first_tails))
        ]
        # one cache per group of questions whose prefixes have the same length
        groups: dict[int | None, list[int]] = {}
        for q, plan in enumerate(plans):
            groups.setdefault(None if plan is None else plan.offset, []).append(q)
        out: list[list[torch.Tensor] | None] = [None] * len(questions)
        for offset, qs in groups.items():
            picked = [questions[q] for q in qs]
            scores = None
            if offset is not None:
                if len(qs) < len(questions):  # the prefix pixels of just these questions
                    group_base = vlm.process([one[q] for q in qs], [[p.overview] for p in picked])
                else:
                    group_base = base
                group_plans = [plans[q] for q in qs]
                try:
                    scores = self._score_group(
                        picked, group_plans, group_base, [tails[q] for q in qs]
                    )
                except _Unshareable:
                    pass
                except torch.cuda.OutOfMemoryError:  # the prefixes of the whole group at once
                    if len(qs) == 1:
                        raise
                    torch.cuda.empty_cache()
                    logger.warning("CUDA out of memory in a prefix forward: halving the group")
                    half = len(picked) // 2
                    scores = self.question_logprobs(picked[:half])
                    scores += self.question_logprobs(picked[half:])
            if scores is None:  # never approximately: these questions' rows are scored whole
                if not self.whole_rows:
                    logger.warning(
                        "%s: %s has no exact shared prefix; such questions are scored whole "
                        "(exact, slower)",
                        vlm.config.model,
                        picked[0].qid,
                    )
                self.whole_rows += len(qs)
                scores = vlm.question_logprobs(picked)
            for q, score in zip(qs, scores):
                out[q] = score
        return out  # type: ignore[return-value]

    def _score_group(
        self,
        questions: Sequence[GridQuestion],
        plans: Sequence[QuestionPlan],
        base: dict[str, Any],
        tails: Sequence[str],
    ) -> list[list[torch.Tensor]]:
        """Score questions whose prefixes have one length: one prefix forward, then every cell
        and baseline continuation from its question's cached prefix."""
        vlm = self.vlm
        offset = plans[0].offset
        prefix_rows = [r.slice(0, offset) for r in rows_of(base)]
        images = image_inputs(base)
        prefix = {**pad_rows(prefix_rows, vlm.tokenizer.pad_token_id), **images}
        out = vlm.model(
            **vlm.on_device(prefix), use_cache=True, logits_to_keep=1, **{vlm.cache_kw: None}
        )
        shared = _Shared(
            cache=output_cache(out),
            offset=offset,
            prefix=prefix_rows,
            prefix_images={k: images[k] for k in vlm.family.image_keys},
        )
        cells = [(q, j) for q, question in enumerate(questions) for j in range(len(question.cells))]
        order = sorted(range(len(cells)), key=lambda i: len(tails[cells[i][0]]))

        def run_cells(chunk: list[int]) -> list[torch.Tensor]:
            picked = [cells[i] for i in chunk]
            batch = vlm.process(
                [tails[q] for q, _ in picked],
                [[questions[q].cells[j].image] for q, j in picked],
                False,
            )
            conts = [plans[q].continuation(r) for (q, _), r in zip(picked, rows_of(batch))]
            if any(c is None for c in conts):
                raise _Unshareable
            extra = {k: batch[k] for k in vlm.family.image_keys}
            return self._continue(shared, [q for q, _ in picked], conts, image_inputs(batch), extra)

        def run_baselines(chunk: list[int]) -> list[torch.Tensor]:
            return self._continue(shared, chunk, [plans[q].baseline for q in chunk], {}, {})

        cell_lp = restore(order, vlm.chunked(order, run_cells))
        base_lp = vlm.chunked(list(range(len(questions))), run_baselines)
        logprobs, cursor = [], 0
        for q, question in enumerate(questions):
            logprobs.append(cell_lp[cursor : cursor + len(question.cells)] + [base_lp[q]])
            cursor += len(question.cells)
        return logprobs

    def _continue(self, shared: _Shared, index, conts, images, extra) -> list[torch.Tensor]:
        """Log-probs at the end of each continuation, from its question's cached prefix."""
        vlm = self.vlm
        offset, family = shared.offset, vlm.family
        batch = pad_rows(conts, vlm.tokenizer.pad_token_id)
        width = batch["input_ids"].shape[1]
        full = []
        for j, (q, cont) in enumerate(zip(index, conts)):
            row = shared.prefix[q] + cont
            per_image = {  # the prefix's image (the overview), then the continuation's
                k: torch.cat(
                    [
                        shared.prefix_images[k][q : q + 1],
                        *([extra[k][j : j + 1]] if k in extra else []),
                    ]
                )
                for k in family.image_keys
            }
            full.append(FullRow(row.ids, row.tokens, per_image))
        for key in family.full_row_keys:  # over the whole row, prefix included
            prefix_part = torch.stack([shared.prefix[q].tokens[key] for q in index])
            batch[key] = torch.cat([prefix_part, batch[key]], dim=1)
        inputs = {**batch, **images}
        inputs["attention_mask"] = torch.cat(
            [torch.ones((len(conts), offset), dtype=torch.long), batch["attention_mask"]], dim=1
        )
        inputs["position_ids"] = family.positions(vlm.model, full, offset, width)
        inputs[vlm.cache_kw] = select_cache_rows(shared.cache, torch.tensor(index))
        return vlm.logprobs(inputs, last=batch["attention_mask"].sum(dim=1) - 1)

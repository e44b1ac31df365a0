"""The Hugging Face VLM evaluator: labels questions through the VLM runtime (``semclip.vlm``).

For each question the VLM is shown [overview, cell, prompt] for every cell and [overview, prompt]
(the baseline). ``mode="logprob"`` reads the option letters' log-probs after one forward per row,
sharing the [preamble + overview] prefix across a question's rows where the family allows it
(``vlm/shared_prefix.py``); ``mode="generate"`` decodes greedily per pair at batch 1 and parses the
answer as lmms-eval does, for comparison with that harness.

A question whose overview or a cell is smaller than the model can encode (Mistral 3: a single
Pixtral token, see ``vlm/families.py``) is refused before scoring (:meth:`HFEvaluator.refuse`) and
recorded as ``image_too_small``, in both modes, rather than enlarged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from semclip.data.labels import LabelProvenance
from semclip.data.prompts import template_hash
from semclip.labeling.evaluator import ItemScores, LabelItem
from semclip.vlm.config import VLMConfig
from semclip.vlm.families import Family, resolve_prompt_format
from semclip.vlm.loading import image_backend, resolve_dtype
from semclip.vlm.render import render_input
from semclip.vlm.runtime import VLM
from semclip.vlm.shared_prefix import SharedPrefixScorer, shares_prefix


def provenance_for(
    config: VLMConfig, grid: int, processor, family: Family, device
) -> LabelProvenance:
    """The label provenance (and so the resume key) of an HF evaluator; needs no weights."""
    fmt = resolve_prompt_format(config.prompt_format, family)
    dtype = resolve_dtype(config.dtype, torch.device(device))
    system = config.system_prompt or None
    return LabelProvenance(
        evaluator=config.model,
        revision=config.revision or "main",
        dtype=str(dtype).removeprefix("torch."),
        mode=config.mode,
        grid_n=grid,
        template_hash=template_hash(
            config.template,
            render_input(processor, fmt, "{prompt}", 2, system=system),
            render_input(processor, fmt, "{prompt}", 1, system=system),
        ),
        image_backend=image_backend(processor),
        alpha=config.alpha,
    )


class HFEvaluator:
    """Scores label items with a Hugging Face VLM; see the module docstring."""

    def __init__(
        self, config: VLMConfig, grid: int, model=None, processor=None, vlm: VLM | None = None
    ) -> None:
        self.vlm = vlm or VLM(config, model=model, processor=processor)
        self.config = self.vlm.config
        self.shared = SharedPrefixScorer(self.vlm)
        self.provenance = provenance_for(
            self.config, grid, self.vlm.processor, self.vlm.family, self.vlm.device
        )

    @property
    def family(self) -> Family:
        return self.vlm.family

    @property
    def prefix_sharing(self) -> bool:
        """Whether this evaluator shares prefixes (the config asks and the family allows it)."""
        return shares_prefix(self.config, self.family)

    @property
    def whole_rows(self) -> int:
        """Questions whose rows could not share a prefix exactly (scored whole)."""
        return self.shared.whole_rows

    def refuse(self, item: LabelItem) -> str | None:
        """``image_too_small`` when the overview or a cell is smaller than the model can encode
        (whether it failed would otherwise depend on its batch), else ``None``."""
        images = [item.overview, *(cell.image for cell in item.cells)]
        return "image_too_small" if any(self.vlm.too_small(img) for img in images) else None

    def score(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        with torch.inference_mode():
            if self.config.mode == "generate":
                return [self._generate_item(item) for item in items]
            if self.prefix_sharing:
                logprobs = self.shared.question_logprobs(items)
            else:
                logprobs = self.vlm.question_logprobs(items)
        return [self._letters(item, block) for item, block in zip(items, logprobs)]

    def _letters(self, item: LabelItem, block: list[torch.Tensor]) -> ItemScores:
        ids = self.vlm.letter_ids(item.letters)
        picked = [lp[ids].tolist() for lp in block]
        return ItemScores(cell_logprobs=picked[:-1], base_logprobs=picked[-1])

    def _generate_item(self, item: LabelItem) -> ItemScores:
        pairs = [
            self.vlm.generate(text, images, item.letters)
            for text, images in self.vlm.question_rows(item)
        ]
        cells = pairs[:-1]
        return ItemScores(
            [lp for lp, _ in cells],
            pairs[-1][0],
            cell_answers=[ans for _, ans in cells],
            base_answer=pairs[-1][1],
        )

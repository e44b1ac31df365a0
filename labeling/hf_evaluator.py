"""The Hugging Face VLM evaluator: one forward per (overview, cell, prompt), no generation.

Any VLM family of ``labeling/families.py`` (LLaVA-1.5/NeXT/OneVision, Qwen2/2.5/3-VL, Idefics3,
SmolVLM, Gemma 3, InternVL, Mistral 3). Rows are built by the family's own processor (images nested
per row, one BOS) and right-padded; for each row the log-probabilities of the option letters are
read at its last token (only those logits are computed). With prefix sharing (the default, where
the family allows it) the [chat preamble + overview] prefix is run once per question and its KV
cache serves the question's n*n cell continuations and the overview-only baseline, batched; where
the prefix is cut and how it is checked is in ``labeling/sharing.py``.

``mode="generate"`` instead decodes greedily per pair at batch 1 and parses the answer as lmms-eval
does, for comparison with that harness.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from semclip.data.images import ALPHA_MODES, DEFAULT_ALPHA, pad_to_square, processor_background
from semclip.data.labels import LabelProvenance
from semclip.data.prompts import (
    DEFAULT_TEMPLATE,
    LLAVA15_SYSTEM,
    render_input,
    template_hash,
    vlm_prompt_format,
)
from semclip.labeling.evaluator import ItemScores, LabelItem
from semclip.labeling.families import Family, FullRow, family_for, require_packages
from semclip.labeling.parsing import parse_answer
from semclip.labeling.sharing import Row, image_inputs, pad_rows, plan_question, rows_of

logger = logging.getLogger(__name__)

DEFAULT_VLM = "llava-hf/llava-1.5-7b-hf"


@dataclass
class HFEvaluatorConfig:
    """How the HF VLM evaluator loads and runs."""

    model: str = DEFAULT_VLM
    """Hub id or local folder of an ``AutoModelForImageTextToText`` checkpoint."""
    revision: str | None = None
    """Hub revision (branch, tag or commit); ``None`` means ``main``."""
    dtype: str = "auto"
    """``auto`` (bf16 on GPU, fp32 on CPU), ``bfloat16``, ``float16`` or ``float32``."""
    device: str | None = None
    """Device to run on; ``None`` picks CUDA when present (Lightning sets it when it drives)."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to ``from_pretrained``."""
    mode: str = "logprob"
    """``logprob`` (one forward, letter log-probs) or ``generate`` (greedy, lmms-eval parsing)."""
    prefix_sharing: bool = True
    """Reuse the [prompt start + overview] KV cache across a question's cells."""
    max_rows: int = 32
    """Most continuation rows in one forward; halved on CUDA out-of-memory."""
    max_new_tokens: int = 16
    """Generation budget in ``generate`` mode."""
    prompt_format: str = "auto"
    """``llava15`` (``USER: <image>\\n<image>\\n... ASSISTANT:``), ``chat_template``, or ``auto``
    (``llava15`` for ``model_type == "llava"``, the processor's chat template otherwise)."""
    system_prompt: str = LLAVA15_SYSTEM
    """System line of the ``llava15`` format (LLaVA-1.5's vicuna_v1 evaluation); ``""`` for none.
    Chat templates keep the model's own default."""
    image_backend: str = "auto"
    """Image processor backend: ``auto`` (transformers' choice: torchvision when installed, else
    PIL), ``pil`` or ``torchvision``; the one used is recorded in the provenance."""
    alpha: str = DEFAULT_ALPHA
    """Transparency: ``drop`` (PIL ``convert("RGB")``, as LLaVA's loaders) or ``white``."""
    trust_remote_code: bool = False
    """Allow custom model code from the hub (only when you trust the repository)."""
    template: str = field(default=DEFAULT_TEMPLATE, repr=False)
    """The question prompt template (see ``semclip.data.prompts``)."""

    def validate(self) -> None:
        if self.mode not in ("logprob", "generate"):
            raise ValueError(f"--mode must be 'logprob' or 'generate', got {self.mode!r}")
        if self.prompt_format not in ("auto", "llava15", "chat_template"):
            raise ValueError("--prompt-format must be 'auto', 'llava15' or 'chat_template'")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError("--dtype must be auto, bfloat16, float16 or float32")
        if self.max_rows < 1:
            raise ValueError("--max-rows must be >= 1")
        if self.image_backend not in IMAGE_BACKENDS:
            raise ValueError(f"--image-backend must be one of {', '.join(IMAGE_BACKENDS)}")
        if self.alpha not in ALPHA_MODES:
            raise ValueError(f"--alpha must be one of {', '.join(ALPHA_MODES)}")


IMAGE_BACKENDS = ("auto", "pil", "torchvision")


def load_processor(config: HFEvaluatorConfig):
    """The VLM's processor, on the configured image backend (``auto``: transformers' choice)."""
    from transformers import AutoProcessor

    backend = {} if config.image_backend == "auto" else {"backend": config.image_backend}
    return AutoProcessor.from_pretrained(
        config.model,
        revision=config.revision,
        trust_remote_code=config.trust_remote_code,
        **backend,
    )


VLM_SETTINGS = ("model", "revision", "prompt_format", "system_prompt", "image_backend", "alpha")


def vlm_settings(config: HFEvaluatorConfig) -> dict[str, Any]:
    """The settings that decide what the VLM sees (``labelset.json`` keeps them so that inference
    and evaluation with the VLM in the loop can show it the same inputs)."""
    return {name: getattr(config, name) for name in VLM_SETTINGS}


def image_backend(processor) -> str:
    """The backend a processor's images go through (``pil``, ``torchvision``, ...)."""
    image_processor = getattr(processor, "image_processor", None)
    backend = getattr(image_processor, "backend", None)
    return str(backend or type(image_processor).__name__)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def _cache_keyword(model: torch.nn.Module) -> str:
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(out: Any):
    return getattr(out, "cache", None) or out.past_key_values


def _select_cache_rows(cache, index: torch.Tensor):
    """A new cache whose batch rows are ``cache``'s rows at ``index`` (repeats allowed).

    The prefix cache serves the next chunk too, so it must not change: its layers are copied
    shallowly (selecting rows makes new tensors), never the whole cache deeply.
    """
    if hasattr(cache, "layers") and hasattr(cache, "batch_select_indices"):
        chosen = copy.copy(cache)
        chosen.layers = [copy.copy(layer) for layer in cache.layers]
    else:
        chosen = copy.deepcopy(cache)
    if hasattr(chosen, "batch_select_indices"):
        chosen.batch_select_indices(index.to(_cache_device(cache)))
    else:
        chosen.reorder_cache(index)
    return chosen


def _cache_device(cache) -> torch.device | str:
    layers = getattr(cache, "layers", None) or []
    keys = getattr(layers[0], "keys", None) if layers else None
    return keys.device if isinstance(keys, torch.Tensor) else "cpu"


def shares_prefix(config: HFEvaluatorConfig, family: Family) -> bool:
    """Whether scoring shares prefixes: asked for, one-forward mode, and exact for the family."""
    return config.prefix_sharing and config.mode == "logprob" and family.independent_images


def provenance_for(
    config: HFEvaluatorConfig, grid: int, processor, model_type: str, device
) -> LabelProvenance:
    """The label provenance (and so the resume key) of an HF evaluator; needs no weights."""
    fmt = vlm_prompt_format(config.prompt_format, model_type)
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
    """Scores items with a Hugging Face VLM; see the module docstring."""

    def __init__(self, config: HFEvaluatorConfig, grid: int, model=None, processor=None) -> None:
        from transformers import AutoConfig, AutoModelForImageTextToText

        config.validate()
        self.config = config
        device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = resolve_dtype(config.dtype, device)
        load = dict(revision=config.revision, trust_remote_code=config.trust_remote_code)
        if model is None:
            model_type = AutoConfig.from_pretrained(config.model, **load).model_type
            require_packages(family_for(model_type), config.model)
        self.processor = processor or load_processor(config)
        self.model = model or AutoModelForImageTextToText.from_pretrained(
            config.model, dtype=self.dtype, attn_implementation=config.attn_implementation, **load
        )
        self.model.eval().to(device)
        self.family = family_for(self.model.config.model_type)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.image_token_id = self._image_token_id()
        self.background = processor_background(self.processor.image_processor)
        self.prompt_format = vlm_prompt_format(config.prompt_format, self.model.config.model_type)
        bos = self.tokenizer.bos_token
        # one BOS, not two: when the chat template writes it, the tokenizer must not add another
        self.add_special_tokens = not (bos and self.render("x", 1).startswith(bos))
        self._cache_kw = _cache_keyword(self.model)
        self._letter_ids: dict[tuple[str, ...], list[int]] = {}
        self.whole_rows = 0  # questions whose rows could not share a prefix (scored whole)
        self.provenance = provenance_for(
            config, grid, self.processor, self.model.config.model_type, device
        )

    @property
    def prefix_sharing(self) -> bool:
        """Whether this evaluator shares prefixes (the config asks and the family allows it)."""
        return shares_prefix(self.config, self.family)

    # ------------------------------------------------------------------ prompts and tokens
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _image_token_id(self) -> int:
        token_id = getattr(self.model.config, "image_token_id", None)
        if token_id is None:
            token_id = getattr(self.model.config, "image_token_index", None)
        if token_id is None:
            token = getattr(self.processor, "image_token", None) or "<image>"
            token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"{self.config.model}: cannot find the image token id")
        return int(token_id)

    def render(self, prompt: str, num_images: int) -> str:
        """The full model input text for ``prompt`` with ``num_images`` images before it."""
        system = self.config.system_prompt or None
        return render_input(self.processor, self.prompt_format, prompt, num_images, system=system)

    def letter_ids(self, letters: Sequence[str]) -> list[int]:
        """Token id of each option letter as the model would write it after the prompt.

        Raises ``ValueError`` when a letter is not exactly one token for this tokenizer.
        """
        key = tuple(letters)
        if key not in self._letter_ids:
            tail = self.render("x", 1).split("x")[-1]
            sep = "" if tail[-1:].isspace() else " "
            base = self.tokenizer(tail, add_special_tokens=False)["input_ids"]
            ids = []
            for letter in letters:
                full = self.tokenizer(tail + sep + letter, add_special_tokens=False)["input_ids"]
                if len(full) != len(base) + 1 or full[: len(base)] != base:
                    pieces = self.tokenizer.convert_ids_to_tokens(full[len(base) - 1 :])
                    raise ValueError(
                        f"option letter {letter!r} is not a single token after {tail!r} for "
                        f"{self.config.model} (got {pieces}); letter scoring needs one token per "
                        "letter: use --mode generate for this model"
                    )
                ids.append(full[-1])
            self._letter_ids[key] = ids
        return self._letter_ids[key]

    def view(self, image):
        """An image as this family's preprocessing first sees it (square-padded for LLaVA-1.5)."""
        return pad_to_square(image, self.background) if self.family.square_pad else image

    def process(self, texts: Sequence[str], images: Sequence[Sequence], add_special=None):
        """The processor on a batch of rows (images nested per row), right-padded, on device."""
        nested = [[self.view(img) for img in row] for row in images]
        out = self.processor(
            text=list(texts),
            images=nested if any(nested) else None,
            padding=True,
            padding_side="right",  # some processors default to left (InternVL)
            return_tensors="pt",
            add_special_tokens=self.add_special_tokens if add_special is None else add_special,
        )
        return dict(out)

    def _on_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        moved = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            moved[key] = value
        return moved

    # ------------------------------------------------------------------ scoring
    def score(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        with torch.inference_mode():
            if self.config.mode == "generate":
                return [self._generate_item(item) for item in items]
            if self.prefix_sharing:
                return self._score_shared(items)
            return self._score_plain(items)

    def _rows(self, item: LabelItem) -> list[tuple[str, list]]:
        """The question's rows as (text, images): every cell beside the overview, then the
        overview alone."""
        two, one = self.render(item.prompt, 2), self.render(item.prompt, 1)
        return [(two, [item.overview, c.image]) for c in item.cells] + [(one, [item.overview])]

    def _score_plain(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        return self._split(items, self._row_logprobs([r for it in items for r in self._rows(it)]))

    def _row_logprobs(self, rows: Sequence[tuple[str, Sequence]]) -> list[torch.Tensor]:
        """Full-vocabulary log-probs after each (text, images) row, whole rows batched by length."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))  # little padding

        def run(chunk: list[int]) -> list[torch.Tensor]:
            batch = self.process([rows[i][0] for i in chunk], [rows[i][1] for i in chunk])
            return self._logprobs(batch)

        return _restore(order, self._chunked(order, run))

    # ------------------------------------------------------------------ any views (inference)
    def score_views(
        self,
        prompts: Sequence[str],
        views: Sequence[Sequence],
        letters: Sequence[Sequence[str]],
    ) -> list[list[float]]:
        """Option-letter log-probs of each row ``[*views, prompt]`` (e.g. the overview, then the
        selected crops best first): the input is rendered and processed exactly as labeling's
        rows are, and ``views == [overview, cell]`` gives a labelled cell's log-probs."""
        with torch.inference_mode():
            rows = [(self.render(p, len(v)), list(v)) for p, v in zip(prompts, views, strict=True)]
            logprobs = self._row_logprobs(rows)
        return [lp[self.letter_ids(ls)].tolist() for lp, ls in zip(logprobs, letters)]

    def generate_views(
        self, prompt: str, views: Sequence, letters: Sequence[str]
    ) -> tuple[list[float], str]:
        """Greedy answer to ``[*views, prompt]``: first-step letter log-probs and the parsed
        answer (a letter or ``unparsed``), as ``--mode generate`` labels."""
        with torch.inference_mode():
            return self._generate_pair(self.render(prompt, len(views)), list(views), letters)

    def _score_shared(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        two = [self.render(item.prompt, 2) for item in items]
        one = [self.render(item.prompt, 1) for item in items]
        tails = [a[self._cut(a, b) :] for a, b in zip(two, one)]
        base = self.process(one, [[it.overview] for it in items])
        first = self.process(two, [[it.overview, it.cells[0].image] for it in items])
        first_tails = self.process(tails, [[it.cells[0].image] for it in items], False)
        plans = [
            plan_question(b, f, t, self.image_token_id)
            for b, f, t in zip(rows_of(base), rows_of(first), rows_of(first_tails))
        ]
        # one cache per group of questions whose prefixes have the same length
        groups: dict[int | None, list[int]] = {}
        for q, plan in enumerate(plans):
            groups.setdefault(None if plan is None else plan.offset, []).append(q)
        out: list[ItemScores | None] = [None] * len(items)
        for offset, qs in groups.items():
            picked = [items[q] for q in qs]
            scores = None
            if offset is not None:
                if len(qs) < len(items):  # the prefix pixels of just these questions
                    group_base = self.process(
                        [one[q] for q in qs], [[it.overview] for it in picked]
                    )
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
                    scores = self._score_shared(picked[:half]) + self._score_shared(picked[half:])
            if scores is None:  # never approximately: these questions' rows are scored whole
                if not self.whole_rows:
                    logger.warning(
                        "%s: %s has no exact shared prefix; such questions are scored whole "
                        "(exact, slower)",
                        self.config.model,
                        picked[0].qid,
                    )
                self.whole_rows += len(qs)
                scores = self._score_plain(picked)
            for q, score in zip(qs, scores):
                out[q] = score
        return out  # type: ignore[return-value]

    @functools.cached_property
    def _neutral_prefix(self) -> str:
        return os.path.commonprefix([self.render("\x00", 2), self.render("\x00", 1)])

    def _cut(self, two: str, one: str) -> int:
        """Where the cell's image starts in the 2-image text: found from a neutral prompt, so
        a prompt that starts like an image placeholder (``<b>...``) cannot move it."""
        neutral = self._neutral_prefix
        if two.startswith(neutral) and one.startswith(neutral):
            return len(neutral)
        return len(os.path.commonprefix([two, one]))  # a template with text before the images

    def _score_group(self, items, plans, base, tails) -> list[ItemScores]:
        """Score questions whose prefixes have one length: one prefix forward, then every cell
        and baseline continuation from its question's cached prefix."""
        offset = plans[0].offset
        prefix_rows = [r.slice(0, offset) for r in rows_of(base)]
        images = image_inputs(base)
        prefix = {**pad_rows(prefix_rows, self.tokenizer.pad_token_id), **images}
        out = self.model(
            **self._on_device(prefix), use_cache=True, logits_to_keep=1, **{self._cache_kw: None}
        )
        shared = _Shared(
            cache=_output_cache(out),
            offset=offset,
            prefix=prefix_rows,
            prefix_images={k: images[k] for k in self.family.image_keys},
        )
        cells = [(q, j) for q, item in enumerate(items) for j in range(len(item.cells))]
        order = sorted(range(len(cells)), key=lambda i: len(tails[cells[i][0]]))

        def run_cells(chunk: list[int]) -> list[torch.Tensor]:
            picked = [cells[i] for i in chunk]
            batch = self.process(
                [tails[q] for q, _ in picked], [[items[q].cells[j].image] for q, j in picked], False
            )
            conts = [plans[q].continuation(r) for (q, _), r in zip(picked, rows_of(batch))]
            if any(c is None for c in conts):
                raise _Unshareable
            extra = {k: batch[k] for k in self.family.image_keys}
            return self._continue(shared, [q for q, _ in picked], conts, image_inputs(batch), extra)

        def run_baselines(chunk: list[int]) -> list[torch.Tensor]:
            return self._continue(shared, chunk, [plans[q].baseline for q in chunk], {}, {})

        cell_lp = _restore(order, self._chunked(order, run_cells))
        base_lp = self._chunked(list(range(len(items))), run_baselines)
        logprobs, cursor = [], 0
        for q, item in enumerate(items):
            logprobs += cell_lp[cursor : cursor + len(item.cells)] + [base_lp[q]]
            cursor += len(item.cells)
        return self._split(items, logprobs)

    def _continue(self, shared: _Shared, index, conts, images, extra) -> list[torch.Tensor]:
        """Log-probs at the end of each continuation, from its question's cached prefix."""
        offset, family = shared.offset, self.family
        batch = pad_rows(conts, self.tokenizer.pad_token_id)
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
        inputs["position_ids"] = family.positions(self.model, full, offset, width)
        inputs[self._cache_kw] = _select_cache_rows(shared.cache, torch.tensor(index))
        return self._logprobs(inputs, last=batch["attention_mask"].sum(dim=1) - 1)

    def _logprobs(self, inputs: dict[str, Any], last=None) -> list[torch.Tensor]:
        """Full-vocabulary log-probs at each row's last real token (``last``, or from the mask)."""
        if last is None:
            last = inputs["attention_mask"].sum(dim=1) - 1
        keep = torch.unique(last)
        inputs = self._on_device({**inputs, "logits_to_keep": keep})
        if self._cache_kw in inputs and inputs[self._cache_kw] is not None:
            inputs["use_cache"] = True
        else:
            inputs["use_cache"] = False
        logits = self.model(**inputs).logits  # (B, len(keep), V)
        column = torch.searchsorted(keep, last).to(self.device)
        picked = logits[torch.arange(len(last), device=self.device), column].float()
        return list(torch.log_softmax(picked, dim=-1).cpu())

    def _chunked(self, order: list[int], run) -> list[torch.Tensor]:
        """``run`` on ``max_rows``-sized chunks of ``order``; halves ``max_rows`` on CUDA OOM."""
        results: list[torch.Tensor] = []
        start = 0
        while start < len(order):
            chunk = order[start : start + self.config.max_rows]
            try:
                results += run(chunk)
            except torch.cuda.OutOfMemoryError:
                if self.config.max_rows == 1:
                    raise
                self.config.max_rows = max(1, self.config.max_rows // 2)
                logger.warning("CUDA out of memory: max_rows halved to %d", self.config.max_rows)
                torch.cuda.empty_cache()
                continue
            start += len(chunk)
        return results

    def _split(self, items: Sequence[LabelItem], logprobs: list[torch.Tensor]) -> list[ItemScores]:
        out, cursor = [], 0
        for item in items:
            ids = self.letter_ids(item.letters)
            block = logprobs[cursor : cursor + len(item.cells) + 1]
            cursor += len(item.cells) + 1
            picked = [lp[ids].tolist() for lp in block]
            out.append(ItemScores(cell_logprobs=picked[:-1], base_logprobs=picked[-1]))
        return out

    # ------------------------------------------------------------------ generate mode
    def _generate_pair(self, text: str, images, letters: Sequence[str]) -> tuple[list[float], str]:
        inputs = self._on_device(self.process([text], [images]))
        out = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=self.config.max_new_tokens,
            output_logits=True,  # raw: scores would carry e.g. a repetition penalty
            return_dict_in_generate=True,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = out.sequences[0, inputs["input_ids"].shape[1] :]
        text_out = self.tokenizer.decode(new, skip_special_tokens=True)
        first = torch.log_softmax(out.logits[0][0].float(), dim=-1)
        return first[self.letter_ids(letters)].tolist(), parse_answer(text_out, letters)

    def _generate_item(self, item: LabelItem) -> ItemScores:
        pairs = [
            self._generate_pair(text, images, item.letters) for text, images in self._rows(item)
        ]
        cells = pairs[:-1]
        return ItemScores(
            [lp for lp, _ in cells],
            pairs[-1][0],
            cell_answers=[ans for _, ans in cells],
            base_answer=pairs[-1][1],
        )


@dataclass
class _Shared:
    """A batch of questions' cached prefixes."""

    cache: Any
    offset: int
    prefix: list[Row]
    prefix_images: dict[str, torch.Tensor]


class _Unshareable(Exception):
    """A continuation broke its question's plan: score the questions whole instead."""


def _restore(order: list[int], results: list[torch.Tensor]) -> list[torch.Tensor]:
    restored: list[torch.Tensor] = [torch.empty(0)] * len(order)
    for position, index in enumerate(order):
        restored[index] = results[position]
    return restored

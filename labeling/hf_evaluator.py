"""The Hugging Face VLM evaluator: one forward per (overview, cell, prompt), no generation.

For each row it reads the log-probabilities of the option letters at the answer position (only the
last real token's logits are computed). With prefix sharing (the default) the prefix
[prompt start + overview image] is run once per question and its KV cache reused for the question's
n*n continuations [cell image + prompt] and for the overview-only baseline [prompt], all batched.
Rows are right-padded, so positions match an unpadded run exactly.

``mode="generate"`` instead decodes greedily per pair at batch 1 and parses the answer as lmms-eval
does, for comparison with that harness.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from semclip.data.images import pad_to_square, processor_background
from semclip.data.labels import UNPARSED, LabelProvenance
from semclip.data.prompts import (
    DEFAULT_TEMPLATE,
    render_input,
    template_hash,
    vlm_prompt_format,
)
from semclip.labeling.evaluator import ItemScores, LabelItem

logger = logging.getLogger(__name__)

DEFAULT_VLM = "llava-hf/llava-1.5-7b-hf"
_PROCESSOR_KEYS = {"input_ids", "attention_mask", "pixel_values"}


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


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def parse_answer(text: str, letters: Sequence[str]) -> str:
    """lmms-eval's ScienceQA parsing: the exact letter, or ``X.`` at the start; else unparsed."""
    text = text.strip()
    if text in letters:
        return text
    match = re.match(r"^([A-Z])\.", text)
    if match and match.group(1) in letters:
        return match.group(1)
    return UNPARSED


def _cache_keyword(model: torch.nn.Module) -> str:
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(out: Any):
    return getattr(out, "cache", None) or out.past_key_values


def _select_cache_rows(cache, index: torch.Tensor):
    """A new cache whose batch rows are ``cache``'s rows at ``index`` (repeats allowed)."""
    chosen = copy.deepcopy(cache)  # the prefix cache is reused by the next chunk
    if hasattr(chosen, "batch_select_indices"):
        chosen.batch_select_indices(index)
    else:
        chosen.reorder_cache(index)
    return chosen


def provenance_for(
    config: HFEvaluatorConfig, grid: int, processor, model_type: str, device
) -> LabelProvenance:
    """The label provenance (and so the resume key) of an HF evaluator; needs no weights."""
    fmt = vlm_prompt_format(config.prompt_format, model_type)
    dtype = resolve_dtype(config.dtype, torch.device(device))
    return LabelProvenance(
        evaluator=config.model,
        revision=config.revision or "main",
        dtype=str(dtype).removeprefix("torch."),
        mode=config.mode,
        grid_n=grid,
        template_hash=template_hash(
            config.template,
            render_input(processor, fmt, "{prompt}", 2),
            render_input(processor, fmt, "{prompt}", 1),
        ),
    )


@dataclass
class _Row:
    """One sequence to score: token ids after the (optional) shared prefix, and its images."""

    ids: torch.Tensor  # (L,)
    pixels: list[torch.Tensor]  # each (C, H, W), in the order of their image tokens
    prefix: int = -1  # index of its prefix in the prefix batch, or -1 for none


class HFEvaluator:
    """Scores items with a Hugging Face VLM; see the module docstring."""

    def __init__(self, config: HFEvaluatorConfig, grid: int, model=None, processor=None) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        config.validate()
        self.config = config
        device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = resolve_dtype(config.dtype, device)
        load = dict(revision=config.revision, trust_remote_code=config.trust_remote_code)
        self.processor = processor or AutoProcessor.from_pretrained(config.model, **load)
        self.model = model or AutoModelForImageTextToText.from_pretrained(
            config.model, dtype=self.dtype, attn_implementation=config.attn_implementation, **load
        )
        self.model.eval().to(device)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.image_token_id = self._image_token_id()
        self.background = processor_background(self.processor.image_processor)
        self.prompt_format = vlm_prompt_format(config.prompt_format, self.model.config.model_type)
        self._cache_kw = _cache_keyword(self.model)
        self._letter_ids: dict[tuple[str, ...], list[int]] = {}
        self.provenance = provenance_for(
            config, grid, self.processor, self.model.config.model_type, device
        )

    # ------------------------------------------------------------------ prompts and tokens
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _image_token_id(self) -> int:
        token = getattr(self.processor, "image_token", None) or "<image>"
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"{self.config.model}: cannot find the image token {token!r}")
        return token_id

    def render(self, prompt: str, num_images: int) -> str:
        """The full model input text for ``prompt`` with ``num_images`` images before it."""
        return render_input(self.processor, self.prompt_format, prompt, num_images)

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

    def _pixels(self, images) -> torch.Tensor:
        squared = [pad_to_square(img, self.background) for img in images]
        out = self.processor.image_processor(squared, return_tensors="pt")["pixel_values"]
        return out.to(self.device, self.dtype)

    def _encode(self, text: str, images) -> dict[str, torch.Tensor]:
        squared = [pad_to_square(img, self.background) for img in images]
        return self.processor(images=squared, text=text, return_tensors="pt")

    def _item_pixels(self, item: LabelItem, two: dict[str, torch.Tensor]):
        """The overview's and every cell's pixels; the two the processor already made for the
        token ids (overview, first cell) are reused rather than computed again."""
        if set(two) - _PROCESSOR_KEYS or two["pixel_values"].dim() != 4:
            raise ValueError(
                f"one-forward scoring supports processors that return {sorted(_PROCESSOR_KEYS)} "
                f"with one pixel tensor per image (LLaVA-1.5 style); {self.config.model} returns "
                f"{sorted(two)}: use --mode generate"
            )
        done = two["pixel_values"].to(self.device, self.dtype)
        rest = [c.image for c in item.cells[1:]]
        cells = torch.cat([done[1:2], self._pixels(rest)]) if rest else done[1:2]
        return done[0], cells

    # ------------------------------------------------------------------ scoring
    def score(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        with torch.inference_mode():
            if self.config.mode == "generate":
                return [self._generate_item(item) for item in items]
            if self.config.prefix_sharing:
                return self._score_shared(items)
            return self._score_plain(items)

    def _score_plain(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        rows = []
        for item in items:
            two = self._encode(self.render(item.prompt, 2), [item.overview, item.cells[0].image])
            one = self._encode(self.render(item.prompt, 1), [item.overview])
            overview, cells = self._item_pixels(item, two)
            for cell in cells:
                rows.append(_Row(two["input_ids"][0], [overview, cell]))
            rows.append(_Row(one["input_ids"][0], [overview]))
        logprobs = self._run_rows(rows, None, None)
        return self._split(items, logprobs)

    def _score_shared(self, items: Sequence[LabelItem]) -> list[ItemScores]:
        prefixes, rows, fallback = [], [], []
        for i, item in enumerate(items):
            two = self._encode(self.render(item.prompt, 2), [item.overview, item.cells[0].image])
            one = self._encode(self.render(item.prompt, 1), [item.overview])
            ids, base_ids = two["input_ids"][0], one["input_ids"][0]
            positions = (ids == self.image_token_id).nonzero().flatten().tolist()
            runs = [p for j, p in enumerate(positions) if j == 0 or positions[j - 1] != p - 1]
            if len(runs) != 2:
                raise ValueError(f"expected two image-token runs in the prompt, found {len(runs)}")
            split = runs[1]
            overview, cells = self._item_pixels(item, two)
            prefixes.append((ids[:split], overview))
            for cell in cells:
                rows.append(_Row(ids[split:], [cell], prefix=i))
            if torch.equal(base_ids[:split], ids[:split]):
                rows.append(_Row(base_ids[split:], [], prefix=i))
            else:  # the tokenizer merged across the split: score the baseline whole
                fallback.append(len(rows))
                rows.append(_Row(base_ids, [overview], prefix=-1))
        lengths = {len(p[0]) for p in prefixes}
        if len(lengths) != 1:  # prefixes carry no question text, so this is rare: go one by one
            out = []
            for item in items:
                out += self._score_shared([item])
            return out
        prefix_ids = torch.stack([p[0] for p in prefixes]).to(self.device)
        prefix_pixels = torch.stack([p[1] for p in prefixes])
        kw = {self._cache_kw: None}
        out = self.model(
            input_ids=prefix_ids,
            pixel_values=prefix_pixels,
            attention_mask=torch.ones_like(prefix_ids),
            use_cache=True,
            logits_to_keep=1,
            **kw,
        )
        cache = _output_cache(out)
        shared = [r for j, r in enumerate(rows) if j not in fallback]
        logprobs = self._run_rows(shared, cache, prefix_ids.shape[1])
        if fallback:
            solo = self._run_rows([rows[j] for j in fallback], None, None)
            merged, it_shared, it_solo = [], iter(logprobs), iter(solo)
            for j in range(len(rows)):
                merged.append(next(it_solo) if j in fallback else next(it_shared))
            logprobs = merged
        return self._split(items, logprobs)

    def _split(self, items: Sequence[LabelItem], logprobs: list[torch.Tensor]) -> list[ItemScores]:
        out, cursor = [], 0
        for item in items:
            ids = self.letter_ids(item.letters)
            block = logprobs[cursor : cursor + len(item.cells) + 1]
            cursor += len(item.cells) + 1
            picked = [lp[ids].tolist() for lp in block]
            out.append(ItemScores(cell_logprobs=picked[:-1], base_logprobs=picked[-1]))
        return out

    def _run_rows(self, rows: list[_Row], cache, prefix_len: int | None) -> list[torch.Tensor]:
        """Full-vocabulary log-probs at each row's last token, ``max_rows`` rows per forward.

        Rows are grouped by length (cell rows apart from the shorter baseline rows) so that little
        padding is computed; results come back in the order of ``rows``.
        """
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
        ordered = [rows[i] for i in order]
        results: list[torch.Tensor] = []
        start = 0
        while start < len(ordered):
            end = start + 1
            shortest = len(ordered[start].ids)
            while (
                end < len(ordered)
                and end - start < self.config.max_rows
                and len(ordered[end].ids) <= 1.25 * shortest  # little padding in one forward
            ):
                end += 1
            chunk = ordered[start:end]
            try:
                results += self._forward_chunk(chunk, cache, prefix_len)
            except torch.cuda.OutOfMemoryError:
                if self.config.max_rows == 1:
                    raise
                self.config.max_rows = max(1, self.config.max_rows // 2)
                logger.warning("CUDA out of memory: max_rows halved to %d", self.config.max_rows)
                torch.cuda.empty_cache()
                continue
            start += len(chunk)
        restored: list[torch.Tensor] = [torch.empty(0)] * len(rows)
        for position, index in enumerate(order):
            restored[index] = results[position]
        return restored

    def _forward_chunk(self, chunk: list[_Row], cache, prefix_len: int | None):
        device = self.device
        width = max(len(r.ids) for r in chunk)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, row in enumerate(chunk):
            ids[j, : len(row.ids)] = row.ids
            mask[j, : len(row.ids)] = 1
        last = torch.tensor([len(r.ids) - 1 for r in chunk])
        keep = torch.unique(last)
        pixels = [p for r in chunk for p in r.pixels]
        inputs: dict[str, Any] = dict(
            input_ids=ids.to(device),
            pixel_values=torch.stack(pixels) if pixels else None,
            logits_to_keep=keep.to(device),
        )
        if cache is not None:
            index = torch.tensor([r.prefix for r in chunk], device=device)
            offset = prefix_len or 0
            inputs["attention_mask"] = torch.cat(
                [torch.ones((len(chunk), offset), dtype=torch.long), mask], dim=1
            ).to(device)
            inputs["position_ids"] = (
                (offset + torch.arange(width)).expand(len(chunk), -1).to(device)
            )
            inputs[self._cache_kw] = _select_cache_rows(cache, index)
            inputs["use_cache"] = True
        else:
            inputs["attention_mask"] = mask.to(device)
            inputs["use_cache"] = False
        logits = self.model(**inputs).logits  # (B, len(keep), V)
        column = torch.searchsorted(keep, last).to(device)
        picked = logits[torch.arange(len(chunk), device=device), column].float()
        return list(torch.log_softmax(picked, dim=-1).cpu())

    # ------------------------------------------------------------------ generate mode
    def _generate_pair(self, text: str, images, letters: Sequence[str]) -> tuple[list[float], str]:
        inputs = self._encode(text, images).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        out = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=self.config.max_new_tokens,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = out.sequences[0, inputs["input_ids"].shape[1] :]
        text_out = self.tokenizer.decode(new, skip_special_tokens=True)
        first = torch.log_softmax(out.scores[0][0].float(), dim=-1)
        return first[self.letter_ids(letters)].tolist(), parse_answer(text_out, letters)

    def _generate_item(self, item: LabelItem) -> ItemScores:
        cells, answers = [], []
        for cell in item.cells:
            lp, ans = self._generate_pair(
                self.render(item.prompt, 2), [item.overview, cell.image], item.letters
            )
            cells.append(lp)
            answers.append(ans)
        base_lp, base_ans = self._generate_pair(
            self.render(item.prompt, 1), [item.overview], item.letters
        )
        return ItemScores(cells, base_lp, cell_answers=answers, base_answer=base_ans)

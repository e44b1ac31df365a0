"""The VLM runtime: one loaded VLM, its inputs rendered and processed, scored by one forward.

Any VLM family of ``vlm/families.py`` (LLaVA-1.5/NeXT/OneVision, Qwen2/2.5/3-VL, Idefics3,
SmolVLM, Gemma 3, InternVL, Mistral 3), and a family outside it scored whole. Rows are built by
the family's own processor (images nested per row, one BOS), right-padded, and passed to the model
as far as its forward names them (never ``labels``); a row's log-probabilities are read at its
last token (only those logits are computed). Labeling, SemClip and evaluation all go through
here, so a crop meets the VLM exactly as the labels were made. Sharing a question's prefix across
its cells is ``vlm/shared_prefix.py``; :meth:`VLM.question_logprobs` is the whole-row reference
it must equal.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from PIL import Image

from semclip.data.grid import Cell
from semclip.data.images import pad_to_square, processor_background
from semclip.vlm.config import VLMConfig
from semclip.vlm.families import family_for, require_packages, resolve_prompt_format
from semclip.vlm.kv_cache import cache_keyword
from semclip.vlm.loading import load_model, load_processor, model_type, resolve_dtype
from semclip.vlm.parsing import parse_answer
from semclip.vlm.render import answer_tail, letter_ids, render_input

logger = logging.getLogger(__name__)


class GridQuestion(Protocol):
    """One question over an image's grid: its id, rendered prompt, overview and cells."""

    qid: str
    prompt: str
    overview: Image.Image
    cells: Sequence[Cell]


class VLM:
    """A loaded VLM and its processor; see the module docstring."""

    def __init__(self, config: VLMConfig, model=None, processor=None) -> None:
        config.validate()
        self.config = config
        device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = resolve_dtype(config.dtype, device)
        self.family = family_for(model_type(config) if model is None else model.config.model_type)
        if model is None:
            require_packages(self.family, config.model)
        self.processor = processor or load_processor(config)
        self.tokenizer = self.processor.tokenizer
        self.prompt_format = resolve_prompt_format(config.prompt_format, self.family)
        # rendered before the weights load, so a format the processor cannot render fails at once
        rendered = self.render("x", 1)
        self.model = model or load_model(config, self.dtype)
        self.model.eval().to(device)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.image_token_id = self._image_token_id()
        self.background = processor_background(self.processor.image_processor)
        bos = self.tokenizer.bos_token
        # one BOS, not two: when the chat template writes it, the tokenizer must not add another
        self.add_special_tokens = not (bos and rendered.startswith(bos))
        self.cache_kw = cache_keyword(self.model)
        self.min_image_side = self.family.min_image_side(self.model.config)
        """Smallest longer side (px) of an image the model can encode; see :meth:`too_small`."""
        self.max_rows = config.max_rows
        """Most rows in one forward: the config's, halved on CUDA out-of-memory."""
        self._letter_ids: dict[tuple[str, ...], list[int]] = {}
        self._dropped: set[str] = set()

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
            tail = answer_tail(self.render("x", 1))
            self._letter_ids[key] = letter_ids(self.tokenizer, tail, letters, self.config.model)
        return self._letter_ids[key]

    def too_small(self, image) -> bool:
        """Whether ``image`` is smaller than the model can encode (``Family.min_image_side``:
        both sides at most one Pixtral token for Mistral 3); labeling refuses such questions
        up front rather than enlarging the image."""
        return bool(self.min_image_side) and max(self.view(image).size) < self.min_image_side

    def view(self, image):
        """An image as this family's preprocessing first sees it (square-padded for LLaVA-1.5)."""
        return pad_to_square(image, self.background) if self.family.square_pad else image

    def process(self, texts: Sequence[str], images: Sequence[Sequence], add_special=None):
        """The processor on a batch of rows (images nested per row), right-padded, on the CPU."""
        nested = [[self.view(img) for img in row] for row in images]
        out = self.processor(
            text=list(texts),
            images=nested if any(nested) else None,
            padding=True,
            padding_side="right",  # some processors default to left (InternVL)
            return_tensors="pt",
            add_special_tokens=self.add_special_tokens if add_special is None else add_special,
        )
        return self.model_inputs(dict(out))

    @functools.cached_property
    def _forward_names(self) -> frozenset[str] | None:
        """The inputs the model's forward names (``None`` for a forward that names none and takes
        everything through ``**kwargs``, as some remote-code models do)."""
        params = inspect.signature(self.model.forward).parameters.values()
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        return frozenset(named) if "input_ids" in named else None

    def model_inputs(self, processed: dict[str, Any]) -> dict[str, Any]:
        """The processor outputs the model takes: never ``labels`` (PaliGemma's processor always
        returns them, and with them the forward computes a training loss against logits cut to
        the last token, and fails), nor a key its forward does not name. The registered families'
        processors return only keys their forward names, so nothing of theirs is dropped."""
        names = self._forward_names
        drop = [k for k in processed if k == "labels" or (names is not None and k not in names)]
        if set(drop) - self._dropped:
            self._dropped.update(drop)
            logger.warning(
                "%s: not passing the processor's %s to the model (its forward does not name them)",
                self.config.model,
                drop,
            )
        return {k: v for k, v in processed.items() if k not in drop}

    def on_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Tensors moved to the model's device; floating ones cast to its dtype."""
        moved = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            moved[key] = value
        return moved

    @functools.cached_property
    def _neutral_prefix(self) -> str:
        return os.path.commonprefix([self.render("\x00", 2), self.render("\x00", 1)])

    def cut(self, two: str, one: str) -> int:
        """Where the second image starts in a 2-image text whose 1-image form is ``one``: found
        from a neutral prompt, so a prompt that starts like an image placeholder (``<b>...``)
        cannot move it."""
        neutral = self._neutral_prefix
        if two.startswith(neutral) and one.startswith(neutral):
            return len(neutral)
        return len(os.path.commonprefix([two, one]))  # a template with text before the images

    # ------------------------------------------------------------------ one forward per row
    def question_rows(self, question: GridQuestion) -> list[tuple[str, list]]:
        """The question's rows as (text, images): every cell beside the overview, then the
        overview alone."""
        two, one = self.render(question.prompt, 2), self.render(question.prompt, 1)
        rows = [(two, [question.overview, c.image]) for c in question.cells]
        return rows + [(one, [question.overview])]

    def question_logprobs(self, questions: Sequence[GridQuestion]) -> list[list[torch.Tensor]]:
        """Per question, the full-vocabulary log-probs after each of its rows (cells, then the
        overview alone), every row run whole."""
        rows = [r for q in questions for r in self.question_rows(q)]
        flat, out, cursor = self.row_logprobs(rows), [], 0
        for q in questions:
            out.append(flat[cursor : cursor + len(q.cells) + 1])
            cursor += len(q.cells) + 1
        return out

    def row_logprobs(self, rows: Sequence[tuple[str, Sequence]]) -> list[torch.Tensor]:
        """Full-vocabulary log-probs after each (text, images) row, whole rows batched by length."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))  # little padding

        def run(chunk: list[int]) -> list[torch.Tensor]:
            batch = self.process([rows[i][0] for i in chunk], [rows[i][1] for i in chunk])
            return self.logprobs(batch)

        return restore(order, self.chunked(order, run))

    def logprobs(self, inputs: dict[str, Any], last=None) -> list[torch.Tensor]:
        """Full-vocabulary log-probs at each row's last real token (``last``, or from the mask)."""
        if last is None:
            last = inputs["attention_mask"].sum(dim=1) - 1
        keep = torch.unique(last)
        inputs = self.on_device({**inputs, "logits_to_keep": keep})
        inputs["use_cache"] = inputs.get(self.cache_kw) is not None
        logits = self.model(**inputs).logits  # (B, len(keep), V)
        column = torch.searchsorted(keep, last).to(self.device)
        picked = logits[torch.arange(len(last), device=self.device), column].float()
        return list(torch.log_softmax(picked, dim=-1).cpu())

    def chunked(self, order: list[int], run) -> list[torch.Tensor]:
        """``run`` on ``max_rows``-sized chunks of ``order``; halves ``max_rows`` on CUDA OOM."""
        results: list[torch.Tensor] = []
        start = 0
        while start < len(order):
            chunk = order[start : start + self.max_rows]
            try:
                results += run(chunk)
            except torch.cuda.OutOfMemoryError:
                if self.max_rows == 1:
                    raise
                self.max_rows = max(1, self.max_rows // 2)
                logger.warning("CUDA out of memory: max_rows halved to %d", self.max_rows)
                torch.cuda.empty_cache()
                continue
            start += len(chunk)
        return results

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
            logprobs = self.row_logprobs(rows)
        return [lp[self.letter_ids(ls)].tolist() for lp, ls in zip(logprobs, letters)]

    def generate_views(
        self, prompt: str, views: Sequence, letters: Sequence[str]
    ) -> tuple[list[float], str]:
        """Greedy answer to ``[*views, prompt]``: first-step letter log-probs and the parsed
        answer (a letter or ``unparsed``), as ``--mode generate`` labels."""
        with torch.inference_mode():
            return self.generate(self.render(prompt, len(views)), list(views), letters)

    def generate(self, text: str, images, letters: Sequence[str]) -> tuple[list[float], str]:
        """Greedy decoding of one rendered row: the first step's raw letter log-probs and the
        answer parsed as lmms-eval does."""
        inputs = self.on_device(self.process([text], [images]))
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


def restore(order: list[int], results: list[torch.Tensor]) -> list[torch.Tensor]:
    """Results computed in ``order`` put back in their original positions."""
    restored: list[torch.Tensor] = [torch.empty(0)] * len(order)
    for position, index in enumerate(order):
        restored[index] = results[position]
    return restored

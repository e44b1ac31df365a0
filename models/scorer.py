"""The relevance scorer: a dual encoder (CLIP by default, SigLIP too) that scores image crops
against a question.

``score(texts, images)`` is the cosine similarity of the normalised embeddings, scaled by the
model's logit scale: a ``(len(texts), len(images))`` matrix. Images are padded to square before the
processor, so no edge of a non-square cell is center-cropped away. Text longer than the text tower's
limit (77 tokens for CLIP) is truncated and counted; the first truncation is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from semclip.data.hub import hub_reachable, looks_local
from semclip.data.images import pad_to_square, processor_background

logger = logging.getLogger(__name__)

DEFAULT_SCORER = "openai/clip-vit-large-patch14"
TEXT_MODES = ("question", "question_hint", "question_choices", "full")


def scorer_text(
    question: str, hint: str = "", choices: Sequence[str] = (), mode: str = "question"
) -> str:
    """The text the scorer reads for a question: the question alone by default.

    ``question_hint`` prepends the hint, ``question_choices`` appends the choices, ``full`` both.
    """
    if mode not in TEXT_MODES:
        raise ValueError(f"text mode must be one of {TEXT_MODES}, got {mode!r}")
    parts = []
    if mode in ("question_hint", "full") and hint:
        parts.append(hint.strip())
    parts.append(question.strip())
    if mode in ("question_choices", "full") and choices:
        parts.append("Options: " + ", ".join(choices) + ".")
    return " ".join(parts)


def resolve_source(name_or_path: str | Path) -> tuple[str, bool]:
    """``(name, local_files_only)`` for ``from_pretrained``: a folder is taken as is; a
    local-looking path that is not a folder is an error; a hub id is read from the cache only when
    the hub cannot be reached (fails in a second instead of retrying for minutes)."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path), False
    if looks_local(name) or path.exists():
        raise FileNotFoundError(f"{name}: no such folder (check the path)")
    return name, not hub_reachable()


def _unreachable_message(name: str) -> str:
    import huggingface_hub

    why = (
        "HF_HUB_OFFLINE=1 is set"
        if huggingface_hub.is_offline_mode()
        else "the Hugging Face Hub cannot be reached"
    )
    return (
        f"{name} is not in the Hugging Face cache and {why}: download it once with network "
        f"(hf download {name}), or pass a local folder"
    )


def _features(output) -> torch.Tensor:
    """Projected embeddings from ``get_*_features`` (a tensor or an output object)."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


class ScorerPreprocessor:
    """Turns texts and images into scorer inputs; holds no weights, so DataLoader workers can
    carry it. Texts over the tower's limit are truncated and counted in ``truncated_texts``."""

    def __init__(self, processor, max_text_tokens: int, model_type: str = "") -> None:
        self.processor = processor
        self.max_text_tokens = max_text_tokens
        self.padding = "max_length" if model_type.startswith("siglip") else True
        self.background = processor_background(processor.image_processor)
        self.truncated_texts = 0
        self._warned = False

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids, truncated to the tower's limit; ``num_truncated`` says how many were cut."""
        tokenizer = self.processor.tokenizer
        lengths = [len(ids) for ids in tokenizer(list(texts))["input_ids"]]
        over = sum(1 for n in lengths if n > self.max_text_tokens)
        if over:
            self.truncated_texts += over
            if not self._warned:
                logger.warning(
                    "question text longer than %d tokens is truncated (reported once; the run's "
                    "count is logged at the end)",
                    self.max_text_tokens,
                )
                self._warned = True
        tokens = tokenizer(
            list(texts),
            padding=self.padding,
            truncation=True,
            max_length=self.max_text_tokens,
            return_tensors="pt",
        )
        tokens["num_truncated"] = torch.tensor(over)
        return tokens

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Processor pixels of images padded to square: ``(N, C, H, W)``.

        For CLIP-style processors (resize a square to ``side``, no effective crop, rescale,
        normalise) the same PIL resize is followed by one batched rescale and normalise: equal to
        the processor's output (a parity test checks it) and about twice as fast.
        """
        squared = [pad_to_square(img.convert("RGB"), self.background) for img in images]
        side = self._fast_side()
        if side is None or not squared:
            return self.processor.image_processor(squared, return_tensors="pt")["pixel_values"]
        resample = self.processor.image_processor.resample
        resized = [
            img if img.size == (side, side) else img.resize((side, side), resample)
            for img in squared
        ]
        array = torch.from_numpy(np.stack([np.asarray(img) for img in resized]))  # (N, H, W, 3)
        pixels = array.permute(0, 3, 1, 2).float() * self._rescale
        return (pixels - self._mean) / self._std

    def _fast_side(self) -> int | None:
        """The square input side when the batched path reproduces the processor, else None."""
        if hasattr(self, "_side"):
            return self._side
        proc, side = self.processor.image_processor, None
        size = getattr(proc, "size", None) or {}
        crop = getattr(proc, "crop_size", None) or {}
        get = (lambda d, k: d.get(k)) if isinstance(size, dict) else getattr
        shortest = get(size, "shortest_edge")
        crop_h, crop_w = get(crop, "height") if crop else None, get(crop, "width") if crop else None
        standard = (
            type(proc).__name__ == "CLIPImageProcessorPil"  # the same PIL resize as below
            and getattr(proc, "do_resize", False)
            and getattr(proc, "do_rescale", False)
            and getattr(proc, "do_normalize", False)
            and isinstance(getattr(proc, "resample", None), int)
        )
        if (
            standard
            and shortest
            and (not getattr(proc, "do_center_crop", False) or crop_h == crop_w == shortest)
        ):
            side = int(shortest)
            self._rescale = float(proc.rescale_factor)
            self._mean = torch.tensor(proc.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
            self._std = torch.tensor(proc.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        self._side = side
        return side


class RelevanceScorer(nn.Module):
    """Scores (question, crop) pairs with a Hugging Face dual encoder."""

    def __init__(self, model: nn.Module, processor, text_mode: str = "question") -> None:
        super().__init__()
        scorer_text("", mode=text_mode)  # validates the mode
        self.model = model
        self.processor = processor
        self.text_mode = text_mode
        config = getattr(model.config, "text_config", model.config)
        self.model_type = getattr(model.config, "model_type", "")
        self.preprocess = ScorerPreprocessor(
            processor, int(getattr(config, "max_position_embeddings", 77)), self.model_type
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        revision: str | None = None,
        dtype: torch.dtype | None = None,
        text_mode: str = "question",
        trust_remote_code: bool = False,
    ) -> RelevanceScorer:
        """Load a scorer from a hub id or a local folder (e.g. an exported one).

        A path that looks local (``./x``, ``/x``, ``~/x``, ``a/b/c``) and is not a folder, and a hub
        id that is neither cached nor reachable (offline), raise a one-line ``OSError`` at once.
        """
        name, local_only = resolve_source(name_or_path)
        load = dict(revision=revision, trust_remote_code=trust_remote_code)
        if local_only:  # a hub id, offline: the cache or nothing
            try:
                return cls._load(name, dtype, text_mode, dict(load, local_files_only=True))
            except OSError as err:
                raise OSError(_unreachable_message(name)) from err
        return cls._load(name, dtype, text_mode, load)

    @classmethod
    def _load(cls, name_or_path: str, dtype, text_mode: str, load: dict) -> RelevanceScorer:
        from transformers import AutoModel, AutoProcessor

        # the PIL image backend whether or not torchvision is installed: the same pixels on every
        # machine (transformers picks the torchvision one when it can, which resizes differently)
        processor = AutoProcessor.from_pretrained(str(name_or_path), backend="pil", **load)
        model = AutoModel.from_pretrained(str(name_or_path), dtype=dtype, **load)
        for method in ("get_text_features", "get_image_features"):
            if not hasattr(model, method):
                raise ValueError(f"{name_or_path} is not a dual encoder: it has no {method}()")
        return cls(model, processor, text_mode)

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Save model (safetensors), config and processor in the Hugging Face format."""
        self.model.save_pretrained(str(out_dir), safe_serialization=True)
        self.processor.save_pretrained(str(out_dir))

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.preprocess.tokenize(texts)

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.preprocess.pixel_values(images)

    # ------------------------------------------------------------------ embeddings and scores
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """L2-normalised text embeddings ``(B, D)``."""
        kwargs = {"input_ids": input_ids.to(self.device)}
        if attention_mask is not None and not self.model_type.startswith("siglip"):
            kwargs["attention_mask"] = attention_mask.to(self.device)
        return nn.functional.normalize(_features(self.model.get_text_features(**kwargs)), dim=-1)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings ``(N, D)``."""
        pixels = pixel_values.to(self.device, self.dtype)
        return nn.functional.normalize(_features(self.model.get_image_features(pixels)), dim=-1)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=100.0)  # CLIP caps its temperature at 100

    def similarity(self, text_emb: torch.Tensor, image_emb: torch.Tensor) -> torch.Tensor:
        """``logit_scale * cos``: ``(B, D) x (N, D) -> (B, N)``."""
        return self.logit_scale * text_emb @ image_emb.T

    def grouped_scores(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor
    ) -> torch.Tensor:
        """Scores of each question against its own cells: ``(B,)`` texts, ``(B * C)`` images in
        question order -> ``(B, C)``. One text and C image encodings per question."""
        text = self.encode_text(input_ids, attention_mask)  # (B, D)
        images = self.encode_images(pixel_values)  # (B * C, D)
        images = images.view(text.shape[0], -1, images.shape[-1])  # (B, C, D)
        return self.logit_scale * torch.einsum("bd,bcd->bc", text, images)

    @torch.no_grad()
    def score(self, texts: Sequence[str], images: Sequence[Image.Image]) -> torch.Tensor:
        """``logit_scale * cos`` of every text against every image: ``(texts, images)``."""
        tokens = self.tokenize(texts)
        text = self.encode_text(tokens["input_ids"], tokens.get("attention_mask"))
        image = self.encode_images(self.pixel_values(images))
        return self.similarity(text, image).float()

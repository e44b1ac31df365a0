"""The relevance scorer: a dual encoder (CLIP by default, SigLIP too) that scores image crops
against a question.

``score(texts, images)`` is the cosine similarity of the normalised embeddings, scaled by the
model's logit scale: a ``(len(texts), len(images))`` matrix, computed in fp32 whatever the model's
dtype (in bf16, scores at scale 100 would come in steps of 0.125, coarse against a margin of 1 and
leaving top-1 to ties). Images are padded to square before the processor, so no edge of a
non-square cell is center-cropped away. Text longer than the text tower's limit (77 tokens for
CLIP) is truncated and counted; the first truncation is logged once.

An exported scorer carries its settings (text mode, grid, transparency convention) in
``semclip_scorer.json`` beside the weights; ``from_pretrained`` applies them by default.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from semclip.data.grid import check_grid
from semclip.data.hub import hub_reachable, looks_local
from semclip.data.images import ALPHA_MODES, DEFAULT_ALPHA, pad_to_square, processor_background
from semclip.models.scorer_settings import SCORER_SETTINGS

logger = logging.getLogger(__name__)

DEFAULT_SCORER = "openai/clip-vit-large-patch14"
TEXT_MODES = ("question", "question_hint", "question_choices", "full")

#: The file beside an exported scorer's weights: how it was trained to be used (``text_mode``,
#: ``grid``, ``alpha``). A stock CLIP/SigLIP has none: question text, no grid, LLaVA's alpha.


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


def read_settings(
    name_or_path: str | Path, revision: str | None = None, local_files_only: bool = False
) -> dict:
    """The saved settings of a scorer (its ``semclip_scorer.json``), or ``{}`` when it has none."""
    folder = Path(name_or_path)
    if folder.is_dir():
        file = folder / SCORER_SETTINGS
        if not file.is_file():
            return {}
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            file = Path(
                hf_hub_download(
                    str(name_or_path),
                    SCORER_SETTINGS,
                    revision=revision,
                    local_files_only=local_files_only,
                )
            )
        except EntryNotFoundError:  # not in the repository (or, offline, not in the cache)
            return {}
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{file}: unreadable scorer settings ({err})") from err
    if not isinstance(settings, dict):
        raise ValueError(f"{file}: scorer settings must be a JSON object")
    return settings


def _fp32(tensor: torch.Tensor):
    """A context where autocast does not turn fp32 matmuls back into bf16/fp16 ones."""
    device = tensor.device.type
    if torch.amp.is_autocast_available(device):
        return torch.autocast(device, enabled=False)
    return contextlib.nullcontext()


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
    """Scores (question, crop) pairs with a Hugging Face dual encoder.

    ``text_mode``: what the scorer reads (:data:`TEXT_MODES`); ``grid``: the n of the n x n grid
    it was trained for (``None``: not trained by semclip); ``alpha``: how transparency is turned
    into RGB for it (``drop`` or ``white``, see ``semclip.data.images``).
    """

    def __init__(
        self,
        model: nn.Module,
        processor,
        text_mode: str = "question",
        grid: int | None = None,
        alpha: str = DEFAULT_ALPHA,
    ) -> None:
        super().__init__()
        scorer_text("", mode=text_mode)  # validates the mode
        if grid is not None:
            check_grid(grid)
        if alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
        self.model = model
        self.processor = processor
        self.text_mode = text_mode
        self.grid = grid
        self.alpha = alpha
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
        text_mode: str | None = None,
        trust_remote_code: bool = False,
    ) -> RelevanceScorer:
        """Load a scorer from a hub id or a local folder (e.g. an exported one).

        The settings saved with an exported scorer (``semclip_scorer.json``: text mode, grid,
        transparency convention) are applied; ``text_mode`` overrides the saved one (``None``: the
        saved one, else ``question``). A path that looks local (``./x``, ``/x``, ``~/x``,
        ``a/b/c``) and is not a folder, and a hub id that is neither cached nor reachable
        (offline), raise a one-line ``OSError`` at once.
        """
        if text_mode is not None:
            scorer_text("", mode=text_mode)  # a bad override fails before any loading
        name, local_only = resolve_source(name_or_path)
        load = dict(revision=revision, trust_remote_code=trust_remote_code)
        if local_only:  # a hub id, offline: the cache or nothing
            try:
                return cls._load(name, dtype, text_mode, dict(load, local_files_only=True))
            except OSError as err:
                raise OSError(_unreachable_message(name)) from err
        return cls._load(name, dtype, text_mode, load)

    @classmethod
    def _load(cls, name_or_path: str, dtype, text_mode: str | None, load: dict) -> RelevanceScorer:
        from transformers import AutoModel, AutoProcessor

        # the PIL image backend whether or not torchvision is installed: the same pixels on every
        # machine (transformers picks the torchvision one when it can, which resizes differently)
        processor = AutoProcessor.from_pretrained(str(name_or_path), backend="pil", **load)
        model = AutoModel.from_pretrained(str(name_or_path), dtype=dtype, **load)
        for method in ("get_text_features", "get_image_features"):
            if not hasattr(model, method):
                raise ValueError(f"{name_or_path} is not a dual encoder: it has no {method}()")
        settings = read_settings(
            name_or_path, load.get("revision"), load.get("local_files_only", False)
        )
        try:
            return cls(
                model,
                processor,
                text_mode or settings.get("text_mode") or "question",
                settings.get("grid"),
                settings.get("alpha", DEFAULT_ALPHA),
            )
        except ValueError as err:
            raise ValueError(f"{name_or_path}/{SCORER_SETTINGS}: {err}") from err

    def settings(self) -> dict:
        """What ``save_pretrained`` writes to ``semclip_scorer.json``."""
        return {"text_mode": self.text_mode, "grid": self.grid, "alpha": self.alpha}

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Save model (safetensors), config and processor in the Hugging Face format, and the
        scorer's settings (``semclip_scorer.json``)."""
        self.model.save_pretrained(str(out_dir), safe_serialization=True)
        self.processor.save_pretrained(str(out_dir))
        text = json.dumps(self.settings(), indent=2) + "\n"
        (Path(out_dir) / SCORER_SETTINGS).write_text(text, encoding="utf-8")

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
        """L2-normalised text embeddings ``(B, D)``, fp32 (normalised in fp32)."""
        kwargs = {"input_ids": input_ids.to(self.device)}
        if attention_mask is not None and not self.model_type.startswith("siglip"):
            kwargs["attention_mask"] = attention_mask.to(self.device)
        features = _features(self.model.get_text_features(**kwargs)).float()
        with _fp32(features):
            return nn.functional.normalize(features, dim=-1)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings ``(N, D)``, fp32 (normalised in fp32)."""
        pixels = pixel_values.to(self.device, self.dtype)
        features = _features(self.model.get_image_features(pixels)).float()
        with _fp32(features):
            return nn.functional.normalize(features, dim=-1)

    @property
    def logit_scale(self) -> torch.Tensor:
        """``exp`` of the model's logit scale, fp32, capped at 100 as CLIP caps its temperature."""
        return self.model.logit_scale.float().exp().clamp(max=100.0)

    def similarity(self, text_emb: torch.Tensor, image_emb: torch.Tensor) -> torch.Tensor:
        """``logit_scale * cos`` in fp32 (also under autocast): ``(B, D) x (N, D) -> (B, N)``."""
        with _fp32(text_emb):
            return self.logit_scale * (text_emb.float() @ image_emb.float().T)

    def cell_similarity(self, text_emb: torch.Tensor, image_emb: torch.Tensor) -> torch.Tensor:
        """``logit_scale * cos`` of each text against its own cells, in fp32 (also under
        autocast): ``(B, D) x (B, C, D) -> (B, C)``."""
        with _fp32(text_emb):
            return self.logit_scale * torch.einsum(
                "bd,bcd->bc", text_emb.float(), image_emb.float()
            )

    def grouped_scores(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor
    ) -> torch.Tensor:
        """Scores of each question against its own cells: ``(B,)`` texts, ``(B * C)`` images in
        question order -> ``(B, C)``. One text and C image encodings per question."""
        text = self.encode_text(input_ids, attention_mask)  # (B, D)
        images = self.encode_images(pixel_values)  # (B * C, D)
        images = images.view(text.shape[0], -1, images.shape[-1])  # (B, C, D)
        return self.cell_similarity(text, images)

    @torch.no_grad()
    def score(self, texts: Sequence[str], images: Sequence[Image.Image]) -> torch.Tensor:
        """``logit_scale * cos`` of every text against every image: ``(texts, images)``."""
        tokens = self.tokenize(texts)
        text = self.encode_text(tokens["input_ids"], tokens.get("attention_mask"))
        image = self.encode_images(self.pixel_values(images))
        return self.similarity(text, image)

"""Loading a VLM: its processor, its weights (dtype, attention kernel) and what can be checked
before any download (the model can be had; the packages its family needs are installed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from semclip.data.hub import probe_hub

if TYPE_CHECKING:
    import torch

    from semclip.vlm.config import VLMConfig


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 on a GPU and fp32 on a CPU; any other name is torch's dtype of that name."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def load_processor(config: VLMConfig):
    """The VLM's processor, on the configured image backend (``auto``: transformers' choice)."""
    from transformers import AutoProcessor

    backend = {} if config.image_backend == "auto" else {"backend": config.image_backend}
    return AutoProcessor.from_pretrained(
        config.model,
        revision=config.revision,
        trust_remote_code=config.trust_remote_code,
        **backend,
    )


def model_type(config: VLMConfig) -> str:
    """The checkpoint's ``model_type`` (reads its config only, no weights)."""
    from transformers import AutoConfig

    load = dict(revision=config.revision, trust_remote_code=config.trust_remote_code)
    return AutoConfig.from_pretrained(config.model, **load).model_type


def load_model(config: VLMConfig, dtype: torch.dtype):
    """The VLM's weights as an ``AutoModelForImageTextToText``, in ``dtype``, eval mode."""
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(
        config.model,
        revision=config.revision,
        trust_remote_code=config.trust_remote_code,
        dtype=dtype,
        attn_implementation=config.attn_implementation,
    ).eval()


def image_backend(processor) -> str:
    """The backend a processor's images go through (``pil``, ``torchvision``, ...)."""
    image_processor = getattr(processor, "image_processor", None)
    backend = getattr(image_processor, "backend", None)
    return str(backend or type(image_processor).__name__)


def check_model_available(model: str, revision: str | None = None, flag: str = "--model") -> None:
    """Raise ``OSError`` naming ``flag`` when ``model`` is a hub id that cannot be had: offline and
    not cached, not on the hub, or the hub unreachable. Seconds, where ``from_pretrained`` retries
    for minutes. A local folder passes (the command lines check that it exists).
    """
    if Path(model).expanduser().exists():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        try:
            cached = try_to_load_from_cache(model, "config.json", revision=revision)
        except ValueError:  # not a valid repository id
            cached = None
        if not isinstance(cached, str):
            raise OSError(
                f"{flag} {model} is neither a folder here nor in the hub cache, and the hub is "
                f"off (HF_HUB_OFFLINE is set): pass a local model folder with {flag}, or unset "
                "HF_HUB_OFFLINE and go online to download it"
            )
        return
    status = probe_hub(model, "model", revision)
    if status == "missing":
        raise OSError(
            f"{flag} {model} is neither a folder here nor on the Hugging Face Hub (if it is "
            "private, log in with `hf auth login`): check the name"
        )
    if status is not None:
        raise OSError(
            f"{flag} {model} is not a folder here and the Hugging Face Hub cannot be reached "
            f"({status}): pass a local model folder, set HF_HUB_OFFLINE=1 to use a cached copy, "
            "or go online"
        )

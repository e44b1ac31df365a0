"""The one typed config of the VLM runtime: what model, and what it is shown.

Every stage nests it instead of copying its fields: the labeling job (``LabelConfig.vlm``), SemClip
inference (``SemClipConfig.vlm``) and evaluation with the VLM in the loop (``VLMEvalConfig.vlm``).
A label set stores it as one object (``labelset.json``'s ``vlm``, without the device) and
:meth:`VLMConfig.from_dict` reads it back.

Light imports only (no torch, transformers): command lines build their flags from it for ``--help``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from semclip.data.images import ALPHA_MODES, DEFAULT_ALPHA
from semclip.data.prompts import DEFAULT_TEMPLATE
from semclip.vlm.render import LLAVA15_SYSTEM, PROMPT_FORMATS

DEFAULT_VLM = "llava-hf/llava-1.5-7b-hf"
MODES = ("logprob", "generate")
DTYPES = ("auto", "bfloat16", "float16", "float32")
IMAGE_BACKENDS = ("auto", "pil", "torchvision")

#: Fields a label set does not keep: where this machine runs the model.
NOT_STORED = ("device",)


@dataclass
class VLMConfig:
    """How the VLM is loaded and run, and what it is shown."""

    model: str = DEFAULT_VLM
    """VLM hub id or local folder of an ``AutoModelForImageTextToText`` checkpoint."""
    revision: str | None = None
    """VLM hub revision (branch, tag or commit); ``None`` means ``main``."""
    dtype: str = "auto"
    """auto (bf16 on GPU, fp32 on CPU), bfloat16, float16 or float32."""
    device: str | None = None
    """Device to run on; ``None`` picks CUDA when present (Lightning sets it when it drives)."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to ``from_pretrained`` (sdpa, eager, flash_attention_2)."""
    mode: str = "logprob"
    """``logprob`` (one forward, letter log-probs) or ``generate`` (greedy, lmms-eval parsing)."""
    prefix_sharing: bool = True
    """Reuse the [prompt start + overview] KV cache across a question's cells."""
    max_rows: int = 32
    """Most sequences in one forward (halved on CUDA out-of-memory)."""
    max_new_tokens: int = 16
    """Generation budget per pair with ``--mode generate``."""
    prompt_format: str = "auto"
    """``llava15`` (``USER: <image>\\n<image>\\n... ASSISTANT:``), ``chat_template``, or ``auto``
    (the family's own: ``llava15`` for LLaVA-1.5, the processor's chat template otherwise)."""
    system_prompt: str = LLAVA15_SYSTEM
    """System line of the llava15 format (LLaVA-1.5's own evaluation uses it); "" for none.
    Chat templates keep the model's own default."""
    image_backend: str = "auto"
    """VLM image processor backend: auto (torchvision when installed, else PIL), pil or
    torchvision; the one used is recorded in labelset.json and the resume key."""
    alpha: str = DEFAULT_ALPHA
    """Transparent images: drop (PIL convert("RGB"), as LLaVA's loaders) or white (composite)."""
    trust_remote_code: bool = False
    """Run custom model code from the hub (only for repositories you trust)."""
    template: str = field(default=DEFAULT_TEMPLATE, repr=False)
    """Question prompt template with {context}, {question} and {options}."""

    def validate(self) -> None:
        """A ``ValueError`` naming the flag for a value the runtime would refuse."""
        if self.mode not in MODES:
            raise ValueError(f"--mode must be 'logprob' or 'generate', got {self.mode!r}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError("--prompt-format must be 'auto', 'llava15' or 'chat_template'")
        if self.dtype not in DTYPES:
            raise ValueError("--dtype must be auto, bfloat16, float16 or float32")
        if self.max_rows < 1:
            raise ValueError("--max-rows must be >= 1")
        if self.image_backend not in IMAGE_BACKENDS:
            raise ValueError(f"--image-backend must be one of {', '.join(IMAGE_BACKENDS)}")
        if self.alpha not in ALPHA_MODES:
            raise ValueError(f"--alpha must be one of {', '.join(ALPHA_MODES)}")

    def as_used(self, prompt_format: str) -> VLMConfig:
        """This config as the VLM uses it with the resolved ``prompt_format`` (``llava15`` or
        ``chat_template``): a chat template never shows ``system_prompt``, so it is left empty
        (a label set records what the VLM saw, not a default it ignored)."""
        system = self.system_prompt if prompt_format == "llava15" else ""
        return replace(self, prompt_format=prompt_format, system_prompt=system)

    def to_dict(self) -> dict[str, Any]:
        """The config as a label set stores it (no device)."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_STORED}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> VLMConfig:
        """A config from :meth:`to_dict`'s output (unknown keys ignored), then ``overrides``."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**data, **overrides}.items() if k in known})
